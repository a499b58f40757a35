import XCTest
@testable import Origin

/// The same input, however it is split into reads, must give the same events.
final class RTMPSplitTests: XCTestCase {
    /// A whole publishing session exercising every header type, extended timestamps,
    /// interleaving, a chunk-size change, acknowledgements, ping, and the 3-byte basic header.
    static let script: [UInt8] = {
        var client = RTMPTestClient()
        var s = handshakeC0C1 + handshakeC2
        s += client.control(5, be32(700))  // small window so acknowledgements are part of the output
        s += client.publishPreamble()
        s += client.setChunkSize(100)
        s += client.metadata([AMF0Property("width", .number(320)), AMF0Property("videocodecid", .number(7))])
        let video = (0..<250).map { UInt8(truncatingIfNeeded: $0 * 3) }
        s += rawChunk(format: 0, csid: 6, timestamp: 0, length: 250, typeID: 9, streamID: 1, payload: Array(video[0..<100]))
        s += rawChunk(format: 0, csid: 4, timestamp: 0, length: 4, typeID: 8, streamID: 1, payload: [0xAF, 0, 0x12, 0x10])
        s += rawChunk(format: 3, csid: 6, payload: Array(video[100..<200]))
        s += rawChunk(format: 1, csid: 4, timestamp: 23, length: 5, typeID: 8, payload: [0xAF, 1, 1, 2, 3])
        s += rawChunk(format: 3, csid: 6, payload: Array(video[200...]))
        s += rawChunk(format: 2, csid: 4, timestamp: 23, payload: [0xAF, 1, 4, 5, 6])
        s += rawChunk(format: 3, csid: 4, payload: [0xAF, 1, 7, 8, 9])
        s += client.control(4, [0, 6] + be32(1234))
        s += rawChunk(format: 0, csid: 6, length: 150, typeID: 9, streamID: 1, extendedTimestamp: 0x0100_0000, payload: Array(video[0..<100]))
        s += rawChunk(format: 3, csid: 6, extendedTimestamp: 0x0100_0000, payload: Array(video[100..<150]))
        s += rawChunk(format: 0, csid: 1000, timestamp: 77, length: 3, typeID: 8, streamID: 1, payload: [0xAF, 1, 0])
        s += client.command("FCUnpublish", [.null, .string("testkey")])
        s += client.command("deleteStream", [.null, .number(1)])
        return s
    }()

    /// Feeds `parts` to a fresh session, accepting the publish when asked.
    static func run(_ parts: [ArraySlice<UInt8>]) throws -> [RTMPServerEvent] {
        var session = makeSession()
        var events: [RTMPServerEvent] = []
        for part in parts {
            let new = try session.receive(Array(part))
            if new.contains(.publishRequested(app: "live", streamKey: "testkey")) { _ = session.acceptPublish() }
            events += new
        }
        XCTAssertEqual(session.bufferedByteCount, 0)
        XCTAssertEqual(session.bytesReceived, UInt64(script.count))
        return events
    }

    func testWholeScriptEvents() throws {
        let events = try Self.run([Self.script[...]])
        let video = (0..<250).map { UInt8(truncatingIfNeeded: $0 * 3) }
        XCTAssertEqual(nonSend(events), [
            .connected(app: "live", tcURL: "rtmp://127.0.0.1/live"),
            .publishRequested(app: "live", streamKey: "testkey"),
            .metadata(["width": .number(320), "videocodecid": .number(7)]),
            .audio(timestamp: 0, payload: [0xAF, 0, 0x12, 0x10]),
            .audio(timestamp: 23, payload: [0xAF, 1, 1, 2, 3]),
            .video(timestamp: 0, payload: video),
            .audio(timestamp: 46, payload: [0xAF, 1, 4, 5, 6]),
            .audio(timestamp: 69, payload: [0xAF, 1, 7, 8, 9]),
            .video(timestamp: 0x0100_0000, payload: Array(video[0..<150])),
            .audio(timestamp: 77, payload: [0xAF, 1, 0]),
            .unpublished,
        ])
        var reader = ServerOutputReader()
        let sent = try reader.feed(events)
        XCTAssertTrue(sent.contains { $0.typeID == 4 && $0.payload == [0, 7] + be32(1234) }, "ping answered")
        XCTAssertGreaterThanOrEqual(sent.filter { $0.typeID == 3 }.count, 2, "acknowledgements sent")
    }

    func testEverySplitPointGivesIdenticalEvents() throws {
        let script = Self.script
        let expected = try Self.run([script[...]])
        for cut in 1..<script.count {
            let events = try Self.run([script[..<cut], script[cut...]])
            if events != expected {
                XCTFail("split at \(cut) differs")
                return
            }
        }
    }

    func testByteByByteGivesIdenticalEvents() throws {
        let expected = try Self.run([Self.script[...]])
        XCTAssertEqual(try Self.run(Self.script.indices.map { Self.script[$0...$0] }), expected)
    }

    func testRandomSplitsGiveIdenticalEvents() throws {
        let script = Self.script
        let expected = try Self.run([script[...]])
        var rng = SeededRNG(seed: 42)
        for _ in 0..<200 {
            var parts: [ArraySlice<UInt8>] = []
            var i = 0
            while i < script.count {
                let n = min(script.count - i, Int.random(in: 1...300, using: &rng))
                parts.append(script[i..<(i + n)])
                i += n
            }
            XCTAssertEqual(try Self.run(parts), expected)
        }
    }
}
