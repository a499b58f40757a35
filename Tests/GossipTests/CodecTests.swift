// Wire format: round trips of every message type, the packet envelope, and rejection of
// malformed, forged, wrong-key and foreign-cluster packets, counted by reason.

import XCTest
@testable import Gossip

final class CodecTests: XCTestCase {
    static let coordinate = VivaldiCoordinate(
        vector: [0.001, -0.002, 0.003, 0, 1e-9, -0.5, 0.25, 42], error: 0.7, adjustment: -0.0001, height: 0.00002)

    static var everyMessage: [GossipMessage] {
        let meta = MemberMetadata(
            id: "node-ü", gossipAddress: Endpoint(host: "10.1.2.3", port: 7946), httpAddress: Endpoint(host: "::1", port: 8080),
            rtmpAddress: Endpoint(host: "edge.example", port: 1935), region: "eu-west-1", capacity: 400, load: 123_456,
            softwareVersion: "1.2.3-beta", version: UInt64.max)
        return [
            .ping(.init(sequence: 0, target: "t", source: "s", sourceAddress: Endpoint(host: "h", port: 1))),
            .ping(.init(sequence: UInt32.max, target: "target", source: "src", sourceAddress: Endpoint(host: "1.2.3.4", port: 65535))),
            .pingReq(.init(sequence: 300, target: "t", targetAddress: Endpoint(host: "t", port: 2), source: "s",
                           sourceAddress: Endpoint(host: "s", port: 3), wantsNack: true)),
            .pingReq(.init(sequence: 1, target: "t", targetAddress: Endpoint(host: "t", port: 2), source: "s",
                           sourceAddress: Endpoint(host: "s", port: 3), wantsNack: false)),
            .ack(.init(sequence: 7, responder: "r", coordinate: coordinate)),
            .ack(.init(sequence: 8, responder: "r", coordinate: nil)),
            .nack(.init(sequence: 123_456_789)),
            .alive(.init(incarnation: UInt64.max, metadata: meta)),
            .alive(.init(incarnation: 0, metadata: T.meta("plain"))),
            .suspect(.init(incarnation: 1 << 40, node: "n", from: "f")),
            .dead(.init(incarnation: 3, node: "n", from: "n")),
            .pushPull(.init(join: true, isResponse: false, members: [])),
            .pushPull(.init(join: false, isResponse: true, members: [
                Member(metadata: meta, incarnation: 9, status: .suspect, statusChangedAt: .zero, coordinate: coordinate),
                Member(metadata: T.meta("x"), incarnation: 0, status: .left, statusChangedAt: .zero, coordinate: nil),
                Member(metadata: T.meta("y"), incarnation: 2, status: .dead, statusChangedAt: .zero, coordinate: nil),
                Member(metadata: T.meta("z"), incarnation: 1, status: .alive, statusChangedAt: .zero, coordinate: nil),
            ])),
        ]
    }

    func codec(_ key: [UInt8] = Array(repeating: 1, count: 32), cluster: String = "prod") -> PacketCodec {
        PacketCodec(keyring: try! Keyring(primary: key), clusterName: cluster)
    }

    func testEveryMessageTypeRoundTrips() throws {
        XCTAssertEqual(Set(Self.everyMessage.map(\.kind)), Set(MessageKind.allCases))
        for m in Self.everyMessage {
            let packet = try MessageCodec.encodePacket([m])
            XCTAssertEqual(try MessageCodec.decodePacket(packet), [m], "\(m.kind)")
        }
    }

    func testFramedSizeIsTheEncodedSizeWithoutEncoding() {
        let long = String(repeating: "x", count: 200)  // two-byte length prefixes
        var meta = T.meta("plain")
        meta.region = long
        meta.version = 1 << 35
        var messages = Self.everyMessage
        messages += [
            .alive(.init(incarnation: 127, metadata: meta)),
            .alive(.init(incarnation: 128, metadata: meta)),
            .suspect(.init(incarnation: UInt64.max, node: NodeID(long), from: "f")),
            .ack(.init(sequence: 16_383, responder: "r", coordinate: VivaldiCoordinate(vector: [], error: 0, adjustment: 0, height: 0))),
            .pushPull(.init(join: false, isResponse: false, members: (0..<200).map {
                Member(metadata: T.meta("m\($0)"), incarnation: UInt64($0) << 20, status: .alive, statusChangedAt: .zero,
                       coordinate: $0 % 3 == 0 ? Self.coordinate : nil)
            })),
        ]
        for m in messages { XCTAssertEqual(MessageCodec.framedSize(m), MessageCodec.encodeFramed(m).count, "\(m.kind)") }
        for v: UInt64 in [0, 1, 127, 128, 16_383, 16_384, 1 << 62, UInt64.max] {
            var w = WireWriter()
            w.writeVarint(v)
            XCTAssertEqual(MessageCodec.varintSize(v), w.bytes.count, "\(v)")
        }
    }

    func testRowsAndUpdatesShareTheirMetadataUntilChanged() {
        let meta = T.meta("a")
        var m = Member(metadata: meta, incarnation: 1, status: .alive, statusChangedAt: .zero, coordinate: Self.coordinate)
        let copy = m
        XCTAssertTrue(copy.metadataBox === m.metadataBox)
        XCTAssertEqual(m.metadataBox.idHash, meta.id.hashValue)
        XCTAssertEqual(m.metadataBox.encodedSize, MessageCodec.framedSize(.alive(.init(incarnation: 0, metadata: meta))) - 3)
        m.metadata.load = 7
        XCTAssertFalse(copy.metadataBox === m.metadataBox, "changing a copy leaves the original alone")
        XCTAssertEqual(copy.metadata.load, 0)
        XCTAssertNotEqual(m, copy)
        m.metadata.load = 0
        XCTAssertEqual(m, copy, "equal fields are equal, shared or not")
        XCTAssertEqual(m.hashValue, copy.hashValue)
        m.coordinate?.height = 1
        XCTAssertEqual(copy.coordinate, Self.coordinate)
        XCTAssertNotEqual(m, copy)
        let alive = GossipMessage.Alive(incarnation: 2, metadata: meta)
        XCTAssertEqual(alive, GossipMessage.Alive(incarnation: 2, metadata: meta))
        XCTAssertNotEqual(alive, GossipMessage.Alive(incarnation: 3, metadata: meta))
        XCTAssertEqual(MemoryLayout<Member>.stride, 40, "a row of the table stays compact")
        XCTAssertEqual(MemoryLayout<GossipMessage>.stride, 16, "a queued update stays compact")
    }

    func testCompoundPacketRoundTripsSealed() throws {
        var a = codec(), b = codec()
        let messages = Array(Self.everyMessage.filter { $0.kind != .pushPull })
        let sealed = try a.sealDatagram(messages)
        XCTAssertEqual(sealed[0], Keyring.encryptionVersion)
        XCTAssertEqual(try b.openDatagram(sealed), messages)
        // Layout: version + nonce + ciphertext (same length as plaintext) + tag.
        XCTAssertEqual(sealed.count, try MessageCodec.encodePacket(messages).count + 29)
        XCTAssertEqual(a.stats.packetsSent, 1)
        XCTAssertEqual(a.stats.messagesSent[.ping], 2)
        XCTAssertEqual(b.stats.messagesReceived[.alive], 2)
        XCTAssertEqual(b.stats.bytesReceived, UInt64(sealed.count))
        XCTAssertEqual(a.stats.bytesSentByKind, b.stats.bytesReceivedByKind)
        // Full state over the stream transport.
        let full = Self.everyMessage.last!
        XCTAssertEqual(try b.openStreamFrame(try a.sealStreamFrame([full])), [full])
    }

    func testSealingTwiceUsesFreshNonces() throws {
        var a = codec()
        let m: [GossipMessage] = [.nack(.init(sequence: 1))]
        XCTAssertNotEqual(try a.sealDatagram(m), try a.sealDatagram(m))
    }

    func testEveryTruncationIsRejectedWithoutCrashing() throws {
        for m in Self.everyMessage {
            let packet = try MessageCodec.encodePacket([m])
            for length in 0..<packet.count {
                XCTAssertThrowsError(try MessageCodec.decodePacket(Array(packet.prefix(length))), "\(m.kind) cut at \(length)")
            }
        }
    }

    func testMalformedPlaintextGivesTypedErrors() throws {
        func error(_ bytes: [UInt8]) -> GossipError? {
            do { _ = try MessageCodec.decodePacket(bytes); return nil } catch { return error }
        }
        XCTAssertEqual(error([9, 0]), .unsupportedWireVersion(9))
        XCTAssertEqual(error([1, 1, 200, 0]), .unknownMessageType(200))
        XCTAssertEqual(error([1, 0, 0xAA]), .trailingBytes(count: 1))
        // Length prefix says more than the body holds.
        XCTAssertEqual(error([1, 1, MessageKind.nack.rawValue, 5, 1]), .truncated(context: "nack body"))
        // A body with bytes the message does not use.
        if case .invalidField? = error([1, 1, MessageKind.nack.rawValue, 2, 1, 0]) {} else { XCTFail() }
        // A varint that never ends.
        if case .invalidField? = error([1, 1, MessageKind.nack.rawValue, 11] + Array(repeating: 0xFF, count: 11)) {} else { XCTFail() }
        // Sequence beyond 32 bits.
        if case .invalidField? = error([1, 1, MessageKind.nack.rawValue, 5, 0x80, 0x80, 0x80, 0x80, 0x10]) {} else { XCTFail() }
        // Invalid UTF-8 in a node id.
        let badID: [UInt8] = [1, 1, MessageKind.suspect.rawValue, 6, 0, 2, 0xC3, 0x28, 1, 0x61]
        if case .invalidField? = error(badID) {} else { XCTFail("\(String(describing: error(badID)))") }
        // Empty node id.
        if case .invalidField? = error([1, 1, MessageKind.suspect.rawValue, 4, 0, 0, 1, 0x61]) {} else { XCTFail() }
        // A NaN coordinate in an ack.
        var nan = Self.coordinate
        nan.height = .nan
        let ackBody = MessageCodec.encodeBody(.ack(.init(sequence: 1, responder: "r", coordinate: nan)))
        var w = WireWriter()
        w.write([1, 1, MessageKind.ack.rawValue])
        w.writeVarint(UInt64(ackBody.count))
        w.write(ackBody)
        if case .invalidField? = error(w.bytes) {} else { XCTFail("NaN coordinate accepted") }
        // Bad member status and push-pull flags.
        if case .invalidField? = error([1, 1, MessageKind.pushPull.rawValue, 1, 0x80]) {} else { XCTFail() }
    }

    func testRandomGarbageNeverCrashes() {
        var rng = GossipRandom(seed: 99)
        var decoder = codec()
        for i in 0..<3000 {
            let length = Int.random(in: 0..<200, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0, !bytes.isEmpty { bytes[0] = 1 }
            if i % 4 == 0, bytes.count > 1 { bytes[1] = UInt8.random(in: 0...3, using: &rng) }
            _ = try? MessageCodec.decodePacket(bytes)
            _ = try? decoder.openDatagram(bytes)
        }
        XCTAssertEqual(decoder.stats.totalDropped, 3000)
        XCTAssertEqual(decoder.stats.packetsReceived, 0)
    }

    /// Every valid encoding, with random bytes changed, inserted or removed: decoding either
    /// fails with a typed error or yields messages that re-encode cleanly.
    func testMutatedEncodingsNeverCrash() throws {
        var rng = GossipRandom(seed: 7)
        let packets = try Self.everyMessage.map { try MessageCodec.encodePacket([$0]) }
            + [try MessageCodec.encodePacket(Array(Self.everyMessage.prefix(8)))]
        var rejected = 0, accepted = 0
        for packet in packets {
            for _ in 0..<400 {
                var bytes = packet
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                    default: if bytes.count > 1 { bytes.remove(at: i) }
                    }
                }
                do {
                    let messages = try MessageCodec.decodePacket(bytes)
                    XCTAssertEqual(try MessageCodec.decodePacket(try MessageCodec.encodePacket(messages)), messages)
                    accepted += 1
                } catch is GossipError {
                    rejected += 1
                }
            }
        }
        XCTAssertGreaterThan(rejected, 0)
        XCTAssertEqual(rejected + accepted, packets.count * 400)
    }

    func testForgedWrongKeyAndForeignClusterPacketsAreRejectedAndCounted() throws {
        var sender = codec()
        var receiver = codec()
        let good = try sender.sealDatagram([.nack(.init(sequence: 5))])

        func rejection(_ bytes: [UInt8]) -> GossipError? {
            do { _ = try receiver.openDatagram(bytes); return nil } catch { return error }
        }
        // Any flipped bit, in nonce, ciphertext or tag, fails authentication.
        for i in 1..<good.count {
            var forged = good
            forged[i] ^= 0x01
            XCTAssertEqual(rejection(forged), .authenticationFailed, "byte \(i)")
        }
        var badVersion = good
        badVersion[0] = 2
        XCTAssertEqual(rejection(badVersion), .unsupportedEncryptionVersion(2))
        XCTAssertEqual(rejection(Array(good.prefix(28))), .packetTooShort(length: 28))
        XCTAssertEqual(rejection(Array(repeating: 0, count: 1401)), .packetTooLarge(size: 1401, limit: 1400))

        var stranger = codec(Array(repeating: 2, count: 32))
        XCTAssertEqual(rejection(try stranger.sealDatagram([.nack(.init(sequence: 5))])), .authenticationFailed)
        // Same key, another cluster name: the authenticated data differs.
        var foreign = codec(cluster: "staging")
        XCTAssertEqual(rejection(try foreign.sealDatagram([.nack(.init(sequence: 5))])), .authenticationFailed)

        // A validly sealed packet whose plaintext is garbage is authenticated but malformed.
        let keyring = try Keyring(primary: Array(repeating: 1, count: 32))
        let sealedGarbage = try keyring.seal([1, 3, 0xEE], authenticating: Array("prod".utf8))
        XCTAssertEqual(rejection(sealedGarbage), .unknownMessageType(0xEE))

        XCTAssertEqual(try receiver.openDatagram(good), [.nack(.init(sequence: 5))])
        let dropped = receiver.stats.packetsDropped
        XCTAssertEqual(dropped[.authenticationFailed], UInt64(good.count - 1) + 2)
        XCTAssertEqual(dropped[.unsupportedVersion], 1)
        XCTAssertEqual(dropped[.tooShort], 1)
        XCTAssertEqual(dropped[.tooLarge], 1)
        XCTAssertEqual(dropped[.malformed], 1)
        XCTAssertEqual(receiver.stats.packetsReceived, 1)
        XCTAssertFalse(GossipError.authenticationFailed.description.isEmpty)
    }

    func testOversizedDatagramIsRefusedWhenSealing() {
        var c = codec()
        let many = (0..<60).map { GossipMessage.alive(.init(incarnation: UInt64($0), metadata: T.meta("member-\($0)"))) }
        XCTAssertThrowsError(try c.sealDatagram(many)) { error in
            guard case GossipError.packetTooLarge(_, 1400) = error else { return XCTFail("\(error)") }
        }
        XCTAssertNoThrow(try c.sealStreamFrame(many), "streams carry full state beyond a datagram")
        var small = codec()
        small.maxStreamFrameSize = 100
        XCTAssertThrowsError(try small.openStreamFrame(try c.sealStreamFrame(many))) {
            XCTAssertEqual(($0 as? GossipError)?.dropReason, .tooLarge)
        }
        XCTAssertEqual(small.stats.packetsDropped[.tooLarge], 1)
        XCTAssertThrowsError(try MessageCodec.encodePacket(Array(repeating: .nack(.init(sequence: 1)), count: 256)))
    }

    func testVarintEdges() throws {
        for v: UInt64 in [0, 1, 127, 128, 255, 16383, 16384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max] {
            var w = WireWriter()
            w.writeVarint(v)
            var r = WireReader(w.bytes)
            XCTAssertEqual(try r.readVarint("v"), v)
            XCTAssertTrue(r.isAtEnd)
        }
        var overflow = WireReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
        XCTAssertThrowsError(try overflow.readVarint("v"))
    }
}

final class KeyringTests: XCTestCase {
    let k1 = Array(repeating: UInt8(1), count: 32)
    let k2 = Array(repeating: UInt8(2), count: 16)
    let k3 = Array(repeating: UInt8(3), count: 24)

    func testRotationWithoutDowntime() throws {
        var a = PacketCodec(keyring: try Keyring(primary: k1), clusterName: "c")
        var b = PacketCodec(keyring: try Keyring(primary: k1), clusterName: "c")
        let msg: [GossipMessage] = [.nack(.init(sequence: 1))]
        let oldPacket = try a.sealDatagram(msg)
        // 1. Install the new key everywhere.
        try a.keyring.install(k2)
        try b.keyring.install(k2)
        // 2. Switch one node's primary: the other still opens its packets, and vice versa.
        try a.keyring.use(k2)
        XCTAssertEqual(a.keyring.primaryKey, k2)
        XCTAssertEqual(try b.openDatagram(try a.sealDatagram(msg)), msg)
        XCTAssertEqual(try a.openDatagram(try b.sealDatagram(msg)), msg)
        try b.keyring.use(k2)
        // 3. Remove the old key: old packets are now refused, new ones pass.
        try a.keyring.remove(k1)
        try b.keyring.remove(k1)
        XCTAssertThrowsError(try b.openDatagram(oldPacket)) { XCTAssertEqual($0 as? GossipError, .authenticationFailed) }
        XCTAssertEqual(try b.openDatagram(try a.sealDatagram(msg)), msg)
        XCTAssertEqual(b.keyring.keys, [k2])
    }

    func testKeyringRules() throws {
        XCTAssertThrowsError(try Keyring(primary: [1, 2, 3])) { XCTAssertEqual($0 as? GossipError, .invalidKeyLength(3)) }
        XCTAssertThrowsError(try Keyring(primary: k1, secondary: [Array(repeating: 0, count: 33)]))
        var ring = try Keyring(primary: k1, secondary: [k2, k2, k3])
        XCTAssertEqual(ring.keys, [k1, k2, k3])
        XCTAssertThrowsError(try ring.remove(k1)) { XCTAssertEqual($0 as? GossipError, .cannotRemovePrimaryKey) }
        XCTAssertThrowsError(try ring.use(Array(repeating: 9, count: 32))) { XCTAssertEqual($0 as? GossipError, .keyNotInstalled) }
        XCTAssertThrowsError(try ring.remove(Array(repeating: 9, count: 32))) { XCTAssertEqual($0 as? GossipError, .keyNotInstalled) }
        try ring.install(k2)
        XCTAssertEqual(ring.keys.count, 3)
        // Every installed key opens; AES-128/192/256 all work.
        for key in [k1, k2, k3] {
            let sealer = try Keyring(primary: key)
            let packet = try sealer.seal([1, 2, 3], authenticating: [9])
            XCTAssertEqual(try ring.open(packet, authenticating: [9]), [1, 2, 3])
            XCTAssertThrowsError(try ring.open(packet, authenticating: [8]))
        }
        XCTAssertEqual(Keyring.generateKey().count, 32)
        XCTAssertEqual(Keyring.generateKey(bitCount: 128).count, 16)
        XCTAssertNotEqual(Keyring.generateKey(), Keyring.generateKey())
    }
}
