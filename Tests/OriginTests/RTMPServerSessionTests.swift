import XCTest
@testable import Origin

final class RTMPServerSessionTests: XCTestCase {
    /// A session past the handshake, plus a reader for what it sent.
    private func connectedSession(_ limits: RTMPLimits = .default) throws -> (RTMPServerSession, RTMPTestClient, ServerOutputReader, [RTMPMessage]) {
        var session = makeSession(limits)
        var client = RTMPTestClient()
        var reader = ServerOutputReader()
        let events = try session.receive(handshakeC0C1 + handshakeC2 + client.connect())
        let messages = try reader.feed(events)
        return (session, client, reader, messages)
    }

    private func publishingSession() throws -> (RTMPServerSession, RTMPTestClient, ServerOutputReader) {
        var (session, client, reader, _) = try connectedSession()
        var preamble = client.command("releaseStream", [.null, .string("testkey")])
        preamble += client.command("FCPublish", [.null, .string("testkey")])
        preamble += client.command("createStream", [.null])
        preamble += client.command("publish", [.null, .string("testkey"), .string("live")], streamID: 1, csid: 8)
        let events = try session.receive(preamble)
        XCTAssertEqual(nonSend(events), [.publishRequested(app: "live", streamKey: "testkey")])
        _ = try reader.feed(events)
        _ = try reader.feed(session.acceptPublish())
        return (session, client, reader)
    }

    func testConnectIsAnsweredWithControlMessagesAndResult() throws {
        var session = makeSession()
        var client = RTMPTestClient()
        var reader = ServerOutputReader()
        let events = try session.receive(handshakeC0C1 + handshakeC2 + client.connect())
        XCTAssertEqual(events.last, .connected(app: "live", tcURL: "rtmp://127.0.0.1/live"))
        let messages = try reader.feed(events)
        XCTAssertEqual(messages.count, 4)
        XCTAssertEqual(messages[0], RTMPMessage(typeID: 5, streamID: 0, timestamp: 0, payload: be32(2_500_000)))
        XCTAssertEqual(messages[1], RTMPMessage(typeID: 6, streamID: 0, timestamp: 0, payload: be32(2_500_000) + [2]))
        XCTAssertEqual(messages[2], RTMPMessage(typeID: 1, streamID: 0, timestamp: 0, payload: be32(4096)))
        XCTAssertEqual(messages[3].typeID, 20)
        XCTAssertEqual(messages[3].amf, [
            .string("_result"), .number(1),
            .object([AMF0Property("fmsVer", .string("FMS/3,0,1,123")), AMF0Property("capabilities", .number(31))]),
            .object([AMF0Property("level", .string("status")), AMF0Property("code", .string("NetConnection.Connect.Success")),
                     AMF0Property("description", .string("Connection succeeded.")), AMF0Property("objectEncoding", .number(0))]),
        ])
        // The control messages go out on chunk stream 2 with 128-byte chunks, exactly.
        let out = sends(events)
        XCTAssertEqual(Array(out[3073..<(3073 + 16)]), [0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0] + be32(2_500_000))
    }

    func testOutgoingChunkSizeIs4096AfterConnect() throws {
        var (session, client, _, _) = try connectedSession()
        // A description longer than 128 bytes must be sent in one chunk now.
        let long = String(repeating: "d", count: 1000)
        _ = try session.receive(client.command("createStream", [.null]) + client.command("publish", [.null, .string("k"), .string("live")], streamID: 1, csid: 8))
        let bytes = session.rejectPublish(code: "NetStream.Publish.BadName", description: long)
        XCTAssertFalse(bytes.dropFirst(12).contains(0xC5), "no type-3 continuation header on csid 5")
        var decoder = RTMPChunkDecoder()
        try decoder.setChunkSize(4096)
        decoder.append(bytes)
        let message = try XCTUnwrap(decoder.nextChunk()?.message)
        XCTAssertEqual(message.amf.last?["description"], .string(long))
    }

    func testPublishFlowAnswersAndEvents() throws {
        var (session, client, reader, _) = try connectedSession()
        var events = try session.receive(client.command("releaseStream", [.null, .string("testkey")]))
        XCTAssertEqual(try reader.feed(events).map(\.amf), [[.string("_result"), .number(2), .null, .undefined]])
        events = try session.receive(client.command("FCPublish", [.null, .string("testkey")]))
        XCTAssertEqual(try reader.feed(events).map(\.amf), [
            [.string("onFCPublish"), .number(0), .null, .object([
                AMF0Property("level", .string("status")), AMF0Property("code", .string("NetStream.Publish.Start")),
                AMF0Property("description", .string("testkey"))])],
            [.string("_result"), .number(3), .null, .undefined],
        ])
        events = try session.receive(client.command("createStream", [.null]))
        XCTAssertEqual(try reader.feed(events).map(\.amf), [[.string("_result"), .number(4), .null, .number(1)]])
        events = try session.receive(client.command("publish", [.null, .string("testkey?token=abc"), .string("live")], streamID: 1, csid: 8))
        XCTAssertEqual(events, [.publishRequested(app: "live", streamKey: "testkey")])
        XCTAssertFalse(session.isPublishing)

        let accepted = try reader.feed(session.acceptPublish())
        XCTAssertEqual(accepted.count, 2)
        XCTAssertEqual(accepted[0], RTMPMessage(typeID: 4, streamID: 0, timestamp: 0, payload: [0, 0, 0, 0, 0, 1]))
        XCTAssertEqual(accepted[1].streamID, 1)
        XCTAssertEqual(accepted[1].amf.first, .string("onStatus"))
        XCTAssertEqual(accepted[1].amf.last?["level"], .string("status"))
        XCTAssertEqual(accepted[1].amf.last?["code"], .string("NetStream.Publish.Start"))
        XCTAssertTrue(session.isPublishing)
        XCTAssertEqual(session.acceptPublish(), [], "nothing pending any more")

        events = try session.receive(client.metadata([AMF0Property("width", .number(320)), AMF0Property("encoder", .string("Lavf"))]))
        XCTAssertEqual(events, [.metadata(["width": .number(320), "encoder": .string("Lavf")])])
        events = try session.receive(client.media(9, timestamp: 0, [0x17, 0, 0, 0, 0, 1]) + client.media(8, timestamp: 23, [0xAF, 0, 0x12, 0x10]))
        XCTAssertEqual(events, [.video(timestamp: 0, payload: [0x17, 0, 0, 0, 0, 1]), .audio(timestamp: 23, payload: [0xAF, 0, 0x12, 0x10])])
        events = try session.receive(client.command("FCUnpublish", [.null, .string("testkey")]) + client.command("deleteStream", [.null, .number(1)]))
        XCTAssertEqual(events, [.unpublished], "unpublished is reported once")
        XCTAssertFalse(session.isPublishing)
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 40, [0x27, 1, 0, 0, 0])), [], "media after unpublish is dropped")
    }

    func testMediaIsReportedFromPublishOnNotBefore() throws {
        var (session, client, _, _) = try connectedSession()
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 0, [0x17, 1, 0, 0, 0])), [], "no publish yet: dropped")
        XCTAssertEqual(try session.receive(client.metadata([AMF0Property("a", .null)])), [])
        _ = try session.receive(client.command("publish", [.null, .string("k"), .string("live")], streamID: 1, csid: 8))
        // Pending decision: reported, so events do not depend on when the host answers.
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 10, [0x17, 1, 0, 0, 0])), [.video(timestamp: 10, payload: [0x17, 1, 0, 0, 0])])
        _ = session.acceptPublish()
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 33, [0x17, 1, 0, 0, 0])), [.video(timestamp: 33, payload: [0x17, 1, 0, 0, 0])])
    }

    func testRejectPublishSendsErrorStatus() throws {
        var (session, client, reader, _) = try connectedSession()
        _ = try session.receive(client.command("publish", [.null, .string("bad"), .string("live")], streamID: 1, csid: 8))
        let messages = try reader.feed(session.rejectPublish(code: "NetStream.Publish.BadName", description: "unknown stream key"))
        XCTAssertEqual(messages.count, 1)
        XCTAssertEqual(messages[0].streamID, 1)
        XCTAssertEqual(messages[0].amf, [.string("onStatus"), .number(0), .null, .object([
            AMF0Property("level", .string("error")), AMF0Property("code", .string("NetStream.Publish.BadName")),
            AMF0Property("description", .string("unknown stream key"))])])
        XCTAssertEqual(session.acceptPublish(), [])
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 0, [0x17, 1, 0, 0, 0])), [])
    }

    func testCloseStreamUnpublishes() throws {
        var (session, client, _) = try publishingSession()
        XCTAssertEqual(try session.receive(client.command("closeStream", [.null], streamID: 1, csid: 8)), [.unpublished])
    }

    func testAMF3CommandMessage() throws {
        var (session, client, reader, _) = try connectedSession()
        let events = try session.receive(client.command("createStream", [.null], typeID: 17))
        XCTAssertEqual(try reader.feed(events).map(\.amf), [[.string("_result"), .number(2), .null, .number(1)]])
    }

    func testUnknownCommandAndCheckBandwidth() throws {
        var (session, client, reader, _) = try connectedSession()
        XCTAssertEqual(try session.receive(client.command("getStreamLength", [.null, .string("x")])), [.unknownCommand(name: "getStreamLength")])
        let events = try session.receive(client.command("_checkbw", [.null]))
        XCTAssertEqual(try reader.feed(events).map(\.amf), [[.string("_result"), .number(3), .null, .undefined]])
    }

    func testPingRequestGetsPingResponse() throws {
        var (session, client, reader, _) = try connectedSession()
        let events = try session.receive(client.control(4, [0, 6] + be32(0xDEAD_BEEF)))
        XCTAssertEqual(sends(events), [0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7] + be32(0xDEAD_BEEF))
        XCTAssertEqual(try reader.feed(events), [RTMPMessage(typeID: 4, streamID: 0, timestamp: 0, payload: [0, 7] + be32(0xDEAD_BEEF))])
        XCTAssertEqual(try session.receive(client.control(4, [0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8])), [], "Set Buffer Length needs no answer")
    }

    func testAcknowledgementsAfterTheWindow() throws {
        var (session, client, reader, _) = try connectedSession()
        let setWindow = client.control(5, be32(1000))
        XCTAssertEqual(try session.receive(setWindow), [])
        XCTAssertEqual(session.peerWindowAcknowledgementSize, 1000)
        // Handshake (3073) + connect + window message are already past the window: the next
        // complete chunk triggers the first acknowledgement with the byte count so far.
        var received = session.bytesReceived
        var acks: [UInt32] = []
        for i in 0..<70 {
            let chunk = client.control(3, be32(UInt32(i)))  // incoming Acknowledgement: 16 bytes, ignored
            XCTAssertEqual(chunk.count, 16)
            received += UInt64(chunk.count)
            for m in try reader.feed(session.receive(chunk)) where m.typeID == 3 {
                acks.append(UInt32(m.payload[0]) << 24 | UInt32(m.payload[1]) << 16 | UInt32(m.payload[2]) << 8 | UInt32(m.payload[3]))
                XCTAssertEqual(UInt64(acks.last!), received, "ack carries the bytes received so far")
            }
        }
        XCTAssertEqual(session.bytesReceived, received)
        // First ack on the first chunk after the window was set (already past 1000 bytes),
        // the next one 63 chunks (1008 bytes) later; 6 more chunks stay under the window.
        XCTAssertEqual(acks.count, 2)
        XCTAssertEqual(acks.count == 2 ? acks[1] - acks[0] : 0, 1008)
    }

    func testPeerSetChunkSizeMidStream() throws {
        var (session, client, _) = try publishingSession()
        let big = [UInt8](repeating: 0x27, count: 3000)
        var bytes = client.media(9, timestamp: 0, big)
        bytes += client.setChunkSize(1000)
        bytes += client.media(9, timestamp: 33, big)
        XCTAssertEqual(try session.receive(bytes), [.video(timestamp: 0, payload: big), .video(timestamp: 33, payload: big)])
        XCTAssertEqual(session.peerChunkSize, 1000)
    }

    func testAbortMessage() throws {
        var (session, client, _) = try publishingSession()
        var bytes = Array(client.media(9, timestamp: 0, [UInt8](repeating: 1, count: 300)).prefix(12 + 128))
        XCTAssertEqual(try session.receive(bytes), [])
        XCTAssertEqual(session.bufferedByteCount, 128)
        bytes = client.control(2, be32(6))
        XCTAssertEqual(try session.receive(bytes), [])
        XCTAssertEqual(session.bufferedByteCount, 0)
        XCTAssertEqual(try session.receive(client.media(9, timestamp: 5, [1, 2])), [.video(timestamp: 5, payload: [1, 2])])
    }

    func testAggregateMessageIsSplitIntoTags() throws {
        var (session, client, _) = try publishingSession()
        func tag(_ type: UInt8, _ ts: UInt32, _ body: [UInt8]) -> [UInt8] {
            [type] + be24(UInt32(body.count)) + be24(ts & 0xFFFFFF) + [UInt8(ts >> 24)] + [0, 0, 0] + body + be32(UInt32(11 + body.count))
        }
        let payload = tag(9, 1000, [0x17, 1, 0, 0, 0]) + tag(8, 1010, [0xAF, 1, 9]) + tag(9, 1033, [0x27, 1, 0, 0, 0])
        let events = try session.receive(client.media(22, timestamp: 500, payload, csid: 6))
        XCTAssertEqual(events, [
            .video(timestamp: 500, payload: [0x17, 1, 0, 0, 0]),
            .audio(timestamp: 510, payload: [0xAF, 1, 9]),
            .video(timestamp: 533, payload: [0x27, 1, 0, 0, 0]),
        ])
        assertThrows(.protocolViolation("aggregate message has a truncated tag body")) {
            try session.receive(client.media(22, timestamp: 0, Array(payload.prefix(14)), csid: 6))
        }
    }

    func testOnMetaDataWithoutSetDataFrame() throws {
        var (session, client, _) = try publishingSession()
        let payload = AMF0.encode([.string("onMetaData"), .object([AMF0Property("fps", .number(30))])])
        let events = try session.receive(client.encoder.encode(RTMPMessage(typeID: 18, streamID: 1, timestamp: 0, payload: payload), chunkStreamID: 4))
        XCTAssertEqual(events, [.metadata(["fps": .number(30)])])
    }

    func testAMF3DataMessageWithLeadingZero() throws {
        var (session, client, _) = try publishingSession()
        let payload = [0] + AMF0.encode([.string("@setDataFrame"), .string("onMetaData"), .ecmaArray([AMF0Property("fps", .number(25))])])
        let events = try session.receive(client.encoder.encode(RTMPMessage(typeID: 15, streamID: 1, timestamp: 0, payload: payload), chunkStreamID: 4))
        XCTAssertEqual(events, [.metadata(["fps": .number(25)])])
    }

    func testOtherDataMessagesAndSharedObjectsAreIgnored() throws {
        var (session, client, _) = try publishingSession()
        let data = AMF0.encode([.string("onTextData"), .object([AMF0Property("text", .string("hi"))])])
        XCTAssertEqual(try session.receive(client.encoder.encode(RTMPMessage(typeID: 18, streamID: 1, timestamp: 0, payload: data), chunkStreamID: 4)), [])
        XCTAssertEqual(try session.receive(client.encoder.encode(RTMPMessage(typeID: 19, streamID: 0, timestamp: 0, payload: [1, 2, 3]), chunkStreamID: 3)), [])
        XCTAssertTrue(session.isPublishing)
    }

    func testErrorDescriptionsAreActionable() {
        let errors: [RTMPError] = [
            .unsupportedVersion(6), .chunkSizeOutOfRange(0), .messageTooLarge(1), .tooManyChunkStreams,
            .noPreviousHeader(chunkStreamID: 3), .bufferLimitExceeded(10), .malformedAMF("x"),
            .malformedFLVTag("y"), .protocolViolation("z"),
            .messageTooLargeBeforePublish(length: 15_000_000, limit: 65536), .amfTooLarge(inputBytes: 60_000, budget: 496_384),
        ]
        XCTAssertEqual(Set(errors.map(\.description)).count, errors.count)
        XCTAssertTrue(RTMPError.unsupportedVersion(6).description.contains("6"))
        XCTAssertTrue(RTMPError.noPreviousHeader(chunkStreamID: 77).description.contains("77"))
        let early = RTMPError.messageTooLargeBeforePublish(length: 15_000_000, limit: 65536).description
        XCTAssertTrue(early.contains("15000000") && early.contains("65536") && early.contains("stream key"), early)
    }
}
