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

    /// The currency `code` names, or a clear error.
    package static func named(_ code: String) throws(PaymentProblem) -> Currency {
        guard let c = Currency(code) else {
            throw .badRequest("unknown currency \"\(code.prefix(16))\": give an ISO 4217 code such as USD or EUR")
        }
        return c
    }

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
        let currency = try Currency.named(code)
        guard minorUnits > 0 else {
            throw .badRequest("a price must be more than 0 (in minor units of \(currency.code), e.g. 500 for 5.00)")
        }
        guard minorUnits <= maximum(of: currency) else {
            throw .badRequest("a price must be at most \(Money(minorUnits: maximum(of: currency), currency: currency))")
        }
        return Money(minorUnits: minorUnits, currency: currency)
    }

    /// A price written as people write it, in major units (`12`, `12.5`, `12.50`; a dot before
    /// the minor digits, at most as many as the currency has), checked as `price` checks.
    package static func parse(_ text: String, currency code: String) throws(PaymentProblem) -> Money {
        let currency = try Currency.named(code)
        let t = text.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let major = parts[0], minor = parts.count == 2 ? parts[1] : ""
        guard !major.isEmpty, major.count <= 12, major.allSatisfy({ $0.isASCII && $0.isNumber }),
              minor.count <= currency.minorDigits, minor.allSatisfy({ $0.isASCII && $0.isNumber }),
              parts.count == 1 || !minor.isEmpty else {
            let example = currency.minorDigits == 0 ? "500" : "12." + String(repeating: "5", count: currency.minorDigits)
            throw .badRequest("\"\(t.prefix(20))\" is not an amount of \(currency.code): write it like \(example)")
        }
        var units = Int64(major)!
        for _ in 0..<currency.minorDigits { units *= 10 }
        var fraction = Int64(minor.isEmpty ? "0" : String(minor))!
        for _ in minor.count..<currency.minorDigits { fraction *= 10 }
        return try price(minorUnits: units + fraction, currency: currency.code)
    }

    /// The amount in major units as a form shows it (`12.50`), without the currency.
    package var plain: String { String(description.split(separator: " ")[0]) }

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
