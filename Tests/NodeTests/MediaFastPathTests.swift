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

    func readResponse(_ channel: EmbeddedChannel) throws -> (HTTPResponse, ByteBuffer)? {
        guard let first = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
        guard case .head(let head) = first else { XCTFail("expected a head, got \(first)"); return nil }
        var body = ByteBuffer()
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            switch part {
            case .body(var b): body.writeBuffer(&b)
            case .end: return (head, body)
            case .head: XCTFail("a second head before the end")
            }
        }
        XCTFail("response without an end")
        return nil
    }

    func testHitIsAnsweredWithTheCachedBytesAndMediaHeaders() throws {
        let channel = try makeChannel()
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self), "a hit must not reach the router")
        let (head, body) = try XCTUnwrap(readResponse(channel))
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headerFields[.contentLength], "10000")
        XCTAssertEqual(head.headerFields[.contentType], "video/mp4")
        XCTAssertEqual(head.headerFields[.cacheControl], "public, max-age=31536000, immutable")
        XCTAssertEqual(head.headerFields[.accessControlAllowOrigin], "*")
        XCTAssertNotNil(head.headerFields[.date])
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
            XCTAssertNil(try channel.readOutbound(as: HTTPResponsePart.self))
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
        XCTAssertNil(try channel.readOutbound(as: HTTPResponsePart.self))
        // The router answers both; afterwards hits are answered here again.
        for _ in 0..<2 {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
        }
        while try channel.readOutbound(as: HTTPResponsePart.self) != nil {}
        try channel.writeInbound(get("/live/s1/source/part3.1.m4s"))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self))
        XCTAssertEqual(try readResponse(channel)?.0.status, .ok)
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
