// LiveRoutes: LL-HLS delivery (master and media playlists, init segments, segments and parts)
// and viewer routing (`/api/route/{id}`). Thin: each route finds the stream, asks the playback
// policy, and answers from the stream's live state here, its replica, or the origin through
// the edge.
import Catalog
import Cluster
import Foundation
import Gossip
import HTTPSupport
import Hummingbird
import NodeMetrics
import NIOCore
import Origin

/// `GET /api/route/{id}`: where a viewer of a stream should go.
package struct RouteAnswer: Codable, Equatable, Sendable {
    package var stream: String
    package var edge: String
    package var region: String
    package var watchURL: String
    package var playlistURL: String
    package var load: UInt32?
    package var origin: String?
    /// The first holds the replica.
    package var standbys: [String]?
    package var rttMs: Double?
}

package struct LiveRoutes: Sendable {
    package let streams: LiveStreams
    package let edge: EdgeProxy?
    package let viewers: ViewerRouting?
    package let info: NodeInfo
    package let playback: any PlaybackPolicy
    /// Counts the viewer sessions this node serves (nil: not counted).
    package var sessions: ViewerSessions?
    /// Turns new viewers away (503) when the node is over a bound (nil: every join taken).
    package var joins: JoinGate?

    package init(streams: LiveStreams, edge: EdgeProxy?, info: NodeInfo, playback: any PlaybackPolicy = PublicPlayback()) {
        self.streams = streams
        self.edge = edge
        self.viewers = edge.map { ViewerRouting(router: $0.router, localID: $0.localID) }
        self.info = info
        self.playback = playback
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/live/:id/master.m3u8") { request, context in try await master(request, context) }
        routes.get("/live/:id/:rendition/:file") { request, context in try await object(request, context) }
        routes.get("/api/route/:id") { request, context in try await route(request, context) }
        return routes
    }

    /// The stream a route's `:id` names, or a 404. `here`: only what this node holds, without
    /// asking the database again or the other nodes (the operator's view of this node).
    package static func stream(_ context: NodeRequestContext, in catalog: StreamCatalog, here: Bool = false) async throws -> StreamRecord {
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)),
              let record = here ? catalog.record(id: id) : await catalog.find(id: id) else {
            throw Problem.notFound("no stream \(id)")
        }
        return record
    }

    /// What a media request of a stream carries and may do.
    struct Playback {
        /// The request's token, forwarded to the origin by an edge (the origin checks it too).
        var token: Substring?
        /// The token the playlists answered must carry on in every URI: a private stream's,
        /// for a viewer (an edge asking its origin rewrites nothing; it writes its viewers' own).
        var carry: Substring?
        /// The viewer session the request belongs to (`vsid=`), carried on as the token is.
        var session: ViewerSessionID?

        /// What every URI of a playlist answered carries on, if anything.
        var carryQuery: String? {
            switch (carry, session) {
            case (nil, nil): return nil
            case (let t?, nil): return "token=" + t
            case (nil, let s?): return "vsid=\(s)"
            case (let t?, let s?): return "vsid=\(s)&token=\(t)"
            }
        }
    }

    /// The request's playback token (`?token=`), checked by the policy; 403 when it does not
    /// open the stream.
    private func authorize(_ request: Request, _ record: StreamRecord) throws -> Playback {
        try Self.authorize(request, record, playback: playback)
    }

    /// The same for any route serving a stream's media (its recordings too).
    /// `recording`: the request is for that recording's files, which a token scoped to it opens too.
    static func authorize(_ request: Request, _ record: StreamRecord, recording: String? = nil,
                          playback: any PlaybackPolicy) throws -> Playback {
        let token = request.uri.queryParameters.get("token").map { Substring($0) }
        let allowed = recording.map { playback.allowsPlayback(recording: Substring($0), of: record, token: token) }
            ?? playback.allowsPlayback(of: record, token: token)
        guard allowed else {
            throw Problem(.forbidden, "this stream is private: it needs a valid playback token (?token=)")
        }
        guard let token, record.visibility.isPrivate, PlaybackQuery.isPlain(token) else { return Playback(token: token, carry: nil) }
        return Playback(token: token, carry: request.headers[.streamTubeEdge] == nil ? token : nil)
    }

    static func playlist(_ text: String, carrying token: Substring?) -> String {
        token.map { PlaybackQuery.carrying($0, in: text) } ?? text
    }

    static func playlist(_ text: String, carrying access: Playback) -> String {
        access.carryQuery.map { PlaybackQuery.carrying(query: $0, in: text) } ?? text
    }

    /// The viewer session of a playlist request, noted as watching: the one its query names, or
    /// (`assign`: a master playlist) a new one, which counts from its first media playlist on (a
    /// script or a health check that reads the master playlist alone is no viewer). None for an
    /// edge asking its origin: the edge counts its own viewers.
    private func session(_ request: Request, stream: String, rendition: String?, assign: Bool) -> ViewerSessionID? {
        Self.session(request, sessions: sessions, stream: stream, rendition: rendition, assign: assign)
    }

    /// The same for any route serving media (a recording's too: `stream` is then its id).
    static func session(_ request: Request, sessions: ViewerSessions?, stream: String, rendition: String?, assign: Bool) -> ViewerSessionID? {
        guard let sessions, request.headers[.streamTubeEdge] == nil else { return nil }
        let query = request.uri.query
        guard let session = ViewerSessions.session(inQuery: query) else { return assign ? ViewerSessionID.random() : nil }
        sessions.notePoll(stream: stream, session: session, rendition: rendition, userAgent: request.headers[.userAgent],
                          referrer: assign ? ViewerSessions.referrerHost(query: query, header: request.headers[.referer]) : nil)
        return session
    }

    /// A media object served to a session: its duration is watched.
    private func served(_ response: Response, _ request: Request, stream: String, access: Playback) -> Response {
        Self.served(response, request, sessions: sessions, stream: stream, access: access)
    }

    static func served(_ response: Response, _ request: Request, sessions: ViewerSessions?, stream: String, access: Playback) -> Response {
        // Playlists are polls (noted as such), not media.
        if let sessions, let session = access.session, response.status == .ok, !request.uri.path.hasSuffix(".m3u8") {
            sessions.noteObject(stream: stream, session: session, path: request.uri.path, bytes: response.body.contentLength ?? 0)
        }
        return response
    }

    private func master(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let record = try await Self.stream(context, in: streams.catalog)
        var access = try authorize(request, record)
        if let redirect = viewers?.redirect(request) { return redirect }
        // A join (no session yet, not an edge asking its origin) is refused at once over a bound,
        // before it costs anything, so the player or the load balancer tries elsewhere.
        if let joins, request.headers[.streamTubeEdge] == nil, ViewerSessions.session(inQuery: request.uri.query) == nil,
           let refused = joins.refuse() {
            return refused
        }
        access.session = session(request, stream: record.id, rendition: nil, assign: true)
        if let upstream = await fromOrigin(record.id, request, query: nil, immutable: false, access: access) { return upstream }
        noteEdgeRequest(request)
        guard let live = streams.live(id: record.id) else { throw Problem.notFound("no stream \(record.id)") }
        let renditions = live.renditions
        guard !renditions.isEmpty else { throw Problem.notFound("stream \(record.id) is offline") }
        return Responses.text(Self.playlist(Self.masterPlaylist(renditions), carrying: access), type: Responses.playlistType,
                              cache: Self.playlistCache(access, maxAge: 1))
    }

    static func masterPlaylist(_ renditions: [RenditionInfo]) -> String {
        var lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for r in renditions {
            var attrs = "BANDWIDTH=\(r.bandwidth),AVERAGE-BANDWIDTH=\(r.averageBandwidth),CODECS=\"\(r.codecs)\""
            if let w = r.width, let h = r.height { attrs += ",RESOLUTION=\(w)x\(h)" }
            if let f = r.frameRate { attrs += ",FRAME-RATE=\(String(format: "%.3f", f))" }
            lines.append("#EXT-X-STREAM-INF:\(attrs)")
            lines.append("\(r.name)/index.m3u8")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func object(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let rendition = try context.parameters.require("rendition")
        let file = try context.parameters.require("file")
        guard StreamIdentifiers.isWellFormed(Substring(rendition)) else { throw Problem.notFound("no such rendition") }
        guard let name = MediaName(file) else { throw Problem.notFound("no such file") }
        let record = try await Self.stream(context, in: streams.catalog)
        var access = try authorize(request, record)
        if name == .playlist {
            access.session = session(request, stream: record.id, rendition: rendition, assign: false)
        } else if sessions != nil, request.headers[.streamTubeEdge] == nil {
            access.session = ViewerSessions.session(inQuery: request.uri.query)
        }
        // Immutable objects are fetched and cached under their name alone; a playlist's query
        // (blocking reload, delta update) is the origin's to answer, and a token is no part of it.
        let query = name.isImmutable ? nil : PlaybackQuery.withoutToken(request.uri.query)
        if let upstream = await fromOrigin(record.id, request, query: query, immutable: name.isImmutable, access: access) {
            return served(upstream, request, stream: record.id, access: access)
        }
        noteEdgeRequest(request)
        guard let live = streams.live(id: record.id), live.hasRendition(rendition) else { throw Problem.notFound("no such rendition") }
        if name == .playlist { return try await mediaPlaylist(live, rendition: rendition, request: request, access: access) }
        return served(try await mediaObject(live, rendition: rendition, name: name), request, stream: record.id, access: access)
    }

    private func route(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let record = try await Self.stream(context, in: streams.catalog)
        guard let edge, let member = edge.router.chooseEdge(regionHint: ViewerRouting.regionHint(request)) else {
            let authority = request.head.authority ?? "127.0.0.1:\(info.httpPort)"
            return try Responses.json(RouteAnswer(stream: record.id, edge: info.nodeID, region: info.region,
                                                  watchURL: "http://\(authority)/watch/\(record.id)",
                                                  playlistURL: "http://\(authority)/live/\(record.id)/master.m3u8"))
        }
        let snap = edge.router.view.snapshot
        var answer = RouteAnswer(stream: record.id, edge: member.id.rawValue, region: member.metadata.region,
                                 watchURL: "http://\(member.metadata.httpAddress)/watch/\(record.id)",
                                 playlistURL: "http://\(member.metadata.httpAddress)/live/\(record.id)/master.m3u8",
                                 load: member.metadata.load)
        if let placement = edge.router.placement(of: record.id) {
            answer.origin = placement.owner.id.rawValue
            answer.standbys = placement.standbys.map(\.id.rawValue)
        }
        if let rtt = member.id == snap.localID ? Duration.zero : snap.rtt[member.id] { answer.rttMs = rtt.seconds * 1000 }
        return try Responses.json(answer)
    }

    /// For a stream owned elsewhere: the origin's answer through the edge, or nil when this
    /// node answers itself — it is the stream's owner, or it holds the stream's replica (it is
    /// the standby) and a node whose origin failed asks it, or the origin cannot be reached.
    private func fromOrigin(_ id: String, _ request: Request, query: String?, immutable: Bool, access: Playback) async -> Response? {
        guard let edge, request.headers[.streamTubePassedOn] == nil else { return nil }
        let local = streams.existing(id: id)
        // The node publishing a stream answers for it, whoever the ring names: it makes the media.
        // (A node that joined is the ring's owner before it holds anything; this node hands the
        // stream over once it holds it all.)
        if local?.isPublishing == true { return nil }
        let observe = Self.observer(request, sessions: sessions, access: access, immutable: immutable)
        if edge.router.ownsLocally(id) {
            // The owner with nothing of the stream yet asks the nodes after it in the ring (the one
            // publishing it among them), each to answer itself: an edge never gets a 404 for a live
            // stream from a node that has just joined.
            guard local?.hasMedia != true else { return nil }
            let upstream = await edge.serve(streamID: id, path: request.uri.path, query: query, immutable: immutable,
                                            token: access.token, carry: access.carry, carryQuery: access.carryQuery,
                                            observe: observe, passOn: true)
            return upstream.status == .ok ? upstream : nil
        }
        // Only a replica answers for an origin another node cannot reach: a stream this node
        // published and handed to the ring's owner has ended here, and an edge that still takes
        // this node for the origin must get the owner's playlists, not that end.
        let replica = local.flatMap { $0.hasMedia && $0.isReplica ? $0 : nil }
        if replica != nil, request.headers[.streamTubeEdge] != nil { return nil }
        let upstream = await edge.serve(streamID: id, path: request.uri.path, query: query, immutable: immutable,
                                        token: access.token, carry: access.carry, carryQuery: access.carryQuery, observe: observe)
        return upstream.status == .serviceUnavailable && replica != nil ? nil : upstream
    }

    /// What learns the durations of a playlist an edge passes on to a session.
    static func observer(_ request: Request, sessions: ViewerSessions?, access: Playback, immutable: Bool) -> (@Sendable (String) -> Void)? {
        guard access.session != nil, !immutable else { return nil }
        let path = request.uri.path
        return { @Sendable text in Self.learn(text, path: path, sessions: sessions) }
    }

    /// Learns the durations a media playlist (at `path`, `.../index.m3u8`) gives its objects.
    static func learn(_ playlist: String, path: String, sessions: ViewerSessions?) {
        guard let sessions, path.hasSuffix("/index.m3u8") else { return }
        sessions.learnDurations(playlist: playlist, base: String(path.dropLast("index.m3u8".count)))
    }

    /// Counts what edges ask of this node as an origin.
    private func noteEdgeRequest(_ request: Request) {
        if request.headers[.streamTubeEdge] != nil { NodeMetrics.originEdgeRequests.increment() }
    }

    /// Media playlist, with LL-HLS blocking reload (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip`).
    /// A tokened playlist is one viewer's: no shared cache keeps it.
    static func playlistCache(_ access: Playback, maxAge: Int) -> String {
        access.carry == nil ? "public, max-age=\(maxAge)" : "private, max-age=\(maxAge)"
    }

    private func mediaPlaylist(_ live: LiveStream, rendition: String, request: Request, access: Playback) async throws -> Response {
        let asked = try PlaylistRequest(request.uri.queryParameters)
        if let target = asked.target {
            guard live.isWithinReach(target, rendition: rendition) else {
                let m = switch target { case .part(let n, _), .segment(let n): n }
                throw Problem.badRequest("_HLS_msn \(m) is more than two segments ahead of the live edge")
            }
            let timeout = Duration.milliseconds(Int(live.settings.segmentTarget * 3 * 1000))
            let ok = await live.wait(for: target, rendition: rendition, timeout: timeout)
            if !ok && live.isLive(rendition: rendition) {
                throw Problem(.serviceUnavailable, "the requested part did not arrive in time", headers: [.retryAfter: "1"])
            }
        }
        guard let body = live.mediaPlaylist(rendition: rendition, skip: asked.skip) else { throw Problem.notFound("stream is offline") }
        let ended = !live.isLive(rendition: rendition)
        if access.session != nil { Self.learn(body, path: request.uri.path, sessions: sessions) }
        return Responses.text(Self.playlist(body, carrying: access), type: Responses.playlistType,
                              cache: Self.playlistCache(access, maxAge: ended ? 10 : 1))
    }

    /// Init segments, segments and parts: immutable. The next part (the preload hint) is waited for.
    private func mediaObject(_ live: LiveStream, rendition: String, name: MediaName) async throws -> Response {
        switch name {
        case .playlist:
            throw Problem.notFound("no such file")
        case .initSegment(let v, let epoch):
            guard let bytes = live.initSegment(rendition: rendition, version: v, epoch: epoch) else {
                throw Problem.notFound("no such init segment")
            }
            return Responses.media(ByteBuffer(bytes: bytes))
        case .segment(let n, let epoch):
            guard let bytes = live.segment(rendition: rendition, sequence: n, epoch: epoch) else { throw Problem.notFound("no such segment") }
            return Responses.media(ByteBuffer(bytes: bytes))
        case .part(let n, let i, let epoch):
            if let bytes = live.part(rendition: rendition, sequence: n, index: i, epoch: epoch) { return Responses.media(ByteBuffer(bytes: bytes)) }
            // A request for the part that is being made now (the preload hint) waits for it; a
            // name from another life of the stream does not.
            if epoch == live.epoch, live.isWithinReach(.part(sequence: n, index: i), rendition: rendition) {
                let timeout = Duration.milliseconds(Int(live.settings.partTarget * 6 * 1000))
                if await live.wait(for: .part(sequence: n, index: i), rendition: rendition, timeout: timeout),
                   let bytes = live.part(rendition: rendition, sequence: n, index: i, epoch: epoch) {
                    return Responses.media(ByteBuffer(bytes: bytes))
                }
            }
            throw Problem.notFound("no such part")
        }
    }
}

/// Sends viewers to the nearest healthy edge.
package struct ViewerRouting: Sendable {
    let router: ClusterRouter
    let localID: String

    /// The viewer's region, if it says: `?region=` or the `X-StreamTube-Region` header.
    package static func regionHint(_ request: Request) -> String? {
        if let r = request.uri.queryParameters.get("region"), !r.isEmpty { return r }
        return request.headers[.streamTubeRegion].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A redirect to the nearest healthy edge, unless that is this node, the viewer was sent
    /// here already (`routed=1`), or the caller is an edge asking its origin.
    package func redirect(_ request: Request) -> Response? {
        guard request.uri.queryParameters.get("routed") == nil, request.headers[.streamTubeEdge] == nil,
              let member = router.chooseEdge(regionHint: Self.regionHint(request)),
              member.id.rawValue != localID else { return nil }
        var query = request.uri.query.map { $0 + "&" } ?? ""
        query += "routed=1"
        NodeMetrics.viewerRedirects.increment()
        return Response(status: .found, headers: [.location: "http://\(member.metadata.httpAddress)\(request.uri.path)?\(query)",
                                                  .cacheControl: "no-cache", .accessControlAllowOrigin: "*"])
    }
}
