// The edge's lean route for cached media: a channel handler in front of the router that
// answers `GET /live/{id}/{rendition}/{object}` from the memory tier on the event loop. A
// hit costs no task, no middleware and no copy: its response head is written as bytes
// straight to the socket's end of the pipeline, then the cached buffer itself. Everything
// else (misses, playlists, the API) passes through to the router untouched.
import Foundation
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Answers memory-tier hits for immutable media objects; passes every other request on.
///
/// Order on a connection is kept: a request is only answered here when no earlier request
/// of the same connection is still with the router (HTTP/1.1 pipelining answers in order).
final class MediaFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The object for a request path, or nil when the router should answer.
    typealias Lookup = @Sendable (_ path: String) -> ByteBuffer?

    private let lookup: Lookup
    /// Requests handed to the router and not yet answered in full.
    private var withRouter = 0
    /// True while the body parts of a request answered here are still arriving.
    private var swallowing = false
    /// Writes bytes at the socket's end of the pipeline (after the HTTP encoder).
    private let raw = RawWriter()

    init(lookup: @escaping Lookup) {
        self.lookup = lookup
    }

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.pipeline.syncOperations.addHandler(raw, position: .first)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let request):
            if withRouter == 0, let body = answerable(request) {
                swallowing = true
                respond(context: context, body: body)
                return
            }
            withRouter += 1
            context.fireChannelRead(data)
        case .body, .end:
            if swallowing {
                if case .end = part { swallowing = false }
                return
            }
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { withRouter = max(0, withRouter - 1) }
        context.write(data, promise: promise)
    }

    /// The cached object for a plain GET of a media object, if the memory tier has it.
    private func answerable(_ request: HTTPRequest) -> ByteBuffer? {
        guard request.method == .get, let path = request.path, path.hasPrefix("/live/"),
              !path.utf8.contains(UInt8(ascii: "?")), !path.hasSuffix(".m3u8") else { return nil }
        // A client that asks to close gets the router's full connection handling.
        if let connection = request.headerFields[.connection], connection.lowercased().contains("close") { return nil }
        return lookup(path)
    }

    private func respond(context: ChannelHandlerContext, body: ByteBuffer) {
        if let rawContext = raw.context {
            var head = context.channel.allocator.buffer(capacity: Self.rawHead.readableBytes + 80)
            head.writeImmutableBuffer(Self.rawHead)
            head.writeString(Self.date.current)
            head.writeStaticString("\r\ncontent-length: ")
            head.writeString(String(body.readableBytes))
            head.writeStaticString("\r\n\r\n")
            rawContext.write(NIOAny(head), promise: nil)
            rawContext.writeAndFlush(NIOAny(body), promise: nil)
            return
        }
        var head = HTTPResponse(status: .ok)
        head.headerFields = Self.mediaHeaders
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.date] = Self.date.current
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// The stream id of a media object's path (`/live/{id}/{rendition}/{object}`).
    static func streamID(in path: String) -> String? {
        let utf8 = path.utf8
        guard path.hasPrefix("/live/") else { return nil }
        let idStart = utf8.index(utf8.startIndex, offsetBy: 6)
        guard let idEnd = utf8[idStart...].firstIndex(of: UInt8(ascii: "/")), idEnd > idStart else { return nil }
        let renditionStart = utf8.index(after: idEnd)
        guard let renditionEnd = utf8[renditionStart...].firstIndex(of: UInt8(ascii: "/")), renditionEnd > renditionStart else { return nil }
        let objectStart = utf8.index(after: renditionEnd)
        guard objectStart < utf8.endIndex, !utf8[objectStart...].contains(UInt8(ascii: "/")) else { return nil }
        return String(path[idStart..<idEnd])
    }

    /// The response head up to the date's value, as bytes.
    static let rawHead: ByteBuffer = {
        var b = ByteBuffer()
        b.writeString("HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncache-control: public, max-age=31536000, immutable\r\n"
                      + "access-control-allow-origin: *\r\nserver: streamtube\r\ndate: ")
        return b
    }()

    static let date = HTTPDate()

    static let mediaHeaders: HTTPFields = [
        .contentType: "video/mp4", .cacheControl: "public, max-age=31536000, immutable",
        .accessControlAllowOrigin: "*", .server: "streamtube",
    ]
}

/// The `Date` header's value, formatted at most once a second.
final class HTTPDate: Sendable {
    private let cache = Mutex<(second: Int, text: String)>((-1, ""))

    var current: String {
        let now = Int(Date().timeIntervalSince1970)
        return cache.withLock { c in
            if c.second != now { c = (now, Self.format(now)) }
            return c.text
        }
    }

    /// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func format(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }
}

/// Sits at the socket's end of the pipeline so `MediaFastPath` can write a response already
/// in bytes; passes everything else through.
final class RawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
}
