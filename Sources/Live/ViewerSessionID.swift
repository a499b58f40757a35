// ViewerSessionID: a viewer session's id (`vsid=`), as the media routes, the edge's fast path
// and the session table read it.

/// A viewer session's id, checked by shape and packed into 128 bits (no allocation to look
/// one up): 16 to 20 base64url characters (at most 120 bits, so every id packs one way).
package struct ViewerSessionID: Hashable, Sendable, CustomStringConvertible {
    let high: UInt64
    let low: UInt64
    let length: UInt8

    package static let lengths = 16...20

    package init?<S: Sequence<UInt8>>(utf8 bytes: S) {
        var high: UInt64 = 0, low: UInt64 = 0, n = 0
        for c in bytes {
            guard n < Self.lengths.upperBound, let v = Self.value(c) else { return nil }
            // The first 10 characters in `high` (60 bits), the rest in `low` (at most 60).
            if n < 10 { high = high << 6 | UInt64(v) } else { low = low << 6 | UInt64(v) }
            n += 1
        }
        guard Self.lengths.contains(n) else { return nil }
        self.high = high
        self.low = low
        self.length = UInt8(n)
    }

    package init?(_ text: Substring) { self.init(utf8: text.utf8) }
    package init?(_ text: String) { self.init(utf8: text.utf8) }

    /// A new random id (20 characters).
    package static func random<G: RandomNumberGenerator>(using g: inout G) -> ViewerSessionID {
        let text = String((0..<20).map { _ in alphabet[Int(g.next() % 64)] })
        return ViewerSessionID(text)!
    }

    package static func random() -> ViewerSessionID {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x41...0x5A: return c - 0x41
        case 0x61...0x7A: return c - 0x61 + 26
        case 0x30...0x39: return c - 0x30 + 52
        case 0x2D: return 62
        case 0x5F: return 63
        default: return nil
        }
    }

    package var description: String {
        var chars: [Character] = []
        chars.reserveCapacity(Int(length))
        let inHigh = min(Int(length), 10)
        for i in 0..<inHigh { chars.append(Self.alphabet[Int(high >> (6 * UInt64(inHigh - 1 - i)) & 63)]) }
        let inLow = Int(length) - inHigh
        for i in 0..<inLow { chars.append(Self.alphabet[Int(low >> (6 * UInt64(inLow - 1 - i)) & 63)]) }
        return String(chars)
    }
}
