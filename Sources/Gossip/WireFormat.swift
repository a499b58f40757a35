// The hand-written binary encoding over [UInt8]. Integers are LEB128 varints (sequence
// numbers and incarnations stay small), doubles are IEEE-754 big-endian, strings are
// length-prefixed UTF-8. The reader never traps on hostile input: every read is bounds
// checked and reports a typed error.

/// Appends encoded fields to a byte array.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ byte: UInt8) { bytes.append(byte) }

    public mutating func write(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func writeUInt16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeDouble(_ d: Double) {
        let bits = d.bitPattern
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }

    public mutating func writeBool(_ b: Bool) { bytes.append(b ? 1 : 0) }

    public mutating func writeString(_ s: String) {
        let utf8 = Array(s.utf8)
        writeVarint(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

/// Reads encoded fields from a byte slice, failing with `GossipError` on any malformation.
public struct WireReader: Sendable {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    private let end: Int

    public init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.end = end ?? bytes.count
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    public mutating func readByte(_ context: String) throws(GossipError) -> UInt8 {
        guard offset < end else { throw .truncated(context: context) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBytes(_ count: Int, _ context: String) throws(GossipError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw .truncated(context: context) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func readVarint(_ context: String) throws(GossipError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte(context)
            if shift == 63 && byte > 1 { throw .invalidField("\(context): varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .invalidField("\(context): varint longer than 10 bytes") }
        }
    }

    public mutating func readUInt32Varint(_ context: String) throws(GossipError) -> UInt32 {
        let v = try readVarint(context)
        guard v <= UInt64(UInt32.max) else { throw .invalidField("\(context): \(v) exceeds 32 bits") }
        return UInt32(v)
    }

    public mutating func readUInt16(_ context: String) throws(GossipError) -> UInt16 {
        let hi = try readByte(context), lo = try readByte(context)
        return UInt16(hi) << 8 | UInt16(lo)
    }

    public mutating func readDouble(_ context: String) throws(GossipError) -> Double {
        var bits: UInt64 = 0
        for _ in 0..<8 { bits = bits << 8 | UInt64(try readByte(context)) }
        return Double(bitPattern: bits)
    }

    public mutating func readBool(_ context: String) throws(GossipError) -> Bool {
        switch try readByte(context) {
        case 0: return false
        case 1: return true
        case let b: throw .invalidField("\(context): boolean byte \(b)")
        }
    }

    public mutating func readString(_ context: String, maxLength: Int = 1024) throws(GossipError) -> String {
        let length = try readVarint(context)
        guard length <= UInt64(maxLength) else { throw .invalidField("\(context): string of \(length) bytes (max \(maxLength))") }
        let raw = try readBytes(Int(length), context)
        guard let s = String(validating: raw, as: UTF8.self) else { throw .invalidField("\(context): invalid UTF-8") }
        return s
    }
}
