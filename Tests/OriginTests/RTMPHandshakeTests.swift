import XCTest
@testable import Origin

final class RTMPHandshakeTests: XCTestCase {
    func testAnswersS0S1S2AfterC0C1() throws {
        var session = makeSession()
        XCTAssertEqual(try session.receive(Array(handshakeC0C1.prefix(1000))), [])
        let events = try session.receive(Array(handshakeC0C1.dropFirst(1000)))
        guard events.count == 1, case .send(let reply) = events[0] else { return XCTFail("\(events)") }
        XCTAssertEqual(reply.count, 1 + 1536 * 2)
        XCTAssertEqual(reply[0], 3, "S0 version")
        XCTAssertEqual(Array(reply[1..<9]), [0, 0, 0, 0, 0, 0, 0, 0], "S1 time and zero version field")
        XCTAssertEqual(Array(reply[9..<1537]), countingRandom(1528), "S1 random filler is injected")
        XCTAssertEqual(Array(reply[1537...]), c1Bytes, "S2 echoes C1")
        XCTAssertEqual(session.bytesReceived, 1537)
    }

    func testWaitsForC2BeforeChunks() throws {
        var session = makeSession()
        _ = try session.receive(handshakeC0C1)
        // A connect arriving before C2 is complete is treated as C2 bytes, not as a command.
        var client = RTMPTestClient()
        let connect = client.connect()
        XCTAssertEqual(try session.receive(Array(handshakeC2.prefix(1535))), [])
        XCTAssertEqual(session.bufferedByteCount, 1535)
        let events = try session.receive([handshakeC2[1535]] + connect)
        XCTAssertEqual(nonSend(events), [.connected(app: "live", tcURL: "rtmp://127.0.0.1/live")])
    }

    func testHandshakeAndFirstChunkInOneRead() throws {
        var session = makeSession()
        var client = RTMPTestClient()
        let events = try session.receive(handshakeC0C1 + handshakeC2 + client.connect())
        XCTAssertEqual(events.count, 3)  // S0S1S2, connect answer, connected
        XCTAssertEqual(nonSend(events), [.connected(app: "live", tcURL: "rtmp://127.0.0.1/live")])
    }

    func testRejectsOtherVersionsOnTheFirstByte() {
        for version: UInt8 in [0, 6, 0x16, 0x47] {  // 6 = RTMPE, 0x16 = TLS, 0x47 = "G"ET
            var session = makeSession()
            assertThrows(.unsupportedVersion(version)) { try session.receive([version]) }
            assertThrows(.unsupportedVersion(version)) { try session.receive(handshakeC0C1) }
            XCTAssertEqual(session.failure, .unsupportedVersion(version))
        }
    }

    func testByteByByteHandshakeGivesTheSameReply() throws {
        var whole = makeSession()
        let expected = try whole.receive(handshakeC0C1)
        var session = makeSession()
        var events: [RTMPServerEvent] = []
        for byte in handshakeC0C1 { events += try session.receive([byte]) }
        XCTAssertEqual(events, expected)
    }
}
