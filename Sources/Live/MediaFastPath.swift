// The edge's lean route for cached media: `GET /live/{id}/{rendition}/{object}` answered
// from the memory tier on the event loop. A hit costs no task, no middleware and no copy:
// `RawMediaFastPath`, in front of the HTTP decoder, answers a plain GET straight from the
// request's bytes; `MediaFastPath`, after the decoder, answers what reaches it typed (and
// keeps count of the requests the router holds, so answers stay in request order). The
// response is the head as bytes, then the cached buffer itself. Everything else (misses,
// playlists, the API) goes to the router untouched.
//
// The contract, all of it: the fast path may answer a request only when
// - it is a `GET` over HTTP/1.1 with no body, not asking to close or upgrade, and no earlier
//   request of the connection is still with the router;
// - its target is a media object (`/live/{id}/{rendition}/{object}`, not a playlist) whose
//   query, if any, is only a playback token and a viewer session (`token=...`, `vsid=...`,
//   each at most once);
// - its `MediaFastPathSource` hands back the bytes: the source decides whether the caller may
//   have them (the playback policy, checked from memory) and whether they are cached here.
// Its answer is `200` with the immutable media headers. Anything else goes to the router,
// which answers with every middleware, the same policy, and the same headers.
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// A request the fast path may answer, as the source sees it.
package struct MediaObjectRequest: Sendable, Equatable {
    /// The target without its query: `/live/{id}/{rendition}/{object}`.
    package var path: String
    package var streamID: String
    /// The playback token the request carried, if any.
    package var token: Substring?
    /// The viewer session the request carried (`vsid=`), if any; a malformed one is none.
    package var session: ViewerSessionID?

    /// The request for a target, or nil when the fast path must leave it to the router.
    /// Checked on the bytes (UTF-8, never characters): a hit allocates the path (when a query
    /// follows it) and nothing else; the token is a slice of the target.
    package init?(target: String) {
        var path = target
        var token: Substring?
        var session: ViewerSessionID?
        let utf8 = target.utf8
        if let q = utf8.firstIndex(of: UInt8(ascii: "?")) {
            var rest = utf8[utf8.index(after: q)...]
            var sawToken = false, sawSession = false
            while true {
                let end = rest.firstIndex(of: UInt8(ascii: "&")) ?? rest.endIndex
                let item = rest[..<end]
                if !sawToken, item.starts(with: "token=".utf8) {
                    sawToken = true
                    token = Substring(item.dropFirst(6))
                } else if !sawSession, item.starts(with: "vsid=".utf8) {
                    sawSession = true
                    session = ViewerSessionID(utf8: item.dropFirst(5))
                } else {
                    return nil
                }
                guard end < rest.endIndex else { break }
                rest = rest[rest.index(after: end)...]
            }
            path = String(Substring(utf8[..<q]))
        }
        guard let id = MediaFastPath.streamID(in: path),
              let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")),
              MediaName.isImmutableObject(path.utf8[path.utf8.index(after: slash)...]) else { return nil }
        self.path = path
        self.streamID = id
        self.token = token
        self.session = session
    }
}

/// Where the fast path gets bytes: from memory only, on the event loop (no disk, no waiting).
package protocol MediaFastPathSource: Sendable {
    /// The object's bytes when this node may answer the request now; nil: the router answers.
    func object(for request: MediaObjectRequest) -> ByteBuffer?
}

/// A source made of a closure (tests, benchmarks).
package struct MediaFastPathClosureSource: MediaFastPathSource {
    let body: @Sendable (MediaObjectRequest) -> ByteBuffer?
    package init(_ body: @escaping @Sendable (MediaObjectRequest) -> ByteBuffer?) { self.body = body }
    package func object(for request: MediaObjectRequest) -> ByteBuffer? { body(request) }
}

/// Answers memory-tier hits for immutable media objects; passes every other request on.
///
/// Order on a connection is kept: a request is only answered here when no earlier request
/// of the same connection is still with the router (HTTP/1.1 pipelining answers in order).
package final class MediaFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart
    package typealias OutboundIn = HTTPResponsePart
    package typealias OutboundOut = HTTPResponsePart

    let source: any MediaFastPathSource
    /// Requests handed to the router and not yet answered in full.
    private(set) var withRouter = 0
    /// True while the body parts of a request answered here are still arriving.
    private(set) var swallowing = false
    /// Set by the raw handler for a head it read and passed on: the router answers that one.
    var routeNext = false
    /// In front of the HTTP decoder: answers plain GETs from their bytes, and writes this
    /// handler's answers at the socket's end of the pipeline (after the HTTP encoder).
    private var raw: RawMediaFastPath!

    package init(source: any MediaFastPathSource) {
        self.source = source
        self.raw = RawMediaFastPath(typed: self)
    }

    package convenience init(lookup: @escaping @Sendable (MediaObjectRequest) -> ByteBuffer?) {
        self.init(source: MediaFastPathClosureSource(lookup))
    }

    /// The bytes for a request target, if the fast path may answer it.
    func lookup(_ target: String) -> ByteBuffer? {
        MediaObjectRequest(target: target).flatMap { source.object(for: $0) }
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        // Right in front of the HTTP codec (its encoder comes first), not simply first: a handler
        // that chose this pipeline after reading the first bytes, or TLS, may come before it.
        let codec = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        try? context.pipeline.syncOperations.addHandler(raw, position: codec.map { .before($0.handler) } ?? .first)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let request):
            let decided = routeNext
            routeNext = false
            if !decided, withRouter == 0, let body = answerable(request) {
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

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { withRouter = max(0, withRouter - 1) }
        context.write(data, promise: promise)
    }

    /// The cached object for a plain GET of a media object, if the memory tier has it.
    private func answerable(_ request: HTTPRequest) -> ByteBuffer? {
        guard request.method == .get, let path = request.path else { return nil }
        // A client that asks to close (or to upgrade) gets the router's full connection handling.
        if let connection = request.headerFields[.connection], connection.lowercased().contains("close") { return nil }
        if request.headerFields[.upgrade] != nil { return nil }
        return lookup(path)
    }

    /// The response head up to the end, as bytes.
    static func rawHead(allocator: ByteBufferAllocator, length: Int) -> ByteBuffer {
        var head = allocator.buffer(capacity: rawHead.readableBytes + 80)
        head.writeImmutableBuffer(rawHead)
        head.writeString(date.current)
        head.writeStaticString("\r\ncontent-length: ")
        head.writeString(String(length))
        head.writeStaticString("\r\n\r\n")
        return head
    }

    private func respond(context: ChannelHandlerContext, body: ByteBuffer) {
        if let rawContext = raw.context {
            rawContext.write(NIOAny(Self.rawHead(allocator: context.channel.allocator, length: body.readableBytes)), promise: nil)
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

    /// A path the fast path may answer: an object under `/live/`, no query, not a playlist.
    package static func isMediaObject(_ path: String) -> Bool {
        path.hasPrefix("/live/") && !path.utf8.contains(UInt8(ascii: "?")) && !path.hasSuffix(".m3u8")
    }

    /// The stream id of a media object's path (`/live/{id}/{rendition}/{object}`).
    package static func streamID(in path: String) -> String? {
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

/// In front of the HTTP decoder: a complete request head that is a plain `GET` (HTTP/1.1, no
/// body, not asking to close) of a cached media object, with no earlier request still at the
/// router, is answered here from its bytes. Anything else goes on to the decoder a whole
/// request head at a time; a request with a body, or a head too long, turns this handler
/// into a pass-through for the rest of the connection.
final class RawMediaFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let maxHead = 16 * 1024

    private unowned let typed: MediaFastPath
    private(set) var context: ChannelHandlerContext?
    /// Bytes of a head not complete yet, and how far they were scanned.
    private var pending: ByteBuffer?
    private var scanned = 0
    private var passThrough = false
    /// The client is not reading its answers: no more are written, nor requests read, until
    /// the socket drains (a client that pipelines and never reads cannot grow memory).
    private var paused = false
    private var readWanted = false

    init(typed: MediaFastPath) { self.typed = typed }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !passThrough else { return context.fireChannelRead(data) }
        var input = unwrapInboundIn(data)
        if var earlier = pending {
            earlier.writeBuffer(&input)
            input = earlier
            pending = nil
        }
        process(input, context: context)
    }

    private func process(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        var input = bytes
        while input.readableBytes > 0 {
            if paused || !context.channel.isWritable {
                paused = true
                pending = input
                return
            }
            switch Self.scanHead(input, from: scanned) {
            case .incomplete(let upTo):
                if input.readableBytes > Self.maxHead { return handOver(input, context: context) }
                pending = input
                scanned = upTo
                return
            case .lenient:
                // Lines ended the lenient way (a bare CR or LF): the strict decoder has the rest.
                return handOver(input, context: context)
            case .complete(let length):
                scanned = 0
                let head = input.readSlice(length: length)!
                switch classify(head) {
                case .answer(let body):
                    context.write(NIOAny(MediaFastPath.rawHead(allocator: context.channel.allocator, length: body.readableBytes)), promise: nil)
                    context.writeAndFlush(NIOAny(body), promise: nil)
                case .forward:
                    typed.routeNext = true
                    context.fireChannelRead(wrapInboundOut(head))
                    typed.routeNext = false
                case .bodyFollows:
                    context.fireChannelRead(wrapInboundOut(head))
                    return handOver(input, context: context)
                }
            }
        }
    }

    /// From here on every byte goes to the decoder.
    private func handOver(_ rest: ByteBuffer, context: ChannelHandlerContext) {
        passThrough = true
        paused = false
        pending = nil
        if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        if readWanted {
            readWanted = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readWanted = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if paused, context.channel.isWritable {
            paused = false
            if let rest = pending {
                pending = nil
                process(rest, context: context)
            }
            if !paused, readWanted {
                readWanted = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    enum Scan: Equatable { case complete(Int), incomplete(Int), lenient }

    /// Looks for the blank line ending a head, from `from` (bytes before it were scanned by an
    /// earlier read and found wanting); a bare CR or LF makes the head one this handler leaves
    /// to the decoder.
    static func scanHead(_ buffer: ByteBuffer, from: Int) -> Scan {
        buffer.withUnsafeReadableBytes { b -> Scan in
            var i = from
            while i < b.count {
                switch b[i] {
                case 10:
                    guard i > 0, b[i - 1] == 13 else { return .lenient }
                    if i >= 3, b[i - 2] == 10, b[i - 3] == 13 { return .complete(i + 1) }
                case 13:
                    // A CR must be followed by LF; at the end of what came so far, wait for the next byte.
                    if i + 1 < b.count, b[i + 1] != 10 { return .lenient }
                    if i + 1 == b.count { return .incomplete(i) }
                default:
                    break
                }
                i += 1
            }
            return .incomplete(b.count)
        }
    }

    enum Verdict { case answer(ByteBuffer), forward, bodyFollows }

    func classify(_ head: ByteBuffer) -> Verdict {
        let parsed: (path: String, eligible: Bool, body: Bool)? = head.withUnsafeReadableBytes { b in
            // Request line: "GET <target> HTTP/1.1\r\n".
            guard let lineEnd = b.firstIndex(of: 13) else { return nil }
            let line = b[..<lineEnd]
            guard let sp1 = line.firstIndex(of: 32), let sp2 = line[(sp1 + 1)...].firstIndex(of: 32) else { return nil }
            let isGet = sp1 == 3 && b[0] == 71 && b[1] == 69 && b[2] == 84
            let version = line[(sp2 + 1)...]
            let http11 = version.elementsEqual("HTTP/1.1".utf8)
            var eligible = isGet && http11
            var body = false
            // Header lines: only the ones that change how the request must be handled matter.
            var start = lineEnd + 2
            while start < b.count - 2 {
                guard let end = b[start...].firstIndex(of: 13), end > start else { break }
                let field = UnsafeRawBufferPointer(rebasing: b[start..<end])
                // What the strict decoder refuses (folded lines, white space before the colon,
                // no colon) is left to it: it says what is wrong.
                guard Self.isStrictField(field) else { return nil }
                if Self.hasName(field, "content-length") {
                    if !Self.value(field).elementsEqual("0".utf8) { body = true }
                } else if Self.hasName(field, "transfer-encoding") {
                    body = true
                } else if Self.hasName(field, "connection") {
                    if Self.lowercased(Self.value(field)).contains("close") { eligible = false }
                } else if Self.hasName(field, "upgrade") || Self.hasName(field, "expect") {
                    eligible = false
                }
                start = end + 2
            }
            let path = eligible ? String(decoding: b[(sp1 + 1)..<sp2], as: UTF8.self) : ""
            return (path, eligible, body)
        }
        guard let parsed else { return .forward }  // the decoder says what is wrong with it
        if parsed.body { return .bodyFollows }
        guard parsed.eligible, typed.withRouter == 0, !typed.swallowing, let body = typed.lookup(parsed.path) else { return .forward }
        return .answer(body)
    }

    /// A header line a strict parser takes: a name of token characters, then a colon.
    static func isStrictField(_ field: UnsafeRawBufferPointer) -> Bool {
        guard let colon = field.firstIndex(of: 58), colon > 0 else { return false }
        for c in field[..<colon] where !tchar[Int(c)] { return false }
        return true
    }

    /// RFC 9110 token characters: visible ASCII except separators.
    static let tchar: [Bool] = (0..<256).map { c in
        c > 32 && c < 127 && !"\"(),/:;<=>?@[\\]{}".utf8.contains(UInt8(c))
    }

    /// Whether a header line's name is `name` (lower case), in any case.
    static func hasName(_ field: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        let n = name.utf8CodeUnitCount
        guard field.count > n, field[n] == 58 else { return false }
        let p = name.utf8Start
        for i in 0..<n where field[i] | 0x20 != p[i] { return false }
        return true
    }

    static func value(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer.SubSequence {
        guard let colon = field.firstIndex(of: 58) else { return field[field.endIndex...] }
        var v = field[(colon + 1)...]
        while let f = v.first, f == 32 || f == 9 { v = v.dropFirst() }
        while let l = v.last, l == 32 || l == 9 { v = v.dropLast() }
        return v
    }

    static func lowercased(_ bytes: UnsafeRawBufferPointer.SubSequence) -> String {
        String(decoding: bytes.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
