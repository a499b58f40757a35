// Money: an amount in minor units (cents) of an ISO 4217 currency. Integers only, never a
// floating-point number; the platform's fee is computed once, when an order is made, rounded
// half up to a minor unit.
import Foundation

/// A currency of ISO 4217 and the number of digits of its minor unit.
package struct Currency: Hashable, Sendable, CustomStringConvertible {
    package let code: String
    package let minorDigits: Int

    /// The currency `code` names (upper or lower case); nil for a code ISO 4217 does not list
    /// as a currency in use (funds, metals and testing codes included).
    package init?(_ code: String) {
        let upper = code.uppercased()
        guard upper.utf8.count == 3, let digits = Self.table[upper] else { return nil }
        self.code = upper
        self.minorDigits = digits
    }

    package var description: String { code }

    /// ISO 4217 (list one, 2024): currencies in use and their minor unit digits. Those not
    /// listed with another number have 2.
    private static let table: [String: Int] = {
        let two = """
            AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF \
            CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF \
            IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN \
            MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS \
            SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG
            """
        var t: [String: Int] = [:]
        for c in two.split(separator: " ") { t[String(c)] = 2 }
        for c in ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"] {
            t[c] = 0
        }
        for c in ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"] { t[c] = 3 }
        for c in ["CLF", "UYW"] { t[c] = 4 }
        return t
    }()
}

/// An amount of money: minor units of a currency.
package struct Money: Hashable, Sendable, CustomStringConvertible {
    package var minorUnits: Int64
    package var currency: Currency

    package init(minorUnits: Int64, currency: Currency) {
        self.minorUnits = minorUnits
        self.currency = currency
    }

    /// The most a price may be: a billion major units (no real ticket costs more; it keeps every
    /// sum of a day's orders far from overflowing).
    package static func maximum(of currency: Currency) -> Int64 {
        var m: Int64 = 1_000_000_000
        for _ in 0..<currency.minorDigits { m *= 10 }
        return m
    }

    /// A price as people give it: a positive amount in minor units and a currency code; a clear
    /// error for anything else.
    package static func price(minorUnits: Int64, currency code: String) throws(PaymentProblem) -> Money {
        guard let currency = Currency(code) else {
            throw .badRequest("unknown currency \"\(code.prefix(16))\": give an ISO 4217 code such as USD or EUR")
        }
        guard minorUnits > 0 else {
            throw .badRequest("a price must be more than 0 (in minor units of \(currency.code), e.g. 500 for 5.00)")
        }
        guard minorUnits <= maximum(of: currency) else {
            throw .badRequest("a price must be at most \(Money(minorUnits: maximum(of: currency), currency: currency))")
        }
        return Money(minorUnits: minorUnits, currency: currency)
    }

    /// `percent` of this amount (0...100, to two decimals: basis points), rounded half up to a
    /// minor unit.
    package func share(basisPoints: Int) -> Money {
        let bp = Int64(max(0, min(basisPoints, 10_000)))
        return Money(minorUnits: (minorUnits * bp + 5_000) / 10_000, currency: currency)
    }

    /// `12.50 EUR`, `500 JPY`, `1.250 KWD`.
    package var description: String {
        let digits = currency.minorDigits
        guard digits > 0 else { return "\(minorUnits) \(currency.code)" }
        var scale: Int64 = 1
        for _ in 0..<digits { scale *= 10 }
        let sign = minorUnits < 0 ? "-" : ""
        let major = abs(minorUnits) / scale
        let minor = String(abs(minorUnits) % scale)
        return "\(sign)\(major).\(String(repeating: "0", count: digits - minor.count))\(minor) \(currency.code)"
    }
}

/// What a payment operation refuses, in words for the person who asked.
package enum PaymentProblem: Error, Equatable, CustomStringConvertible {
    /// Bad input (400).
    case badRequest(String)
    /// Not found (404).
    case notFound(String)
    /// Not in a state that allows it (409).
    case conflict(String)

    package var description: String {
        switch self {
        case .badRequest(let s), .notFound(let s), .conflict(let s): return s
        }
    }
}
