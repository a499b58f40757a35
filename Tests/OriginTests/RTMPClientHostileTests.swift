import XCTest
@testable import Origin

/// Hostile or broken server bytes end in a typed error, never a crash or unbounded memory.
final class RTMPClientHostileTests: XCTestCase {
    private func client(_ limits: RTMPLimits = .default) -> RTMPClientSession {
        RTMPClientSession(app: "relay", tcURL: "rtmp://owner/relay", streamKey: "k", limits: limits, randomBytes: countingRandom)
    }

    func testBadS0VersionFailsAndStaysFailed() {
        var c = client()
        XCTAssertEqual(c.start().count, 1 + 1536)
        XCTAssertEqual(c.start(), [], "start twice gives nothing")
        assertThrows(.unsupportedVersion(6)) { try c.receive([6] + [UInt8](repeating: 0, count: 100)) }
        assertThrows(.unsupportedVersion(6)) { try c.receive([3]) }
        XCTAssertEqual(c.failure, .unsupportedVersion(6))
    }

    func testBytesBeforeStartAreAViolation() {
        var c = client()
        assertThrows(.protocolViolation("bytes received before start(): the client speaks first")) { try c.receive([3]) }
    }

    func testAbsurdChunkSizes() throws {
        for size: UInt32 in [0, 0x8000_0000, 0xFFFF_FFFF, 16 * 1024 * 1024 + 1] {
            var (c, _, _) = try handshakenClient()
            assertThrows(.chunkSizeOutOfRange(size)) { try c.receive(FakeServer().control(1, be32(size))) }
        }
        var (c, _, _) = try handshakenClient(RTMPLimits(maxChunkSize: 65536))
        assertThrows(.chunkSizeOutOfRange(65537)) { try c.receive(FakeServer().control(1, be32(65537))) }
    }

    func testGarbageAfterHandshake() throws {
        var (c, _, _) = try handshakenClient()
        assertThrows(.noPreviousHeader(chunkStreamID: 9)) { try c.receive([0xC9, 1, 2, 3]) }

        var (tooBig, _, _) = try handshakenClient(RTMPLimits(maxMessageLength: 1000))
        assertThrows(.messageTooLarge(5000)) { try tooBig.receive(rawChunk(format: 0, csid: 3, length: 5000, typeID: 20, payload: [])) }

        var (notCommand, _, _) = try handshakenClient()
        assertThrows(.protocolViolation("command message does not start with a command name")) {
            try notCommand.receive(FakeServer().command([.number(1), .number(2)]))
        }

        var (badAMF, _, _) = try handshakenClient()
        XCTAssertThrowsError(try badAMF.receive(rawChunk(format: 0, csid: 3, length: 3, typeID: 20, payload: [0x02, 0xFF, 0xFF]))) {
            guard case .malformedAMF = $0 as? RTMPError else { return XCTFail("\($0)") }
        }

        var (shortControl, _, _) = try handshakenClient()
        XCTAssertThrowsError(try shortControl.receive(FakeServer().control(4, [0, 6, 1]))) {
            guard case .protocolViolation = $0 as? RTMPError else { return XCTFail("\($0)") }
        }
    }

    func testBadStreamIDFromCreateStream() throws {
        for bad: AMF0Value in [.number(-1), .number(0), .number(1.5), .number(.nan), .number(1e12), .string("1"), .null] {
            var (c, _, _) = try handshakenClient()
            let server = FakeServer()
            _ = try c.receive(server.command([.string("_result"), .number(1), .null, .object([])]))
            XCTAssertThrowsError(try c.receive(server.command([.string("_result"), .number(4), .null, bad]))) {
                guard case .protocolViolation = $0 as? RTMPError else { return XCTFail("\($0)") }
            }
            XCTAssertFalse(c.isPublishing)
        }
    }

    /// Seeded garbage at every stage: either events or a typed error, and bounded buffers.
    /// The bound is what the session promises whatever the input's length: less than one
    /// handshake packet while handshaking, then at most `maxBufferedMessageBytes` of partial
    /// messages plus one incomplete chunk header (under 18 bytes). The garbage is longer than
    /// that bound, so a session that kept unparsed input would break it.
    func testSeededGarbageNeverCrashes() throws {
        let limits = RTMPLimits(maxChunkSize: 1 << 20, maxMessageLength: 1 << 20, maxChunkStreams: 16, maxBufferedMessageBytes: 2048)
        let bound = max(RTMPHandshake.packetSize - 1, limits.maxBufferedMessageBytes + 17)
        var failures = 0
        for seed: UInt64 in 1...300 {
            var rng = SeededRNG(seed: seed)
            var c = client(limits)
            _ = c.start()
            var input = Int.random(in: 0..<3, using: &rng) == 0 ? [] : FakeServer.handshake
            input += rng.bytes(Int.random(in: 1...8000, using: &rng))
            if Bool.random(using: &rng) { input[0] = 3 }
            var offset = 0
            do {
                while offset < input.count {
                    let n = Int.random(in: 1...(input.count - offset), using: &rng)
                    _ = try c.receive(Array(input[offset..<(offset + n)]))
                    offset += n
                    XCTAssertLessThanOrEqual(c.bufferedByteCount, bound, "seed \(seed) after \(offset) bytes")
                }
            } catch {
                failures += 1
                XCTAssertEqual(c.failure, error)
                XCTAssertThrowsError(try c.receive([0]))
            }
        }
        XCTAssertGreaterThan(failures, 200, "garbage is mostly rejected")
    }

    /// A real server transcript with random bytes flipped: typed errors or events, no crash.
    func testMutatedServerTranscript() throws {
        var link = RTMPClientServerLink(seed: 1)
        link.toServer += link.client.start()
        var transcript: [UInt8] = []
        while !link.toServer.isEmpty || !link.toClient.isEmpty {
            for event in try link.server.receive(link.toServer) {
                switch event {
                case .send(let b): link.toClient += b
                case .publishRequested: link.toClient += link.server.acceptPublish()
                default: break
                }
            }
            link.toServer = []
            transcript += link.toClient
            for case .send(let b) in try link.client.receive(link.toClient) { link.toServer += b }
            link.toClient = []
        }
        XCTAssertTrue(link.client.isPublishing)
        var rng = SeededRNG(seed: 77)
        for _ in 0..<300 {
            var mutated = transcript
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 3073..<mutated.count, using: &rng)
                mutated[i] = UInt8.random(in: 0...255, using: &rng)
            }
            var c = client()
            _ = c.start()
            _ = try? c.receive(mutated)
        }
    }
}
