import XCTest
@testable import Origin

/// Until a publish is accepted, an anonymous peer can make the session hold tens of KB, not
/// megabytes: long messages are refused on their chunk header, partial messages and AMF
/// decodes are bounded. After the host accepts the publish, media limits are the full ones.
final class RTMPBeforePublishLimitTests: XCTestCase {
    private let limit = RTMPLimits.default.maxMessageLengthBeforePublish

    private func afterHandshake() throws -> RTMPServerSession {
        var session = makeSession()
        XCTAssertFalse(session.isHandshakeComplete)
        _ = try session.receive(Array(handshakeC0C1.prefix(100)))
        XCTAssertFalse(session.isHandshakeComplete)
        session = makeSession()
        XCTAssertTrue(try session.receive(handshakeC0C1 + handshakeC2).count == 1)
        XCTAssertTrue(session.isHandshakeComplete)
        XCTAssertFalse(session.isAuthenticated)
        return session
    }

    /// A session whose publish the host accepted, and the client that got there.
    private func acceptedSession() throws -> (RTMPServerSession, RTMPTestClient) {
        var session = try afterHandshake()
        var client = RTMPTestClient()
        let events = try session.receive(client.publishPreamble())
        XCTAssertTrue(events.contains(.publishRequested(app: "live", streamKey: "testkey")))
        XCTAssertFalse(session.isAuthenticated)
        XCTAssertFalse(session.acceptPublish().isEmpty)
        XCTAssertTrue(session.isAuthenticated)
        return (session, client)
    }

    /// The first bytes of the reported attack: a 15 MB AMF0 command, a strict array of booleans.
    private func bombHeaderAndStart(length: Int = 15_000_000) -> (header: [UInt8], body: [UInt8]) {
        let header = rawChunk(format: 0, csid: 3, length: length, typeID: 20, payload: [])
        var body: [UInt8] = [0x02, 0x00, 0x07] + Array("connect".utf8) + [0x00] + be32(0x3FF0_0000) + be32(0) + [0x0A] + be32(UInt32((length - 20) / 2))
        while body.count < 128 { body += [0x01, 0x01] }
        return (header, body)
    }

    func testFifteenMegabyteCommandBeforeConnectIsRefusedOnItsHeader() throws {
        let (header, body) = bombHeaderAndStart()
        let expected = RTMPError.messageTooLargeBeforePublish(length: 15_000_000, limit: limit)
        // Fed byte by byte: nothing is refused (or held beyond the header) until the header is whole.
        var session = try afterHandshake()
        for byte in header.dropLast() {
            XCTAssertEqual(try session.receive([byte]), [])
            XCTAssertLessThanOrEqual(session.bufferedByteCount, header.count)
        }
        assertThrows(expected) { try session.receive([header.last!]) }
        XCTAssertEqual(session.failure, expected)
        XCTAssertEqual(session.bufferedByteCount, 0)
        assertThrows(expected) { try session.receive(body) }
        XCTAssertEqual(session.bufferedByteCount, 0)
        // In one read with the first 64 KB of its body: refused, and nothing of it kept.
        var whole = try afterHandshake()
        var chunk = header + body
        chunk += [UInt8](repeating: 0x01, count: 65536 - chunk.count)
        assertThrows(expected) { try whole.receive(chunk) }
        XCTAssertEqual(whole.bufferedByteCount, 0)
        XCTAssertTrue(expected.description.contains("before its publish was accepted"), expected.description)
    }

    func testMediaBeforePublishIsBoundedToo() throws {
        var session = try afterHandshake()
        let client = RTMPTestClient()
        assertThrows(.messageTooLargeBeforePublish(length: 200_000, limit: limit)) {
            try session.receive(rawChunk(format: 0, csid: 6, length: 200_000, typeID: 9, streamID: 1, payload: [0x17, 0]))
        }
        // Also after publish was requested but before the host accepted it.
        var pending = try afterHandshake()
        var c = client
        _ = try pending.receive(c.publishPreamble())
        assertThrows(.messageTooLargeBeforePublish(length: 1_000_000, limit: limit)) {
            try pending.receive(c.media(9, timestamp: 0, [UInt8](repeating: 0x17, count: 1_000_000)))
        }
        // A small one is fine (and reported, for the host to drop until it accepts).
        var small = try afterHandshake()
        var s = RTMPTestClient()
        _ = try small.receive(s.publishPreamble())
        let events = try small.receive(s.media(9, timestamp: 0, [UInt8](repeating: 0x17, count: 1000)))
        XCTAssertEqual(events, [.video(timestamp: 0, payload: [UInt8](repeating: 0x17, count: 1000))])
    }

    func testBufferedBytesStayUnderTheBoundFedByteByByte() throws {
        var session = try afterHandshake()
        var client = RTMPTestClient()
        // A huge chunk size announced before connect does not let the peer make us hold more.
        _ = try session.receive(client.setChunkSize(16 * 1024 * 1024))
        XCTAssertEqual(session.peerChunkSize, 16 * 1024 * 1024)
        // A command of exactly the limit is accepted (an unknown command with a long string)...
        let filler = String(repeating: "a", count: limit - 3 - 4 - 9 - 3)
        let atLimit = client.command("note", [.string(filler)])
        XCTAssertEqual(atLimit.count, 12 + limit)
        var maxBuffered = 0
        var events: [RTMPServerEvent] = []
        for byte in atLimit {
            events += try session.receive([byte])
            maxBuffered = max(maxBuffered, session.bufferedByteCount)
        }
        XCTAssertEqual(events, [.unknownCommand(name: "note")])
        XCTAssertLessThanOrEqual(maxBuffered, limit + 18)
        XCTAssertEqual(session.bufferedByteCount, 0)
        // ...one byte more is not.
        var over = try afterHandshake()
        assertThrows(.messageTooLargeBeforePublish(length: limit + 1, limit: limit)) {
            try over.receive(rawChunk(format: 0, csid: 3, length: limit + 1, typeID: 20, payload: []))
        }
    }

    func testPartialMessagesAcrossChunkStreamsAreBoundedBeforePublish() throws {
        var session = try afterHandshake()
        var client = RTMPTestClient()
        _ = try session.receive(client.setChunkSize(4096))
        let bound = RTMPLimits.default.maxBufferedMessageBytesBeforePublish
        var threw: RTMPError?
        for csid: UInt32 in 3..<40 {
            // Each stream: a message of the largest allowed length, all but its last chunk sent.
            let message = RTMPMessage(typeID: 18, streamID: 0, timestamp: 0, payload: [UInt8](repeating: 0x05, count: limit))
            let bytes = Array(client.encoder.encode(message, chunkStreamID: csid).dropLast(1 + 4096))
            do {
                for start in stride(from: 0, to: bytes.count, by: 997) {
                    _ = try session.receive(Array(bytes[start..<min(bytes.count, start + 997)]))
                    XCTAssertLessThanOrEqual(session.bufferedByteCount, bound + 18)
                }
            } catch {
                threw = error
                XCTAssertEqual(csid, 5, "two partial messages of 60 KB fit, a third does not")
                break
            }
        }
        XCTAssertEqual(threw, .bufferLimitExceeded(bound))
    }

    func testAMFBombWithinTheLengthLimitIsRefused() throws {
        // 60 KB of booleans in a strict array: short enough to arrive, too costly to decode.
        var payload = AMF0.encode([.string("connect"), .number(1)]) + [0x0A] + be32(30_000)
        for _ in 0..<30_000 { payload += [0x01, 0x01] }
        let message = RTMPChunkEncoder().encode(RTMPMessage(typeID: 20, streamID: 0, timestamp: 0, payload: payload), chunkStreamID: 3)
        var session = try afterHandshake()
        XCTAssertThrowsError(try session.receive(message)) { error in
            guard case .amfTooLarge(payload.count, _) = error as? RTMPError else { return XCTFail("\(error)") }
        }
    }

    func testNormalConnectAndPublishStillWork() throws {
        var session = try afterHandshake()
        var client = RTMPTestClient()
        _ = try session.receive(client.setChunkSize(4096))
        let events = try session.receive(client.publishPreamble())
        XCTAssertEqual(nonSend(events), [
            .connected(app: "live", tcURL: "rtmp://127.0.0.1/live"),
            .publishRequested(app: "live", streamKey: "testkey"),
        ])
        XCTAssertFalse(session.isAuthenticated)
        XCTAssertFalse(session.acceptPublish().isEmpty)
        XCTAssertTrue(session.isAuthenticated)
        XCTAssertTrue(session.isPublishing)
    }

    func testLargeVideoAfterPublishIsAcceptedAsBefore() throws {
        var (session, client) = try acceptedSession()
        _ = try session.receive(client.setChunkSize(4096))
        let keyframe = [UInt8](repeating: 0x17, count: 2_000_000)
        var events: [RTMPServerEvent] = []
        let bytes = client.media(9, timestamp: 40, keyframe)
        for start in stride(from: 0, to: bytes.count, by: 65536) {
            events += try session.receive(Array(bytes[start..<min(bytes.count, start + 65536)]))
        }
        XCTAssertEqual(events, [.video(timestamp: 40, payload: keyframe)])
        // A message too long for the full limits is still refused.
        var (strict, _) = try acceptedSession()
        var small = RTMPLimits.default
        small.maxMessageLength = 1_000_000
        XCTAssertNoThrow(try strict.receive(rawChunk(format: 0, csid: 6, length: 1_500_000, typeID: 9, streamID: 1, payload: [])))
        var limited = makeSession(small)
        var c = RTMPTestClient()
        _ = try limited.receive(handshakeC0C1 + handshakeC2 + c.publishPreamble())
        _ = limited.acceptPublish()
        assertThrows(.messageTooLarge(1_000_001)) {
            try limited.receive(rawChunk(format: 0, csid: 6, length: 1_000_001, typeID: 9, streamID: 1, payload: []))
        }
    }
}
