// StreamEpoch: which life of a stream a media object belongs to. Every immutable object's
// name carries it (`seg5-1f2a3b4c.m4s`), so a stream that starts again without its old state
// (its origin restarted, no replica survived) never serves new bytes under a name an edge or
// a player already holds old bytes for. A standby that takes a stream over keeps the epoch
// (the replica snapshot carries it): its names continue the origin's.

/// A stream's epoch: 32 random bits, written as exactly 8 lowercase hex digits.
public struct StreamEpoch: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// A new epoch for a stream starting from nothing.
    public static func random() -> StreamEpoch { StreamEpoch(UInt32.random(in: 0...UInt32.max)) }

    /// The canonical spelling: 8 lowercase hex digits.
    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Reads the canonical spelling only (8 lowercase hex digits); nil for anything else.
    public init?<S: StringProtocol>(_ text: S) {
        guard text.utf8.count == 8, text.utf8.allSatisfy(Self.isLowerHex), let v = UInt32(text, radix: 16) else { return nil }
        self.value = v
    }

    /// Whether `byte` is one of `0-9a-f`.
    @inlinable
    public static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

/// As its canonical spelling (recording manifests).
extension StreamEpoch: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let epoch = StreamEpoch(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an epoch: \(text)"))
        }
        self = epoch
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
