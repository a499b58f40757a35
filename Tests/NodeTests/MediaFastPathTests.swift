import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import XCTest
@testable import Live
import HTTPSupport

/// The edge's lean media route in an `EmbeddedChannel` with the server's HTTP pipeline, fed
/// raw bytes: hits answered in front of the decoder, everything else reaching the router
/// typed, answers in request order.
final class MediaFastPathTests: XCTestCase {
    static let object = ByteBuffer(bytes: (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
    static let hitPath = "/live/s1/source/part3.1-0a1b2c3d.m4s"

    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try channel.pipeline.syncOperations.addHandler(MediaFastPath { $0.path == Self.hitPath ? Self.object : nil })
        return channel
    }

    func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func get(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: edge\r\n\(extra)\r\n" }

    /// Request heads that reached the router, by path.
    func routed(_ channel: EmbeddedChannel) throws -> [String] {
        var paths: [String] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            if case .head(let h) = part { paths.append("\(h.method.rawValue) \(h.path ?? "")") }
        }
        return paths
    }

    /// Everything written to the socket, parsed as responses: (status, lower-cased headers, body).
    func responses(_ channel: EmbeddedChannel) throws -> [(status: Int, headers: [String: String], body: ByteBuffer)] {
        var wire = ByteBuffer()
        while let out = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(var b) = out else { XCTFail("a file region"); continue }
            wire.writeBuffer(&b)
        }
        var out: [(Int, [String: String], ByteBuffer)] = []
        while wire.readableBytes > 0 {
            let text = String(buffer: wire)
            guard let end = text.range(of: "\r\n\r\n") else { XCTFail("no end of head in \(text)"); break }
            let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                let kv = line.split(separator: ":", maxSplits: 1)
                headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces)
            }
            wire.moveReaderIndex(forwardBy: text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound))
            let length = Int(headers["content-length"] ?? "0") ?? 0
            out.append((Int(lines[0].split(separator: " ")[1])!, headers, wire.readSlice(length: length)!))
        }
        return out
    }

    /// The router answers one request.
    func routerAnswers(_ channel: EmbeddedChannel, body: String = "from the router") throws {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok, headerFields: [.contentLength: "\(body.utf8.count)"])))
        try channel.writeOutbound(HTTPResponsePart.body(ByteBuffer(string: body)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    func testAHitIsAnsweredWithTheCachedBytesAndMediaHeaders() throws {
        let channel = try makeChannel()
        try send(channel, get(Self.hitPath))
        XCTAssertEqual(try routed(channel), [], "a hit must not reach the router")
        let r = try responses(channel)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r.first?.status, 200)
        XCTAssertEqual(r.first?.headers["content-length"], "10000")
        XCTAssertEqual(r.first?.headers["content-type"], "video/mp4")
        XCTAssertEqual(r.first?.headers["cache-control"], "public, max-age=31536000, immutable")
        XCTAssertEqual(r.first?.headers["access-control-allow-origin"], "*")
        XCTAssertTrue(r.first?.headers["date"]?.hasSuffix(" GMT") == true)
        XCTAssertEqual(r.first?.body, Self.object)
    }

    func testAHeadSplitAcrossReadsIsAnsweredWhenWhole() throws {
        let channel = try makeChannel()
        let text = get(Self.hitPath)
        for chunk in text.utf8.map({ String(UnicodeScalar($0)) }) { try send(channel, chunk) }
        XCTAssertEqual(try routed(channel), [])
        XCTAssertEqual(try responses(channel).map(\.status), [200])
    }

    func testMissesPlaylistsQueriesOtherMethodsOldVersionsAndClosingClientsGoToTheRouter() throws {
        let cases = [
            get("/live/s1/source/part9.0-0a1b2c3d.m4s"),
            get("/live/s1/source/index.m3u8"),
            get(Self.hitPath + "?x=1"),
            get(Self.hitPath, "Connection: Close\r\n"),
            get(Self.hitPath, "Upgrade: websocket\r\n"),
            "HEAD \(Self.hitPath) HTTP/1.1\r\nHost: edge\r\n\r\n",
            "GET \(Self.hitPath) HTTP/1.0\r\n\r\n",
        ]
        for request in cases {
            let channel = try makeChannel()
            try send(channel, request)
            XCTAssertEqual(try routed(channel).count, 1, request)
            XCTAssertEqual(try responses(channel).count, 0, request)
        }
    }

    func testAnswersStayInRequestOrderWhileTheRouterHoldsARequest() throws {
        let channel = try makeChannel()
        // A miss and a hit pipelined in one read: the hit waits its turn at the router.
        try send(channel, get("/live/s1/source/part9.0-0a1b2c3d.m4s") + get(Self.hitPath))
        XCTAssertEqual(try routed(channel), ["GET /live/s1/source/part9.0-0a1b2c3d.m4s", "GET \(Self.hitPath)"])
        XCTAssertEqual(try responses(channel).count, 0)
        try routerAnswers(channel, body: "first")
        try routerAnswers(channel, body: "second")
        XCTAssertEqual(try responses(channel).map { String(buffer: $0.body) }, ["first", "second"])
        // Nothing with the router any more: hits are answered here again.
        try send(channel, get(Self.hitPath) + get(Self.hitPath))
        XCTAssertEqual(try routed(channel), [])
        XCTAssertEqual(try responses(channel).map(\.body), [Self.object, Self.object])
    }

    func testARequestWithABodyTurnsTheConnectionOverToTheDecoder() throws {
        let channel = try makeChannel()
        try send(channel, "POST /api/streams HTTP/1.1\r\nHost: edge\r\nContent-Length: 5\r\n\r\nhello" + get(Self.hitPath))
        var parts: [String] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            switch part {
            case .head(let h): parts.append("head \(h.method.rawValue) \(h.path ?? "")")
            case .body(let b): parts.append("body \(String(buffer: b))")
            case .end: parts.append("end")
            }
        }
        // The GET behind the POST waits for the router (it holds the POST).
        XCTAssertEqual(parts, ["head POST /api/streams", "body hello", "end", "head GET \(Self.hitPath)", "end"])
        try routerAnswers(channel)
        try routerAnswers(channel)
        XCTAssertEqual(try responses(channel).count, 2)
        // From now on the typed handler answers hits (after the decoder), still in order.
        try send(channel, get(Self.hitPath))
        XCTAssertEqual(try routed(channel), [])
        XCTAssertEqual(try responses(channel).map(\.body), [Self.object])
    }

    func testHeadsEndedWithBareLineFeedsGoToTheDecoder() throws {
        let channel = try makeChannel()
        // Not read here: the decoder gets it (and refuses it), nothing waits for more bytes.
        XCTAssertThrowsError(try send(channel, "GET \(Self.hitPath) HTTP/1.1\nHost: edge\n\n"))
        XCTAssertEqual(try responses(channel).count, 0)
    }

    /// Heads the strict decoder refuses are never answered here, whatever the path.
    func testHeadsTheDecoderRefusesAreNeverAnsweredHere() throws {
        let heads = [
            "GET \(Self.hitPath) HTTP/1.1\r\nHost: edge\nX: y\r\n\r\n",            // a bare LF inside
            "GET \(Self.hitPath) HTTP/1.1\r\nHost: edge\rX: y\r\n\r\n",            // a bare CR
            "GET \(Self.hitPath) HTTP/1.1\r\nHost : edge\r\n\r\n",                  // space before the colon
            "GET \(Self.hitPath) HTTP/1.1\r\nHost: edge\r\n folded\r\n\r\n",      // obsolete line folding
            "GET \(Self.hitPath) HTTP/1.1\r\nNo colon here\r\n\r\n",
        ]
        for head in heads {
            let channel = try makeChannel()
            _ = try? send(channel, head)
            let answered = try responses(channel).filter { $0.status == 200 }
            XCTAssertEqual(answered.count, 0, head.debugDescription)
        }
    }

    /// A client that pipelines requests and never reads its answers: once the socket stops
    /// taking bytes, nothing more is answered or read until it drains.
    func testAClientThatDoesNotReadIsNotAnsweredFurther() throws {
        let channel = try makeChannel()
        // Small water marks, so two answers of 10 KB fill the socket's budget.
        try channel.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1024, high: 16 * 1024)).wait()
        channel.isWritable = true
        var pipelined = ""
        for _ in 0..<100 { pipelined += get(Self.hitPath) }
        // An EmbeddedChannel takes every write; say the socket is full after the first answer.
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(ByteBuffer(string: get(Self.hitPath)))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(ByteBuffer(string: pipelined))
        XCTAssertEqual(try responses(channel).count, 1, "answered only while the socket took bytes")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(try responses(channel).count, 100, "the rest once it drained")
    }

    func testStreamIDOfAMediaPath() {
        XCTAssertEqual(MediaFastPath.streamID(in: "/live/abc/source/seg3.m4s"), "abc")
        XCTAssertNil(MediaFastPath.streamID(in: "/live/abc/master.m3u8"))
        XCTAssertNil(MediaFastPath.streamID(in: "/live//source/seg3.m4s"))
        XCTAssertNil(MediaFastPath.streamID(in: "/api/abc/source/seg3.m4s"))
        XCTAssertNil(MediaFastPath.streamID(in: "/live/abc/source/x/seg3.m4s"))
        XCTAssertNil(MediaFastPath.streamID(in: "/live/abc/source/"))
    }

    func testHTTPDateIsIMFFixdate() {
        XCTAssertEqual(HTTPDate.format(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPDate.format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
    }
}
