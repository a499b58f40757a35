// The whole path between messages and sealed bytes, with the traffic counters. The shell
// holds one `PacketCodec`: outgoing directives go through `seal`, incoming datagrams and
// stream frames through `open`; rejects are counted by reason and never trap.

/// Encodes+seals and opens+decodes packets, counting traffic.
public struct PacketCodec: Sendable {
    public var keyring: Keyring
    public let clusterName: String
    /// Size limit of a sealed datagram.
    public let maxPacketSize: Int
    /// Size limit of a stream frame (full state): bounds what a hostile peer can make us
    /// decrypt and decode. 8 MiB holds tens of thousands of members.
    public var maxStreamFrameSize = 8 << 20
    public private(set) var stats = GossipStats()
    private let aad: [UInt8]

    public init(keyring: Keyring, clusterName: String, maxPacketSize: Int = 1400) {
        self.keyring = keyring
        self.clusterName = clusterName
        self.maxPacketSize = maxPacketSize
        self.aad = Array(clusterName.utf8)
    }

    public init(keyring: Keyring, config: GossipConfig) {
        self.init(keyring: keyring, clusterName: config.clusterName, maxPacketSize: config.maxPacketSize)
    }

    /// Largest plaintext (header included) that fits in one datagram.
    public var plaintextBudget: Int { maxPacketSize - Keyring.overhead }

    /// Seals a compound datagram. Throws `packetTooLarge` past `maxPacketSize`.
    public mutating func sealDatagram(_ messages: [GossipMessage]) throws(GossipError) -> [UInt8] {
        try seal(messages, limit: maxPacketSize)
    }

    /// Seals a frame for the stream transport (full-state exchange): no datagram limit.
    public mutating func sealStreamFrame(_ messages: [GossipMessage]) throws(GossipError) -> [UInt8] {
        try seal(messages, limit: nil)
    }

    /// Opens and decodes a datagram. Rejected packets are counted in `stats.packetsDropped`.
    public mutating func openDatagram(_ packet: [UInt8]) throws(GossipError) -> [GossipMessage] {
        if packet.count > maxPacketSize {
            stats.recordDrop(.tooLarge)
            throw .packetTooLarge(size: packet.count, limit: maxPacketSize)
        }
        return try open(packet)
    }

    /// Opens and decodes a stream frame.
    public mutating func openStreamFrame(_ frame: [UInt8]) throws(GossipError) -> [GossipMessage] {
        if frame.count > maxStreamFrameSize {
            stats.recordDrop(.tooLarge)
            throw .packetTooLarge(size: frame.count, limit: maxStreamFrameSize)
        }
        return try open(frame)
    }

    private mutating func seal(_ messages: [GossipMessage], limit: Int?) throws(GossipError) -> [UInt8] {
        let plain = try MessageCodec.encodePacket(messages)
        if let limit, plain.count + Keyring.overhead > limit {
            throw .packetTooLarge(size: plain.count + Keyring.overhead, limit: limit)
        }
        let sealed = try keyring.seal(plain, authenticating: aad)
        stats.packetsSent += 1
        stats.bytesSent += UInt64(sealed.count)
        for m in messages {
            stats.messagesSent[m.kind, default: 0] += 1
            stats.bytesSentByKind[m.kind, default: 0] += UInt64(MessageCodec.framedSize(m))
        }
        return sealed
    }

    private mutating func open(_ packet: [UInt8]) throws(GossipError) -> [GossipMessage] {
        do {
            let plain = try keyring.open(packet, authenticating: aad)
            let decoded = try MessageCodec.decodePacketSized(plain)
            stats.packetsReceived += 1
            stats.bytesReceived += UInt64(packet.count)
            for (m, size) in decoded {
                stats.messagesReceived[m.kind, default: 0] += 1
                stats.bytesReceivedByKind[m.kind, default: 0] += UInt64(size)
            }
            return decoded.map(\.message)
        } catch {
            stats.recordDrop(error.dropReason)
            throw error
        }
    }
}
