// Counters for metrics: messages and bytes by type and direction, dropped packets by
// reason. Plain values; the shell exports them.

/// Traffic counters of one node.
public struct GossipStats: Hashable, Sendable {
    public var messagesSent: [MessageKind: UInt64] = [:]
    public var messagesReceived: [MessageKind: UInt64] = [:]
    /// Plaintext bytes of each message type (type byte, length and body), by direction.
    public var bytesSentByKind: [MessageKind: UInt64] = [:]
    public var bytesReceivedByKind: [MessageKind: UInt64] = [:]
    public var packetsSent: UInt64 = 0
    public var packetsReceived: UInt64 = 0
    /// Sealed bytes on the wire, by direction.
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var packetsDropped: [DropReason: UInt64] = [:]

    public init() {}

    public var totalDropped: UInt64 { packetsDropped.values.reduce(0, +) }

    mutating func recordDrop(_ reason: DropReason) { packetsDropped[reason, default: 0] += 1 }
}
