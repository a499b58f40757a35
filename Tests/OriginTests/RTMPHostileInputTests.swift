import XCTest
@testable import Origin

/// Hostile input gives a typed error, never a crash, and the session stays failed.
final class RTMPHostileInputTests: XCTestCase {
    private func afterHandshake(_ limits: RTMPLimits = .default) throws -> RTMPServerSession {
        var session = makeSession(limits)
        _ = try session.receive(handshakeC0C1 + handshakeC2)
        return session
    }

    private func expect(_ error: RTMPError, after bytes: [UInt8], limits: RTMPLimits = .default,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        var session = try afterHandshake(limits)
        assertThrows(error, file: file, line: line) { try session.receive(bytes) }
        XCTAssertEqual(session.failure, error, file: file, line: line)
        // Failed for good: even valid input throws the same error.
        var client = RTMPTestClient()
        assertThrows(error, file: file, line: line) { try session.receive(client.connect()) }
    }

    func testBadHandshakeVersion() {
        var session = makeSession()
        assertThrows(.unsupportedVersion(0x16)) { try session.receive([0x16, 0x03, 0x01]) }
        assertThrows(.unsupportedVersion(0x16)) { try session.receive(handshakeC0C1) }
    }

    func testAbsurdChunkSizes() throws {
        let client = RTMPTestClient()
        try expect(.chunkSizeOutOfRange(0), after: client.control(1, be32(0)))
        try expect(.chunkSizeOutOfRange(0xFFFF_FFFF), after: client.control(1, be32(0xFFFF_FFFF)))
        try expect(.chunkSizeOutOfRange(16 * 1024 * 1024 + 1), after: client.control(1, be32(16 * 1024 * 1024 + 1)))
        var limits = RTMPLimits.default
        limits.maxChunkSize = 65536
        try expect(.chunkSizeOutOfRange(65537), after: client.control(1, be32(65537)), limits: limits)
        try expect(.protocolViolation("Set Chunk Size message has 2 bytes, expected 4"), after: client.control(1, [0, 1]))
    }

    func testMessageLongerThanTheLimit() throws {
        var limits = RTMPLimits.default
        limits.maxMessageLength = 64 * 1024
        try expect(.messageTooLarge(64 * 1024 + 1),
                   after: rawChunk(format: 0, csid: 6, length: 64 * 1024 + 1, typeID: 9, streamID: 1, payload: []), limits: limits)
    }

    func testTooManyChunkStreams() throws {
        var bytes: [UInt8] = []
        for csid: UInt32 in 3..<(3 + 65) {  // 64 allowed by default, the 65th fails
            bytes += rawChunk(format: 0, csid: csid, length: 1, typeID: 9, streamID: 1, payload: [1])
        }
        try expect(.tooManyChunkStreams, after: bytes)
    }

    func testType3ChunkWithNoPreviousHeader() throws {
        try expect(.noPreviousHeader(chunkStreamID: 5), after: [0xC5, 1, 2, 3])
        try expect(.noPreviousHeader(chunkStreamID: 64), after: [0xC0, 0x00, 1])
    }

    func testGarbledAMFInCommands() throws {
        func command(_ payload: [UInt8]) -> [UInt8] { RTMPChunkEncoder().encode(RTMPMessage(typeID: 20, streamID: 0, timestamp: 0, payload: payload), chunkStreamID: 3) }
        try expect(.malformedAMF("string needs 4096 bytes but only 3 remain"), after: command([0x02, 0x10, 0x00, 0x61, 0x62, 0x63]))
        var bomb: [UInt8] = [0x02, 0x00, 0x01, 0x78, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
        for _ in 0..<30 { bomb += [0x03, 0x00, 0x01, 0x61] }
        try expect(.malformedAMF("values nested deeper than 16 levels"), after: command(bomb))
        try expect(.malformedAMF("strict array claims 4294967295 items but only 0 bytes remain"), after: command([0x0A, 0xFF, 0xFF, 0xFF, 0xFF]))
        try expect(.protocolViolation("command message does not start with a command name"), after: command([0x00, 0, 0, 0, 0, 0, 0, 0, 0]))
        try expect(.protocolViolation("command message does not start with a command name"), after: command([]))
        var client = RTMPTestClient()
        try expect(.protocolViolation("connect without an app name"), after: client.command("connect", [.object([])]))
        var limits = RTMPLimits.default
        limits.maxAMFDepth = 2
        var deep: AMF0Value = .null
        for _ in 0..<3 { deep = .object([AMF0Property("a", deep)]) }
        try expect(.malformedAMF("values nested deeper than 2 levels"), after: client.command("connect", [deep]), limits: limits)
    }

    func testCommandsOutOfOrder() throws {
        var client = RTMPTestClient()
        try expect(.protocolViolation("publish before connect"), after: client.command("publish", [.null, .string("k")]))
        try expect(.protocolViolation("createStream before connect"), after: client.command("createStream", [.null]))
        try expect(.protocolViolation("second connect on one connection"), after: client.connect() + client.connect())
        try expect(.protocolViolation("publish without a stream name"), after: client.connect() + client.command("publish", [.null]))
        let twice = client.connect() + client.command("publish", [.null, .string("a")]) + client.command("publish", [.null, .string("b")])
        try expect(.protocolViolation("publish while a publish is already pending or done"), after: twice)
    }

    func testShortControlMessages() throws {
        let client = RTMPTestClient()
        try expect(.protocolViolation("User Control message has 1 bytes, expected at least 2"), after: client.control(4, [0]))
        try expect(.protocolViolation("Ping Request message has 2 bytes, expected 4"), after: client.control(4, [0, 6, 1, 2]))
        try expect(.protocolViolation("Set Peer Bandwidth has 4 bytes, expected 5"), after: client.control(6, [0, 0, 1, 0]))
        try expect(.protocolViolation("Window Acknowledgement Size message has 0 bytes, expected 4"), after: client.control(5, []))
        try expect(.protocolViolation("Abort message has 3 bytes, expected 4"), after: client.control(2, [0, 0, 1]))
    }

    func testPartialMessagesAcrossStreamsAreBounded() throws {
        var limits = RTMPLimits.default
        limits.maxBufferedMessageBytes = 100_000
        try expect(.chunkSizeOutOfRange(0x7FFF_FFFF), after: RTMPTestClient().control(1, be32(0x7FFF_FFFF)))
        var session = try afterHandshake(limits)
        var client = RTMPTestClient()
        // Megabyte messages are for an accepted publisher only (see RTMPBeforePublishLimitTests).
        _ = try session.receive(client.publishPreamble())
        _ = session.acceptPublish()
        _ = try session.receive(client.setChunkSize(60_000))
        var threw: RTMPError?
        for csid: UInt32 in 4..<20 {
            do {
                _ = try session.receive(rawChunk(format: 0, csid: csid, length: 1_000_000, typeID: 9, streamID: 1, payload: [UInt8](repeating: 0, count: 60_000)))
            } catch {
                threw = error
                break
            }
            XCTAssertLessThanOrEqual(session.bufferedByteCount, 100_000)
        }
        XCTAssertEqual(threw, .bufferLimitExceeded(100_000))
    }
}
