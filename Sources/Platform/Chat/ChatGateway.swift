// ChatGateway: the chat's WebSockets on a node, decided before the HTTP router (hummingbird-
// websocket upgrades a connection's first request):
//
// - `GET /chat/{stream}` (Upgrade: websocket): a viewer. Anyone who may watch the stream reads
//   (a private or paid stream's playback token in `?token=`, as its media); a signed-in person
//   posts. A request that carries the session cookie must come from a page of this site: its
//   Origin is this host's (or the public URL's) and `?csrf=` is the anti-forgery cookie's value,
//   as forms carry it. Frames are bounded before they are decoded; a connection sending too
//   many frames is closed, it alone.
// - `GET /internal/chat/{stream}`: another node's link to the room held here, with a one-time
//   cluster token (purpose `chat`), over TLS when the cluster uses it.
import Catalog
import Cluster
import Foundation
import HTTPSupport
import HTTPTypes
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

package struct ChatGateway: Sendable {
    package static let clusterTokenHeader = HTTPField.Name.streamTubeClusterToken
    /// Close codes a page acts on: 4403 and 4404 it does not retry; 1013 (try again later) and
    /// 1012 (the room moved) it retries with backoff.
    package static let forbidden: UInt16 = 4403
    package static let notFound: UInt16 = 4404
    /// The largest WebSocket frame a node reads (a relay's frames carry a viewer's command
    /// re-encoded); a viewer's message is held to `ChatLimits.maxFrameBytes`, before decoding.
    package static let maxFrameBytes = 1 << 16

    let rooms: ChatRooms
    let catalog: StreamCatalog
    let tokens: ClusterTokens
    /// Whether `/internal/` needs mutual TLS (the cluster uses TLS).
    let requiresTLS: Bool
    /// The platform's public URL: a page there may open a chat here.
    let publicURL: String
    /// Who a session cookie's token belongs to (id, display name), or nil.
    let sessionUser: @Sendable (String) async -> (id: String, name: String)?
    /// Whether a stream may be watched with this playback token (the media's rule).
    let mayRead: @Sendable (StreamRecord, Substring?) -> Bool
    let logger: Logger

    package init(rooms: ChatRooms, catalog: StreamCatalog, tokens: ClusterTokens, requiresTLS: Bool, publicURL: String,
                 sessionUser: @escaping @Sendable (String) async -> (id: String, name: String)?,
                 mayRead: @escaping @Sendable (StreamRecord, Substring?) -> Bool, logger: Logger) {
        self.rooms = rooms
        self.catalog = catalog
        self.tokens = tokens
        self.requiresTLS = requiresTLS
        self.publicURL = publicURL
        self.sessionUser = sessionUser
        self.mayRead = mayRead
        self.logger = logger
    }

    package typealias Handler = WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>

    /// hummingbird-websocket's `shouldUpgrade`: which connections become chat WebSockets.
    package func shouldUpgrade(_ request: HTTPRequest, channel: any Channel) async -> ShouldUpgradeResult<Handler> {
        let target = request.path ?? ""
        let (path, query) = Self.split(target)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 3, parts[1] == "chat", StreamIdentifiers.isWellFormed(parts[2]) {
            return await viewer(request, stream: String(parts[2]), query: query, channel: channel)
        }
        if parts.count == 4, parts[1] == "internal", parts[2] == "chat", StreamIdentifiers.isWellFormed(parts[3]) {
            return await link(request, target: target, stream: String(parts[3]), channel: channel)
        }
        return .dontUpgrade
    }

    // MARK: viewers

    private func viewer(_ request: HTTPRequest, stream: String, query: [String: String], channel: any Channel) async -> ShouldUpgradeResult<Handler> {
        let cookies = Self.cookies(request.headerFields[values: .cookie])
        var author: (id: String, name: String)?
        if let session = cookies[CSRFMiddleware.sessionCookie] {
            // The cookie rides on any request a browser makes: only this site's pages may use it.
            guard isOwnOrigin(request), let presented = query["csrf"], let cookie = cookies[CSRFMiddleware.cookieName],
                  RandomToken.equal(cookie, presented) else {
                logger.info("chat: refused a connection with a session but not from this site's page",
                            metadata: ["stream": "\(stream)", "origin": "\(request.headerFields[.origin] ?? "-")"])
                return .dontUpgrade
            }
            author = await sessionUser(session)
        }
        guard let record = await catalog.find(id: stream) else {
            return .upgrade([:], Self.refusal(Self.notFound, "no such stream"))
        }
        guard mayRead(record, query["token"].map { Substring($0) }) else {
            return .upgrade([:], Self.refusal(Self.forbidden, "this stream is private: its chat is for those who may watch it"))
        }
        let chatAuthor = author.map { a in
            ChatAuthor(id: a.id, name: a.name, moderator: record.owner == a.id || record.cohosts.contains { $0.account == a.id })
        }
        let rooms = self.rooms, logger = self.logger
        return .upgrade([:], { inbound, outbound, _ in
            await Self.serveViewer(stream: stream, author: chatAuthor, rooms: rooms, channel: channel, inbound: inbound,
                                   outbound: outbound, logger: logger)
        })
    }

    static func refusal(_ code: UInt16, _ reason: String) -> Handler {
        { _, outbound, _ in try await outbound.close(.unknown(code), reason: reason) }
    }

    /// One viewer's connection: the room's events out, their commands in. Events and replies are
    /// written straight to the connection's channel, in order, by its event loop's queue
    /// (`ChatLoopWrites`); a viewer who reads too slowly loses events, never the node's memory.
    static func serveViewer(stream: String, author: ChatAuthor?, rooms: ChatRooms, channel: any Channel, inbound: WebSocketInboundStream,
                            outbound: WebSocketOutboundWriter, logger: Logger) async {
        let limits = rooms.limits
        let writes = ChatLoopWrites.of(channel.eventLoop)
        let (closing, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1))
        let deliver: ChatSink = { out in
            switch out {
            case .text(let text): writes.send(text, to: channel)
            case .close(let reason): sink.yield(reason)
            }
        }
        var joined: (any ChatRoomHandle, Int)?
        for _ in 0..<2 where joined == nil {
            guard let room = try? await rooms.handle(for: stream) else { break }
            if let id = await room.subscribe(deliver) { joined = (room, id) } else { await rooms.discard(stream, room) }
        }
        guard let (room, conn) = joined else {
            try? await outbound.close(.unknown(1013), reason: "the chat is not reachable now: try again")
            return
        }
        let reply: @Sendable (String) -> Void = { writes.send($0, to: channel) }
        await room.submit(.join, from: author, conn: conn, reply: reply)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await reason in closing {
                    try? await outbound.close(.unknown(1012), reason: reason)
                    return
                }
            }
            group.addTask {
                var flood = FrameBudget(limits: limits, now: ContinuousClock.now)
                do {
                    // Bounded before decoding: the WebSocket decoder refuses a frame past
                    // `maxFrameBytes` (64 KiB) before reading it, and a viewer's message past
                    // `limits.maxFrameBytes` (4 KiB) ends the connection (1009) before JSON sees it.
                    for try await message in inbound.messages(maxSize: limits.maxFrameBytes) {
                        if case .text(let text) = message, text.utf8.count > limits.maxFrameBytes {
                            logger.info("chat: closed a connection that sent too large a message", metadata: ["stream": "\(stream)"])
                            try? await outbound.close(.messageTooLarge, reason: "message too large")
                            return
                        }
                        guard case .text = message else {
                            try? await outbound.close(.unacceptableData, reason: "chat messages are text")
                            return
                        }
                        guard flood.spend(at: ContinuousClock.now) else {
                            logger.info("chat: closed a flooding connection", metadata: ["stream": "\(stream)", "user": "\(author?.id ?? "-")"])
                            try? await outbound.close(.policyViolation, reason: "too many messages")
                            return
                        }
                        guard case .text(let text) = message, let command = ChatCommand.decode(text), command.type != "join" else {
                            reply(ChatEvent.notice("not a chat command").json)
                            continue
                        }
                        await room.submit(command, from: author, conn: conn, reply: reply)
                    }
                } catch {
                    logger.debug("chat: a viewer's connection ended", metadata: ["stream": "\(stream)", "error": "\(error)"])
                    try? await outbound.close(.messageTooLarge, reason: "message too large")
                }
            }
            await group.next()
            group.cancelAll()
        }
        sink.finish()
        await room.unsubscribe(conn)
    }

    private func isOwnOrigin(_ request: HTTPRequest) -> Bool {
        guard let origin = request.headerFields[.origin]?.lowercased() else { return false }
        if let host = request.authority, origin == "http://\(host.lowercased())" || origin == "https://\(host.lowercased())" {
            return true
        }
        return origin == Self.origin(of: publicURL)
    }

    static func origin(of url: String) -> String? {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host else { return nil }
        return "\(scheme)://\(host)\(c.port.map { ":\($0)" } ?? "")".lowercased()
    }

    // MARK: links from other nodes

    private func link(_ request: HTTPRequest, target: String, stream: String, channel: any Channel) async -> ShouldUpgradeResult<Handler> {
        if requiresTLS, !(await ClusterTransport.isMutualTLS(channel)) {
            logger.warning("chat: a node's link refused: not over TLS", metadata: ["stream": "\(stream)"])
            return .dontUpgrade
        }
        guard let token = request.headerFields[Self.clusterTokenHeader] else { return .dontUpgrade }
        do throws(ClusterTokenError) {
            let grant = try tokens.verify(token, for: ClusterRequest(.chat, "GET", target))
            guard grant.scope == stream else { return .dontUpgrade }
        } catch {
            logger.warning("chat: a node's link refused", metadata: ["stream": "\(stream)", "error": "\(error)"])
            return .dontUpgrade
        }
        let rooms = self.rooms, logger = self.logger
        return .upgrade([:], { inbound, outbound, _ in
            guard let room = await rooms.roomIfOwner(stream) else {
                try await outbound.close(.unknown(1013), reason: "this node does not hold the room")
                return
            }
            await Self.serveLink(room: room, inbound: inbound, outbound: outbound, logger: logger)
        })
    }

    /// A relaying node's link: the room's events out to it (one frame for all its viewers),
    /// its viewers' commands in.
    static func serveLink(room: ChatRoom, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async {
        let (frames, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(8192))
        guard let id = await room.subscribe({ out in
            switch out {
            case .text(let json): sink.yield(ChatRelayEnvelope.everyone(json))
            case .close: sink.finish()
            }
        }) else {
            try? await outbound.close(.unknown(1013), reason: "the room closed")
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await frame in frames {
                    do { try await outbound.write(.text(frame)) } catch { return }
                }
                try? await outbound.close(.unknown(1012), reason: "the room moved")
            }
            group.addTask {
                do {
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        guard case .text(let text) = message,
                              let frame = try? JSONDecoder().decode(ChatRelayFrame.self, from: Data(text.utf8)),
                              let conn = Int(frame.conn) else { continue }
                        await room.submit(frame.command, from: frame.user, conn: conn, reply: { sink.yield(ChatRelayEnvelope.one(String(conn), $0)) })
                    }
                } catch {
                    logger.debug("chat: a node's link ended", metadata: ["stream": "\(room.stream)", "error": "\(error)"])
                }
            }
            await group.next()
            group.cancelAll()
        }
        sink.finish()
        await room.unsubscribe(id)
    }

    // MARK: parsing

    static func split(_ target: String) -> (path: String, query: [String: String]) {
        guard let q = target.firstIndex(of: "?") else { return (target, [:]) }
        var query: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, let key = kv[0].removingPercentEncoding, let value = kv[1].removingPercentEncoding else { continue }
            query[key] = value
        }
        return (String(target[..<q]), query)
    }

    static func cookies(_ headers: [String]) -> [String: String] {
        var cookies: [String: String] = [:]
        for header in headers {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let name = kv[0].trimmingCharacters(in: .whitespaces)
                if cookies[name] == nil { cookies[name] = kv[1].trimmingCharacters(in: .whitespaces) }
            }
        }
        return cookies
    }
}

/// A connection's frame budget: `frameBurst` frames at once, refilled at `framesPerSecond`.
package struct FrameBudget: Sendable {
    private var tokens: Double
    private var at: ContinuousClock.Instant
    private let limits: ChatLimits

    package init(limits: ChatLimits, now: ContinuousClock.Instant) {
        self.limits = limits
        tokens = limits.frameBurst
        at = now
    }

    /// Spends one frame; false: the connection floods.
    package mutating func spend(at now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(limits.frameBurst, tokens + max(0, seconds) * limits.framesPerSecond)
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
