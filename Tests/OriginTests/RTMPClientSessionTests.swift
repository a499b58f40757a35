import XCTest
@testable import Origin

/// RTMPClientSession against the real RTMPServerSession, in memory, with seeded splits.
final class RTMPClientSessionTests: XCTestCase {
    enum Media: Equatable {
        case video(UInt32, [UInt8])
        case audio(UInt32, [UInt8])
    }

    /// Timestamps that exercise every header path: type 0 first, type-1 deltas, a 100 KB
    /// message split into many chunks, an extended delta, extended absolute timestamps after a
    /// backward step, timestamps near 2^32.
    static func mediaPlan(_ rng: inout SeededRNG) -> [Media] {
        var plan: [Media] = [
            .video(0, [0x17, 0, 0, 0, 0] + rng.bytes(40)),  // "sequence header"
            .audio(0, [0xAF, 0] + rng.bytes(2)),
        ]
        for i in 1...20 {
            plan.append(.video(UInt32(i) * 33, [0x27, 1, 0, 0, 0] + rng.bytes(Int.random(in: 1...3000, using: &rng))))
            plan.append(.audio(UInt32(i) * 23, [0xAF, 1] + rng.bytes(Int.random(in: 1...400, using: &rng))))
        }
        plan.append(.video(700, [0x17, 1, 0, 0, 0] + rng.bytes(100 * 1024)))  // 100 KB keyframe
        plan.append(.video(0x0100_0000, [0x27, 1] + rng.bytes(5000)))          // delta ≥ 0xFFFFFF
        plan.append(.video(0x0100_0021, [0x27, 1] + rng.bytes(5000)))          // small delta, above 0xFFFFFF
        plan.append(.audio(0x0100_0010, [0xAF, 1] + rng.bytes(300)))           // extended delta on audio
        plan.append(.video(0x0300_0000, [0x27, 1] + rng.bytes(9000)))
        plan.append(.video(0x0200_0000, [0x27, 1] + rng.bytes(9000)))          // backward: type 0, extended absolute
        plan.append(.video(0x0200_0000, [0x27, 1] + rng.bytes(10)))            // zero delta
        plan.append(.video(500, [0x27, 1] + rng.bytes(10)))                    // backward below 0xFFFFFF
        plan.append(.audio(0xFFFF_FFF0, [0xAF, 1] + rng.bytes(10)))
        plan.append(.video(0xFFFF_FFFF, [0x27, 1] + rng.bytes(5000)))
        return plan
    }

    func testPublishesToServerSessionAcrossSeeds() throws {
        let metadata = [
            AMF0Property("width", .number(320)), AMF0Property("height", .number(240)),
            AMF0Property("videocodecid", .number(7)), AMF0Property("audiocodecid", .number(10)),
            AMF0Property("encoder", .string("StreamTube relay")),
        ]
        for seed: UInt64 in 1...8 {
            var link = RTMPClientServerLink(seed: seed)
            try link.connectAndPublish()
            XCTAssertEqual(link.clientEvents, [.publishing], "seed \(seed)")
            XCTAssertTrue(link.client.isPublishing)
            XCTAssertEqual(link.client.streamID, RTMPServerSession.publishStreamID)
            XCTAssertEqual(link.serverEvents, [
                .connected(app: "relay", tcURL: "rtmp://owner.example:1935/relay"),
                .publishRequested(app: "relay", streamKey: "signed-key"),
            ], "seed \(seed)")
            link.serverEvents = []

            var expected: [RTMPServerEvent] = [.metadata(Dictionary(uniqueKeysWithValues: metadata.map { ($0.key, $0.value) }))]
            link.toServer += link.client.sendMetadata(metadata)
            var rng = SeededRNG(seed: seed &* 31)
            for item in Self.mediaPlan(&rng) {
                switch item {
                case .video(let ts, let payload):
                    link.toServer += link.client.sendVideo(timestamp: ts, payload: payload)
                    expected.append(.video(timestamp: ts, payload: payload))
                case .audio(let ts, let payload):
                    link.toServer += link.client.sendAudio(timestamp: ts, payload: payload)
                    expected.append(.audio(timestamp: ts, payload: payload))
                }
                if Bool.random(using: &rng) { try link.pump() }
            }
            try link.pump()
            XCTAssertEqual(link.serverEvents.count, expected.count, "seed \(seed)")
            for (got, want) in zip(link.serverEvents, expected) where got != want {
                XCTFail("seed \(seed): got \(Self.brief(got)), expected \(Self.brief(want))")
                break
            }

            link.toServer += link.client.unpublish()
            XCTAssertFalse(link.client.isPublishing)
            XCTAssertEqual(link.client.sendVideo(timestamp: 1, payload: [1]), [], "no media after unpublish")
            try link.pump()
            XCTAssertEqual(link.serverEvents.last, .unpublished, "seed \(seed)")
            XCTAssertEqual(link.serverEvents.filter { $0 == .unpublished }.count, 1)
            XCTAssertEqual(link.client.bufferedByteCount, 0)
            XCTAssertEqual(link.server.bufferedByteCount, 0)
        }
    }

    static func brief(_ e: RTMPServerEvent) -> String {
        switch e {
        case .video(let ts, let p): return "video(\(ts), \(p.count) bytes)"
        case .audio(let ts, let p): return "audio(\(ts), \(p.count) bytes)"
        default: return "\(e)"
        }
    }

    func testServerRejectionReachesClient() throws {
        for seed: UInt64 in 1...4 {
            var link = RTMPClientServerLink(seed: seed, answer: .reject(code: "NetStream.Publish.BadName", description: "signature expired"))
            try link.connectAndPublish()
            XCTAssertEqual(link.clientEvents, [.rejected(code: "NetStream.Publish.BadName", description: "signature expired")])
            XCTAssertFalse(link.client.isPublishing)
            XCTAssertEqual(link.client.sendVideo(timestamp: 0, payload: [0x17]), [])
            XCTAssertEqual(link.client.sendMetadata([]), [])
        }
    }

    func testNothingIsSentBeforePublishStart() throws {
        var link = RTMPClientServerLink(seed: 9, answer: .none)
        XCTAssertEqual(link.client.sendVideo(timestamp: 0, payload: [1]), [])
        XCTAssertEqual(link.client.unpublish(), [], "nothing to unpublish before createStream")
        try link.connectAndPublish()
        XCTAssertEqual(link.clientEvents, [])
        XCTAssertFalse(link.client.isPublishing)
        XCTAssertEqual(link.client.sendAudio(timestamp: 0, payload: [1]), [], "publish requested but not started")
        XCTAssertEqual(link.client.streamID, 1)
        // The host may give up while waiting: unpublish still tells the server.
        link.toServer += link.client.unpublish()
        try link.pump()
        XCTAssertEqual(link.serverEvents.last, .unpublished)
    }

    /// The client's own output, decoded: the command sequence, chunk streams and transaction ids.
    func testClientWritesTheFFmpegCommandSequence() throws {
        var link = RTMPClientServerLink(seed: 3)
        var reader = ClientOutputReader()
        link.toServer += link.client.start()
        var written: [RTMPMessage] = try reader.feed(link.toServer)
        // Pump manually, recording what the client writes.
        while !link.toServer.isEmpty || !link.toClient.isEmpty {
            for event in try link.server.receive(link.toServer) {
                switch event {
                case .send(let b): link.toClient += b
                case .publishRequested: link.toClient += link.server.acceptPublish()
                default: break
                }
            }
            link.toServer = []
            let events = try link.client.receive(link.toClient)
            link.toClient = []
            for case .send(let b) in events {
                written += try reader.feed(b)
                link.toServer += b
            }
        }
        XCTAssertEqual(written.first?.typeID, RTMPMessage.TypeID.setChunkSize)
        XCTAssertEqual(written.first?.payload, be32(4096))
        let commands = written.filter { $0.typeID == 20 }.map { ($0.amf.first?.stringValue ?? "?", $0.amf.dropFirst().first?.numberValue ?? -1, $0.streamID) }
        XCTAssertEqual(commands.map(\.0), ["connect", "releaseStream", "FCPublish", "createStream", "publish"])
        XCTAssertEqual(commands.map(\.1), [1, 2, 3, 4, 5])
        XCTAssertEqual(commands.map(\.2), [0, 0, 0, 0, 1])
        let connect = written.first { $0.amf.first == .string("connect") }!.amf[2]
        XCTAssertEqual(connect["app"], .string("relay"))
        XCTAssertEqual(connect["tcUrl"], .string("rtmp://owner.example:1935/relay"))
        XCTAssertEqual(connect["type"], .string("nonprivate"))
        XCTAssertEqual(connect["flashVer"]?.stringValue?.hasPrefix("FMLE/3.0"), true)
        let publish = written.first { $0.amf.first == .string("publish") }!
        XCTAssertEqual(Array(publish.amf.dropFirst(2)), [.null, .string("signed-key"), .string("live")])
        // Our server announced Set Peer Bandwidth 2.5 MB: the client answers with Window Ack Size.
        XCTAssertTrue(written.contains { $0.typeID == 5 && $0.payload == be32(RTMPServerSession.announcedPeerBandwidth) })
    }

    func testCompressingEncoderRoundTripsThroughDecoder() throws {
        var encoder = RTMPCompressingChunkEncoder(chunkSize: 100)
        var decoder = RTMPChunkDecoder()
        let messages: [(UInt32, RTMPMessage)] = [
            (6, RTMPMessage(typeID: 9, streamID: 1, timestamp: 10, payload: Array(repeating: 1, count: 250))),
            (6, RTMPMessage(typeID: 9, streamID: 1, timestamp: 43, payload: Array(repeating: 2, count: 10))),
            (6, RTMPMessage(typeID: 9, streamID: 1, timestamp: 0x0200_0000, payload: Array(repeating: 3, count: 333))),
            (6, RTMPMessage(typeID: 9, streamID: 1, timestamp: 0x0200_0001, payload: Array(repeating: 4, count: 201))),
            (6, RTMPMessage(typeID: 9, streamID: 2, timestamp: 0x0200_0001, payload: [])),
            (6, RTMPMessage(typeID: 9, streamID: 2, timestamp: 0x0100_0000, payload: Array(repeating: 5, count: 300))),
            (4, RTMPMessage(typeID: 8, streamID: 1, timestamp: 0xFFFF_FFFF, payload: Array(repeating: 6, count: 101))),
            (4, RTMPMessage(typeID: 18, streamID: 1, timestamp: 0, payload: [7])),
            (400, RTMPMessage(typeID: 8, streamID: 1, timestamp: 1, payload: [8])),
        ]
        var bytes: [UInt8] = []
        var formats: [UInt8] = []
        for (csid, m) in messages {
            let out = encoder.encode(m, chunkStreamID: csid)
            formats.append(out[0] >> 6)
            bytes += out
        }
        XCTAssertEqual(formats, [0, 1, 1, 1, 0, 0, 0, 0, 0])
        decoder.append(bytes)
        try decoder.setChunkSize(100)
        var decoded: [RTMPMessage] = []
        while let chunk = try decoder.nextChunk() { if let m = chunk.message { decoded.append(m) } }
        XCTAssertEqual(decoded, messages.map(\.1))
    }

    func testAnswersPingAcknowledgesWindowAndFollowsChunkSize() throws {
        var (client, reader, messages) = try handshakenClient()
        XCTAssertEqual(messages.map(\.typeID), [1, 20], "Set Chunk Size, connect")
        let server = FakeServer()
        var input = server.control(5, be32(200))                  // Window Ack Size 200
        input += server.control(4, [0, 6] + be32(123_456))          // Ping Request
        input += server.control(4, [0, 0] + be32(1))                // Stream Begin: no answer
        input += server.control(1, be32(64))                        // Set Chunk Size 64
        var big = RTMPChunkEncoder(chunkSize: 64)
        big.chunkSize = 64
        input += big.encode(RTMPMessage(typeID: 20, streamID: 0, timestamp: 0, payload: AMF0.encode([
            .string("onBWDone"), .number(0), .null, .string(String(repeating: "x", count: 300)),
        ])), chunkStreamID: 3)
        var events: [RTMPClientEvent] = []
        for byte in input { events += try client.receive([byte]) }
        XCTAssertEqual(client.peerChunkSize, 64)
        XCTAssertEqual(client.peerWindowAcknowledgementSize, 200)
        XCTAssertEqual(clientNonSend(events), [])
        let written = try reader.feed(events)
        XCTAssertTrue(written.contains(RTMPMessage(typeID: 4, streamID: 0, timestamp: 0, payload: [0, 7] + be32(123_456))), "Ping Response")
        XCTAssertEqual(written.filter { $0.typeID == 4 }.count, 1, "Stream Begin needs no answer")
        // The window counts from the first handshake byte and is checked at chunk boundaries
        // before the chunk's message is handled: 3073 handshake bytes already pass 200, so the
        // first acknowledgement comes at the end of the Ping chunk, the next 200+ bytes later.
        let acks = written.filter { $0.typeID == 3 }.map { UInt32($0.payload[0]) << 24 | UInt32($0.payload[1]) << 16 | UInt32($0.payload[2]) << 8 | UInt32($0.payload[3]) }
        XCTAssertEqual(acks.count, 2, "\(acks)")
        XCTAssertEqual(acks.first, 3073 + UInt32(server.control(5, be32(200)).count + server.control(4, [0, 6] + be32(123_456)).count), "checked at the first chunk boundary after the window is known")
        if acks.count == 2 { XCTAssertGreaterThanOrEqual(acks[1] - acks[0], 200) }
        XCTAssertLessThanOrEqual(acks.last ?? 0, UInt32(3073 + input.count))
    }

    /// A relay asks its origin to acknowledge every `acknowledgementWindow` bytes (announced after
    /// the handshake, and kept in answer to the server's Set Peer Bandwidth): the server does, and
    /// each Acknowledgement reaches the client as the count of bytes the server has received.
    func testARelaysOwnWindowMakesTheServerAcknowledgeWhatItReceived() throws {
        func publish(window: UInt32?) throws -> (acks: [UInt32], sent: Int) {
            var link = RTMPClientServerLink(seed: 5, acknowledgementWindow: window)
            let hello = link.client.start()
            link.toServer += hello
            var sent = hello.count
            var produced: [UInt8] = []
            try link.pump()
            XCTAssertTrue(link.client.isPublishing)
            var rng = SeededRNG(seed: 9)
            for i in 0..<100 {
                let bytes = link.client.sendVideo(timestamp: UInt32(i) * 33, payload: [0x27, 1, 0, 0, 0] + rng.bytes(2000))
                produced += bytes
                link.toServer += bytes
                try link.pump()
            }
            // Control bytes (C2, Set Chunk Size, commands, the window) are the rest of what the server received.
            sent += produced.count
            let acks = link.clientEvents.compactMap { e -> UInt32? in if case .acknowledged(let n) = e { n } else { nil } }
            return (acks, sent)
        }
        let (acks, sent) = try publish(window: 4096)
        XCTAssertEqual(acks, acks.sorted(), "counts grow")
        // At the first chunk boundary past each 4 KiB (a chunk here is one 2 KiB video message).
        XCTAssertTrue(zip(acks, acks.dropFirst()).allSatisfy { $1 - $0 >= 4096 && $1 - $0 < 4096 + 2100 }, "\(acks)")
        XCTAssertGreaterThan(acks.count, sent / (4096 + 2100) - 2)
        // The last one is within a window of everything the server received.
        XCTAssertGreaterThan(Int(acks.last!), sent - 4096 - 2100)
        let (plainAcks, _) = try publish(window: nil)
        XCTAssertLessThan(plainAcks.count, 2, "without it, the server's own (large) window applies")
    }

    func testConnectErrorIsARejection() throws {
        var (client, _, _) = try handshakenClient()
        let events = try client.receive(FakeServer().command([
            .string("_error"), .number(1), .null,
            .object([AMF0Property("level", .string("error")), AMF0Property("code", .string("NetConnection.Connect.Rejected")),
                     AMF0Property("description", .string("unknown app"))]),
        ]))
        XCTAssertEqual(events, [.rejected(code: "NetConnection.Connect.Rejected", description: "unknown app")])
    }

    func testCreateStreamErrorIsARejectionAndReleaseStreamErrorIsNot() throws {
        var (client, reader, _) = try handshakenClient()
        let server = FakeServer()
        let afterConnect = try client.receive(server.command([.string("_result"), .number(1), .null,
            .object([AMF0Property("level", .string("status")), AMF0Property("code", .string("NetConnection.Connect.Success"))])]))
        XCTAssertEqual(try reader.feed(afterConnect).map { $0.amf.first?.stringValue }, ["releaseStream", "FCPublish", "createStream"])
        XCTAssertEqual(try client.receive(server.command([.string("_error"), .number(2), .null, .null])), [])
        XCTAssertEqual(try client.receive(server.command([.string("_error"), .number(4), .null, .null])),
                       [.rejected(code: "", description: "server answered createStream with _error")])
    }

    func testOtherStatusIsReported() throws {
        var link = RTMPClientServerLink(seed: 5)
        try link.connectAndPublish()
        let events = try link.client.receive(FakeServer().command([.string("onStatus"), .number(0), .null,
            .object([AMF0Property("level", .string("status")), AMF0Property("code", .string("NetStream.Publish.Idle"))])], streamID: 1))
        XCTAssertEqual(events, [.status(code: "NetStream.Publish.Idle")])
        XCTAssertTrue(link.client.isPublishing)
        let error = try link.client.receive(FakeServer().command([.string("onStatus"), .number(0), .null,
            .object([AMF0Property("level", .string("error")), AMF0Property("code", .string("NetStream.Publish.Denied")),
                     AMF0Property("description", .string("owner moved"))])], streamID: 1))
        XCTAssertEqual(error, [.rejected(code: "NetStream.Publish.Denied", description: "owner moved")])
        XCTAssertFalse(link.client.isPublishing)
    }

    func testAnOriginHandingTheStreamOverTellsTheRelayWhereToResume() throws {
        var link = RTMPClientServerLink(seed: 6)
        try link.connectAndPublish()
        XCTAssertTrue(link.client.isPublishing)
        link.toServer += link.client.sendVideo(timestamp: 4_000, payload: [0x17, 1, 0, 0, 0, 9])
        try link.pump()
        link.clientEvents = []
        link.toClient += link.server.handOver(resumeAt: 4_000)
        try link.pump()
        XCTAssertEqual(link.clientEvents, [.resume(at: 4_000)])
        XCTAssertEqual(link.server.handOver(resumeAt: 5_000), [], "said once, then the server takes nothing more")
        XCTAssertFalse(link.server.isPublishing)
        // Another server's status of that name without a timestamp is only a status.
        let odd = try link.client.receive(FakeServer().command([.string("onStatus"), .number(0), .null,
            .object([AMF0Property("level", .string("status")), AMF0Property("code", .string(RTMPServerSession.resumeCode)),
                     AMF0Property("description", .string("soon"))])], streamID: 1))
        XCTAssertEqual(odd, [.status(code: RTMPServerSession.resumeCode)])
    }
}
