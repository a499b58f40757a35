// Encoding of messages and of the plaintext packet that groups them. Versioned: the first
// plaintext byte is the wire format version, so a later format can be told apart.
//
// Plaintext packet: version(1) · count(1) · count × [type(1) · length(varint) · body].
// The per-message length lets a reader check each body consumed exactly its bytes.

/// Encodes and decodes messages and plaintext packets. Stateless.
public enum MessageCodec {
    public static let wireVersion: UInt8 = 1
    /// Bytes of the plaintext header (version and count).
    public static let packetHeaderSize = 2
    static let maxIDLength = 255
    static let maxMembersInFullState = 65_536

    /// Encodes a compound plaintext packet.
    public static func encodePacket(_ messages: [GossipMessage]) throws(GossipError) -> [UInt8] {
        guard messages.count <= 255 else { throw .packetTooLarge(size: messages.count, limit: 255) }
        var w = WireWriter()
        w.write(wireVersion)
        w.write(UInt8(messages.count))
        for m in messages { w.write(encodeFramed(m)) }
        return w.bytes
    }

    /// Decodes a compound plaintext packet; throws on any malformation.
    public static func decodePacket(_ bytes: [UInt8]) throws(GossipError) -> [GossipMessage] {
        try decodePacketSized(bytes).map(\.message)
    }

    /// Like `decodePacket`, with each message's framed size (for the per-type byte counters).
    static func decodePacketSized(_ bytes: [UInt8]) throws(GossipError) -> [(message: GossipMessage, size: Int)] {
        var r = WireReader(bytes)
        let version = try r.readByte("wire version")
        guard version == wireVersion else { throw .unsupportedWireVersion(version) }
        let count = Int(try r.readByte("message count"))
        var result: [(GossipMessage, Int)] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            let start = r.offset
            let type = try r.readByte("message type")
            guard let kind = MessageKind(rawValue: type) else { throw .unknownMessageType(type) }
            let length = try r.readVarint("message length")
            guard length <= UInt64(r.remaining) else { throw .truncated(context: "\(kind) body") }
            let bodyEnd = r.offset + Int(length)
            var body = WireReader(bytes, offset: r.offset, end: bodyEnd)
            let message = try decodeBody(kind, &body)
            guard body.isAtEnd else { throw .invalidField("\(kind): \(body.remaining) unread bytes in body") }
            _ = try r.readBytes(Int(length), "\(kind) body")
            result.append((message, r.offset - start))
        }
        guard r.isAtEnd else { throw .trailingBytes(count: r.remaining) }
        return result
    }

    /// One message with its type byte and length prefix: its exact cost inside a packet.
    public static func encodeFramed(_ message: GossipMessage) -> [UInt8] {
        let body = encodeBody(message)
        var w = WireWriter(capacity: body.count + 4)
        w.write(message.kind.rawValue)
        w.writeVarint(UInt64(body.count))
        w.write(body)
        return w.bytes
    }

    /// `encodeFramed(message).count`, computed without encoding: the state machine sizes
    /// every datagram it builds and every update it queues.
    public static func framedSize(_ message: GossipMessage) -> Int {
        let body = bodySize(message)
        return 1 + varintSize(UInt64(body)) + body
    }

    // MARK: Sizes (mirror the encoders below)

    static func varintSize(_ value: UInt64) -> Int {
        // 7 bits a byte: 1 byte up to 127, 10 bytes for the largest values.
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    static func stringSize(_ s: String) -> Int {
        let n = s.utf8.count
        return varintSize(UInt64(n)) + n
    }

    static func endpointSize(_ e: Endpoint) -> Int { stringSize(e.host) + 2 }

    static func coordinateSize(_ c: VivaldiCoordinate) -> Int { 1 + 8 * min(c.vector.count, 255) + 24 }

    static func metadataSize(_ m: MemberMetadata) -> Int {
        stringSize(m.id.rawValue) + endpointSize(m.gossipAddress) + endpointSize(m.httpAddress) + endpointSize(m.rtmpAddress)
            + stringSize(m.region) + varintSize(UInt64(m.capacity)) + varintSize(UInt64(m.load))
            + stringSize(m.softwareVersion) + varintSize(m.version)
    }

    static func memberSize(_ m: Member) -> Int {
        m.metadataBox.encodedSize + varintSize(m.incarnation) + 2 + (m.coordinate.map(coordinateSize) ?? 0)
    }

    static func bodySize(_ message: GossipMessage) -> Int {
        switch message {
        case .ping(let p):
            return varintSize(UInt64(p.sequence)) + stringSize(p.target.rawValue) + stringSize(p.source.rawValue)
                + endpointSize(p.sourceAddress)
        case .pingReq(let p):
            return varintSize(UInt64(p.sequence)) + stringSize(p.target.rawValue) + endpointSize(p.targetAddress)
                + stringSize(p.source.rawValue) + endpointSize(p.sourceAddress) + 1
        case .ack(let a):
            return varintSize(UInt64(a.sequence)) + stringSize(a.responder.rawValue) + 1 + (a.coordinate.map(coordinateSize) ?? 0)
        case .nack(let n):
            return varintSize(UInt64(n.sequence))
        case .alive(let a):
            return varintSize(a.incarnation) + a.metadataBox.encodedSize
        case .suspect(let s):
            return varintSize(s.incarnation) + stringSize(s.node.rawValue) + stringSize(s.from.rawValue)
        case .dead(let d):
            return varintSize(d.incarnation) + stringSize(d.node.rawValue) + stringSize(d.from.rawValue)
        case .pushPull(let p):
            return 1 + varintSize(UInt64(p.members.count)) + p.members.reduce(0) { $0 + memberSize($1) }
        }
    }

    // MARK: Bodies

    static func encodeBody(_ message: GossipMessage) -> [UInt8] {
        var w = WireWriter()
        switch message {
        case .ping(let p):
            w.writeVarint(UInt64(p.sequence))
            w.writeString(p.target.rawValue)
            w.writeString(p.source.rawValue)
            writeEndpoint(p.sourceAddress, &w)
        case .pingReq(let p):
            w.writeVarint(UInt64(p.sequence))
            w.writeString(p.target.rawValue)
            writeEndpoint(p.targetAddress, &w)
            w.writeString(p.source.rawValue)
            writeEndpoint(p.sourceAddress, &w)
            w.writeBool(p.wantsNack)
        case .ack(let a):
            w.writeVarint(UInt64(a.sequence))
            w.writeString(a.responder.rawValue)
            if let c = a.coordinate {
                w.writeBool(true)
                writeCoordinate(c, &w)
            } else {
                w.writeBool(false)
            }
        case .nack(let n):
            w.writeVarint(UInt64(n.sequence))
        case .alive(let a):
            w.writeVarint(a.incarnation)
            writeMetadata(a.metadata, &w)
        case .suspect(let s):
            w.writeVarint(s.incarnation)
            w.writeString(s.node.rawValue)
            w.writeString(s.from.rawValue)
        case .dead(let d):
            w.writeVarint(d.incarnation)
            w.writeString(d.node.rawValue)
            w.writeString(d.from.rawValue)
        case .pushPull(let p):
            w.write((p.join ? 1 : 0) | (p.isResponse ? 2 : 0))
            w.writeVarint(UInt64(p.members.count))
            for m in p.members { writeMember(m, &w) }
        }
        return w.bytes
    }

    static func decodeBody(_ kind: MessageKind, _ r: inout WireReader) throws(GossipError) -> GossipMessage {
        switch kind {
        case .ping:
            return .ping(.init(
                sequence: try r.readUInt32Varint("ping.sequence"), target: try readID("ping.target", &r),
                source: try readID("ping.source", &r), sourceAddress: try readEndpoint("ping.sourceAddress", &r)))
        case .pingReq:
            return .pingReq(.init(
                sequence: try r.readUInt32Varint("pingReq.sequence"), target: try readID("pingReq.target", &r),
                targetAddress: try readEndpoint("pingReq.targetAddress", &r), source: try readID("pingReq.source", &r),
                sourceAddress: try readEndpoint("pingReq.sourceAddress", &r), wantsNack: try r.readBool("pingReq.wantsNack")))
        case .ack:
            let seq = try r.readUInt32Varint("ack.sequence")
            let responder = try readID("ack.responder", &r)
            let coordinate = try r.readBool("ack.hasCoordinate") ? try readCoordinate(&r) : nil
            return .ack(.init(sequence: seq, responder: responder, coordinate: coordinate))
        case .nack:
            return .nack(.init(sequence: try r.readUInt32Varint("nack.sequence")))
        case .alive:
            return .alive(.init(incarnation: try r.readVarint("alive.incarnation"), metadata: try readMetadata(&r)))
        case .suspect:
            return .suspect(.init(
                incarnation: try r.readVarint("suspect.incarnation"), node: try readID("suspect.node", &r),
                from: try readID("suspect.from", &r)))
        case .dead:
            return .dead(.init(
                incarnation: try r.readVarint("dead.incarnation"), node: try readID("dead.node", &r),
                from: try readID("dead.from", &r)))
        case .pushPull:
            let flags = try r.readByte("pushPull.flags")
            guard flags & ~3 == 0 else { throw .invalidField("pushPull.flags \(flags)") }
            let count = try r.readVarint("pushPull.count")
            guard count <= UInt64(maxMembersInFullState) else { throw .invalidField("pushPull: \(count) members") }
            var members: [Member] = []
            for _ in 0..<Int(count) { members.append(try readMember(&r)) }
            return .pushPull(.init(join: flags & 1 != 0, isResponse: flags & 2 != 0, members: members))
        }
    }

    // MARK: Fields

    static func readID(_ context: String, _ r: inout WireReader) throws(GossipError) -> NodeID {
        let s = try r.readString(context, maxLength: maxIDLength)
        guard !s.isEmpty else { throw .invalidField("\(context): empty node id") }
        return NodeID(s)
    }

    static func writeEndpoint(_ e: Endpoint, _ w: inout WireWriter) {
        w.writeString(e.host)
        w.writeUInt16(e.port)
    }

    static func readEndpoint(_ context: String, _ r: inout WireReader) throws(GossipError) -> Endpoint {
        Endpoint(host: try r.readString("\(context).host", maxLength: maxIDLength), port: try r.readUInt16("\(context).port"))
    }

    static func writeMetadata(_ m: MemberMetadata, _ w: inout WireWriter) {
        w.writeString(m.id.rawValue)
        writeEndpoint(m.gossipAddress, &w)
        writeEndpoint(m.httpAddress, &w)
        writeEndpoint(m.rtmpAddress, &w)
        w.writeString(m.region)
        w.writeVarint(UInt64(m.capacity))
        w.writeVarint(UInt64(m.load))
        w.writeString(m.softwareVersion)
        w.writeVarint(m.version)
    }

    static func readMetadata(_ r: inout WireReader) throws(GossipError) -> MemberMetadata {
        MemberMetadata(
            id: try readID("metadata.id", &r), gossipAddress: try readEndpoint("metadata.gossipAddress", &r),
            httpAddress: try readEndpoint("metadata.httpAddress", &r), rtmpAddress: try readEndpoint("metadata.rtmpAddress", &r),
            region: try r.readString("metadata.region", maxLength: maxIDLength),
            capacity: try r.readUInt32Varint("metadata.capacity"), load: try r.readUInt32Varint("metadata.load"),
            softwareVersion: try r.readString("metadata.softwareVersion", maxLength: maxIDLength),
            version: try r.readVarint("metadata.version"))
    }

    static func writeCoordinate(_ c: VivaldiCoordinate, _ w: inout WireWriter) {
        w.write(UInt8(clamping: c.vector.count))
        for v in c.vector.prefix(255) { w.writeDouble(v) }
        w.writeDouble(c.error)
        w.writeDouble(c.adjustment)
        w.writeDouble(c.height)
    }

    static func readCoordinate(_ r: inout WireReader) throws(GossipError) -> VivaldiCoordinate {
        let dims = Int(try r.readByte("coordinate.dimensions"))
        guard dims > 0, dims <= 32 else { throw .invalidField("coordinate with \(dims) dimensions") }
        var vector: [Double] = []
        for _ in 0..<dims { vector.append(try r.readDouble("coordinate.vector")) }
        let c = VivaldiCoordinate(
            vector: vector, error: try r.readDouble("coordinate.error"), adjustment: try r.readDouble("coordinate.adjustment"),
            height: try r.readDouble("coordinate.height"))
        guard c.isValid else { throw .invalidField("coordinate has a non-finite component") }
        return c
    }

    static func writeMember(_ m: Member, _ w: inout WireWriter) {
        writeMetadata(m.metadata, &w)
        w.writeVarint(m.incarnation)
        w.write(m.status.rawValue)
        if let c = m.coordinate {
            w.writeBool(true)
            writeCoordinate(c, &w)
        } else {
            w.writeBool(false)
        }
    }

    /// Members read from the wire carry `statusChangedAt = .zero`: the receiver stamps its
    /// own clock when it merges them.
    static func readMember(_ r: inout WireReader) throws(GossipError) -> Member {
        let metadata = try readMetadata(&r)
        let incarnation = try r.readVarint("member.incarnation")
        let raw = try r.readByte("member.status")
        guard let status = MemberStatus(rawValue: raw) else { throw .invalidField("member.status \(raw)") }
        let coordinate = try r.readBool("member.hasCoordinate") ? try readCoordinate(&r) : nil
        return Member(metadata: metadata, incarnation: incarnation, status: status, statusChangedAt: .zero, coordinate: coordinate)
    }
}
