import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import XCTest
@testable import Node

/// The edge's lean media route, in an `EmbeddedChannel`: hits answered in the handler,
/// everything else passed to the router, answers in request order.
final class MediaFastPathTests: XCTestCase {
    let cached = ["/live/s1/source/part3.1.m4s": ByteBuffer(bytes: Array(repeating: 7, count: 10_000))]

    func makeChannel() throws -> EmbeddedChannel {
        let objects = cached
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MediaFastPath { objects[$0] })
        return channel
    }

    func get(_ path: String, _ fields: HTTPFields = [:]) -> HTTPRequestPart {
        .head(HTTPRequest(method: .get, scheme: "http", authority: "edge", path: path, headerFields: fields))
    }

    /// A response answered here: bytes on the wire, parsed (status, lower-cased headers, body).
    func readResponse(_ channel: EmbeddedChannel) throws -> (status: Int, headers: [String: String], body: ByteBuffer)? {
        var wire = ByteBuffer()
        while var b = try channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&b) }
        guard wire.readableBytes > 0 else { return nil }
        let text = String(buffer: wire)
        guard let end = text.range(of: "\r\n\r\n") else { XCTFail("no end of head in \(text)"); return nil }
        let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1])!
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1)
            headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces)
        }
        let headLength = text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound)
        let body = wire.getSlice(at: wire.readerIndex + headLength, length: wire.readableBytes - headLength)!
        XCTAssertEqual(Int(headers["content-length"] ?? ""), body.readableBytes)
        XCTAssertEqual(lines[0], "HTTP/1.1 200 OK")
        return (status, headers, body)
    }

    func testHitIsAnsweredWithTheCachedBytesAndMediaHeaders() throws {
        let channel = try makeChannel()
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self), "a hit must not reach the router")
        let (status, headers, body) = try XCTUnwrap(readResponse(channel))
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["content-length"], "10000")
        XCTAssertEqual(headers["content-type"], "video/mp4")
        XCTAssertEqual(headers["cache-control"], "public, max-age=31536000, immutable")
        XCTAssertEqual(headers["access-control-allow-origin"], "*")
        XCTAssertNotNil(headers["date"].flatMap { $0.hasSuffix(" GMT") ? $0 : nil })
        XCTAssertEqual(body, cached["/live/s1/source/part3.1.m4s"])
    }

    func testMissesPlaylistsQueriesPostsAndClosingClientsGoToTheRouter() throws {
        let cases: [HTTPRequestPart] = [
            get("/live/s1/source/part9.0.m4s"),
            get("/live/s1/source/index.m3u8"),
            get("/live/s1/source/part3.1.m4s?x=1"),
            get("/live/s1/source/part3.1.m4s", [.connection: "close"]),
            .head(HTTPRequest(method: .post, scheme: "http", authority: "edge", path: "/live/s1/source/part3.1.m4s")),
        ]
        for request in cases {
            let channel = try makeChannel()
            try channel.writeInbound(request)
            XCTAssertEqual(try channel.readInbound(as: HTTPRequestPart.self), request)
            XCTAssertNil(try readResponse(channel))
        }
    }

    func testAnswersStayInRequestOrderWhileTheRouterHoldsARequest() throws {
        let channel = try makeChannel()
        // 1: a miss, with the router. 2: a hit pipelined behind it must wait its turn.
        try channel.writeInbound(get("/live/s1/source/part9.0.m4s"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        var forwarded = 0
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            if case .head = part { forwarded += 1 }
        }
        XCTAssertEqual(forwarded, 2)
        XCTAssertNil(try readResponse(channel))
        // The router answers both; afterwards hits are answered here again.
        for _ in 0..<2 {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
        }
        while try channel.readOutbound(as: HTTPResponsePart.self) != nil {}
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self))
        XCTAssertEqual(try readResponse(channel)?.status, 200)
    }

    func testBodyOfAnAnsweredRequestIsSwallowed() throws {
        let channel = try makeChannel()
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "stray")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self))
        // The next request (a miss) reaches the router whole.
        try channel.writeInbound(get("/live/s1/source/part9.0.m4s"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        XCTAssertEqual(try channel.readInbound(as: HTTPRequestPart.self), get("/live/s1/source/part9.0.m4s"))
        XCTAssertEqual(try channel.readInbound(as: HTTPRequestPart.self), .end(nil))
    }

    func testStreamIDOfAMediaPath() {
        XCTAssertEqual(MediaFastPath.streamID(in: "/live/abc/source/seg3.m4s"), "abc")
        XCTAssertNil(MediaFastPath.streamID(in: "/live/abc/master.m3u8"))
        XCTAssertNil(MediaFastPath.streamID(in: "/live//source/seg3.m4s"))
        XCTAssertNil(MediaFastPath.streamID(in: "/api/abc/source/seg3.m4s"))
        XCTAssertNil(MediaFastPath.streamID(in: "/live/abc/source/x/seg3.m4s"))
    }

    func testHTTPDateIsIMFFixdate() {
        XCTAssertEqual(HTTPDate.format(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPDate.format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
    }
}
