// CMAF packaging: an MSB-first bit reader for codec configuration (SPS, AudioSpecificConfig).
// Reads past the end throw `CMAFParseError.truncated`; it never traps.

/// Reads bits most-significant first from a byte array, with exp-Golomb helpers (H.264 7.2, 9.1).
struct BitReader {
    private let bytes: [UInt8]
    private(set) var bitPosition: Int = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var bitsLeft: Int { bytes.count * 8 - bitPosition }

    mutating func bit(_ what: String) throws -> UInt32 {
        guard bitPosition < bytes.count * 8 else { throw CMAFParseError.truncated(what: what) }
        let byte = bytes[bitPosition >> 3]
        let value = (byte >> (7 - UInt8(bitPosition & 7))) & 1
        bitPosition += 1
        return UInt32(value)
    }

    mutating func flag(_ what: String) throws -> Bool { try bit(what) == 1 }

    /// Reads `count` (0...32) bits as an unsigned integer.
    mutating func bits(_ count: Int, _ what: String) throws -> UInt32 {
        precondition(count >= 0 && count <= 32)
        guard count <= bitsLeft else { throw CMAFParseError.truncated(what: what) }
        var value: UInt64 = 0
        for _ in 0..<count { value = (value << 1) | UInt64(try bit(what)) }
        return UInt32(value)
    }

    mutating func skip(_ count: Int, _ what: String) throws {
        guard count <= bitsLeft else { throw CMAFParseError.truncated(what: what) }
        bitPosition += count
    }

    /// ue(v). Values need at most 32 leading zeros; more means garbage.
    mutating func ue(_ what: String) throws -> UInt32 {
        var leadingZeros = 0
        while try bit(what) == 0 {
            leadingZeros += 1
            if leadingZeros > 31 { throw CMAFParseError.invalidValue(what: what, value: leadingZeros) }
        }
        if leadingZeros == 0 { return 0 }
        let suffix = try bits(leadingZeros, what)
        return UInt32((UInt64(1) << UInt64(leadingZeros)) - 1 + UInt64(suffix))
    }

    /// se(v).
    mutating func se(_ what: String) throws -> Int32 {
        let k = Int64(try ue(what))
        return Int32(k % 2 == 1 ? (k + 1) / 2 : -(k / 2))
    }
}
