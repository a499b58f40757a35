// WebRoutes: the pages a viewer opens, and the script and stylesheet they load.
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import Foundation
import NIOCore

package struct WebRoutes: Sendable {
    let catalog: StreamCatalog
    /// Sends the viewer to another node (the nearest healthy edge), or nil to answer here.
    let redirect: @Sendable (Request) -> Response?
    /// The other nodes' base URLs, for the player to ask when its edge fails.
    let nodes: @Sendable () -> [String]
    /// The ids of the streams live now, as this node knows them.
    let live: @Sendable () -> [String]
    let renderer: PageRenderer
    /// Where people reach the platform, for links in calendar feeds.
    let publicURL: String
    /// Makes the playback tokens of private streams' pages; nil: a private stream's page is
    /// shown to no one.
    let playback: (any PlaybackIssuer)?
    /// The page a paid stream shows whoever has no ticket (price, buy); nil: the private page.
    let paywall: (@Sendable (StreamRecord, Request, NodeRequestContext) async throws -> Response)?
    /// The page a paid recording shows whoever has nothing that opens it (its price, buy), by
    /// the recording's id and title and its stream (the recording's visibility put in); nil:
    /// the private page.
    let recordingPaywall: (@Sendable (String, String, StreamRecord, Request, NodeRequestContext) async throws -> Response)?
    /// The recordings the nodes report: a recording's page, and the recording a live stream's
    /// page goes back over (the DVR); nil: neither.
    let recordings: RecordingStore?
    /// What people set on a recording (title, description, visibility, trim; deleted), by id.
    let recordingDetails: (@Sendable (String) async -> RecordingDetails?)?
    /// The chat panel of a stream's page (its record, the page's playback token, who asks); nil: none.
    package var chat: (@Sendable (StreamRecord, String?, NodeRequestContext) -> String)?
    /// The chat replay of a recording's page (its stream, when the recording began, the page's token); nil: none.
    package var chatReplay: (@Sendable (StreamRecord, Date, String?) -> String)?

    package init(catalog: StreamCatalog, renderer: PageRenderer, publicURL: String = "http://127.0.0.1:8080",
                 playback: (any PlaybackIssuer)? = nil,
                 paywall: (@Sendable (StreamRecord, Request, NodeRequestContext) async throws -> Response)? = nil,
                 recordings: RecordingStore? = nil, recordingDetails: (@Sendable (String) async -> RecordingDetails?)? = nil,
                 recordingPaywall: (@Sendable (String, String, StreamRecord, Request, NodeRequestContext) async throws -> Response)? = nil,
                 redirect: @escaping @Sendable (Request) -> Response? = { _ in nil },
                 nodes: @escaping @Sendable () -> [String] = { [] }, live: @escaping @Sendable () -> [String] = { [] }) {
        self.catalog = catalog
        self.paywall = paywall
        self.recordingPaywall = recordingPaywall
        self.recordings = recordings
        self.recordingDetails = recordingDetails
        self.publicURL = publicURL
        self.renderer = renderer
        self.playback = playback
        self.redirect = redirect
        self.nodes = nodes
        self.live = live
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/") { request, context -> Response in
            // Listed: public streams only (unlisted ones are for whoever has the link).
            // Streams of the channels the viewer follows come first.
            var followed: Set<String> = []
            if let service = renderer.service, let caller = context.account { followed = try await service.channels.followed(by: caller.accountID) }
            let streams = live().compactMap { id in catalog.record(id: id) }.filter { $0.visibility == .public }
                .sorted { a, b in
                    let fa = a.owner.map(followed.contains) ?? false, fb = b.owner.map(followed.contains) ?? false
                    return fa != fb ? fa : a.title < b.title
                }
                .map { r -> [String: Any] in
                    ["id": r.id, "title": r.title, "followed": r.owner.map(followed.contains) ?? false]
                        .merging(StreamPicture.values(r, live: true)) { a, _ in a }
                }
            let upcoming = Self.upcoming(catalog).prefix(6).map(Self.scheduled)
            return try await renderer.render("home", ["streams": streams, "anyLive": !streams.isEmpty, "upcoming": Array(upcoming),
                                                      "anyUpcoming": !upcoming.isEmpty], request, context)
        }
        routes.get("/upcoming") { request, context -> Response in
            let upcoming = Self.upcoming(catalog).map(Self.scheduled)
            return try await renderer.render("upcoming", ["upcoming": upcoming, "anyUpcoming": !upcoming.isEmpty], request, context)
        }
        routes.get("/upcoming/calendar.ics") { request, _ -> Response in
            Self.ics(ICalendar.feed(name: "StreamTube: coming up", streams: Self.upcoming(catalog), base: publicURL,
                                   host: Self.host(publicURL)))
        }
        routes.get("/watch/:id/calendar.ics") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id), !record.visibility.isPrivate else {
                throw Problem.notFound("no such stream")
            }
            return Self.ics(ICalendar.feed(name: record.title, streams: [record], base: publicURL, host: Self.host(publicURL)))
        }
        routes.get("/watch/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                return Responses.html(WatchPage.notFound, status: .notFound)
            }
            if record.visibility.isPrivate {
                // Shown only to someone who may watch, with a token; served here (not sent to an
                // edge, where the session cookie may not go), and the player fetches a fresh
                // token from here before this one expires.
                guard let pass = await pass(for: record, request, context) else {
                    if record.visibility == .paid, let paywall { return try await paywall(record, request, context) }
                    return Responses.html(WatchPage.privateStream(card: ShareCard.stream(record, publicURL: publicURL)), status: .forbidden)
                }
                var page = Responses.html(WatchPage.render(id: record.id, title: record.title, description: record.description, nodes: nodes(), nonce: context.cspNonce ?? "",
                                                           startsAt: record.startsAt, card: ShareCard.stream(record, publicURL: publicURL),
                                                           token: pass.token, tokenExpiresIn: Self.expiresIn(pass),
                                                           recording: await recordingNow(of: record.id),
                                                           chat: chat?(record, pass.token, context) ?? ""))
                page.headers[.cacheControl] = "no-store"
                return page
            }
            if let redirect = redirect(request) { return redirect }
            let card = ShareCard.stream(record, publicURL: publicURL)
            return Responses.html(WatchPage.render(id: record.id, title: record.title, description: record.description, nodes: nodes(), nonce: context.cspNonce ?? "",
                                                   startsAt: record.startsAt, calendar: record.visibility.isPrivate ? nil : "/watch/\(record.id)/calendar.ics",
                                                   card: card, embedCode: record.visibility.isPrivate ? nil
                                                       : EmbedPage.code(id: record.id, title: record.title, publicURL: publicURL),
                                                   recording: await recordingNow(of: record.id),
                                                   chat: chat?(record, nil, context) ?? ""))
        }
        // The recording a live stream is making, for its page's DVR when the page was made before it began.
        routes.get("/watch/:id/recording") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                throw Problem.notFound("no stream \(id)")
            }
            if record.visibility.isPrivate, await pass(for: record, request, context) == nil {
                throw Problem(.forbidden, "this stream is private: ask its broadcaster for an invitation")
            }
            guard let now = await recordingNow(of: record.id) else {
                throw Problem.notFound("stream \(id) is not being recorded now")
            }
            return try Responses.json(now, cache: "no-store")
        }
        // A recording's page; its media are RecordingRoutes' (`/recordings/{id}/{file}`, the same
        // parameter name: the router takes one per position).
        routes.get("/recordings/:recording") { request, context -> Response in
            let id = try context.parameters.require("recording")
            guard id.utf8.count <= 100, let recordings, let summary = try await recordings.recording(id: id),
                  StreamIdentifiers.isWellFormed(Substring(summary.recording.streamID)),
                  let record = await catalog.find(id: summary.recording.streamID) else {
                return Responses.html(RecordingPage.notFound, status: .notFound)
            }
            let details = await recordingDetails?(id)
            if details?.deletedAt != nil { return Responses.html(RecordingPage.notFound, status: .notFound) }
            var model = RecordingPageModel(recording: summary, stream: record,
                                           channel: await channel(of: record).map { RecordingPageModel.Link(name: $0.name, url: $0.url) })
            if let details { model.apply(details, streamTitle: record.title) }
            // Who may watch: the recording's own visibility (its stream's tokens open it, and a
            // ticket for this recording alone a token scoped to it).
            var governing = record
            governing.visibility = model.visibility
            if model.visibility.isPrivate {
                // As the watch page: shown only to someone who may watch, with a token, never cached.
                guard let pass = await pass(recording: id, of: governing, request, context) else {
                    if model.visibility == .paid, let recordingPaywall {
                        return try await recordingPaywall(id, model.title, governing, request, context)
                    }
                    return Responses.html(WatchPage.privateStream(card: model.card(publicURL: publicURL)), status: .forbidden)
                }
                var page = Responses.html(RecordingPage.render(model, publicURL: publicURL, nonce: context.cspNonce ?? "",
                                                               token: pass.token, tokenExpiresIn: Self.expiresIn(pass),
                                                               chat: chatReplay?(record, model.startedAt, pass.token) ?? ""))
                page.headers[.cacheControl] = "no-store"
                return page
            }
            return Responses.html(RecordingPage.render(model, publicURL: publicURL, nonce: context.cspNonce ?? "",
                                                       chat: chatReplay?(record, model.startedAt, nil) ?? ""))
        }
        // The player alone, for other sites' frames: every answer here may be framed (a refusal
        // shows in the frame instead of a browser's error).
        routes.get("/embed/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                var r = Responses.html(EmbedPage.message("No such stream", "Check the code you were given."), status: .notFound)
                r.allowFraming()
                return r
            }
            let watchURL = WatchPage.url(id: record.id, publicURL: publicURL)
            if record.visibility.isPrivate {
                // Private playback (tokens for invitees and buyers) is not embeddable yet.
                var r = Responses.html(EmbedPage.message("This stream is private", "It cannot be played here: watch it on StreamTube.",
                                                         link: (watchURL, "Watch \(record.title) on StreamTube")), status: .forbidden)
                r.allowFraming()
                return r
            }
            if let redirect = redirect(request) { return redirect }
            var r = Responses.html(EmbedPage.render(id: record.id, title: record.title, watchURL: watchURL, nodes: nodes(),
                                                    nonce: context.cspNonce ?? "", startsAt: record.startsAt))
            r.allowFraming()
            return r
        }
        // oEmbed 1.0 for watch URLs (JSON only): 400, 404 and 501 as the spec has them.
        routes.get("/oembed") { request, _ -> Response in
            let q = request.uri.queryParameters
            let answer: OEmbed
            do {
                answer = try await OEmbed.answer(url: q.get("url"), format: q.get("format"), maxWidth: q.get("maxwidth"),
                                                 maxHeight: q.get("maxheight"), publicURL: publicURL, find: { await catalog.find(id: $0) },
                                                 author: { await channel(of: $0) })
            } catch let refusal as OEmbed.Refusal {
                switch refusal {
                case .badRequest(let why): throw Problem.badRequest(why)
                case .notFound: throw Problem.notFound("no such stream, or one that cannot be embedded")
                case .notImplemented(let why): throw Problem(.notImplemented, why)
                }
            }
            return try Responses.json(answer, cache: "public, max-age=300")
        }
        // The watch page's player renews its token here (same session), before it expires; a
        // recording's page names its recording (`?recording=`): a ticket for it alone renews
        // its recording-scoped token.
        routes.get("/watch/:id/token") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                throw Problem.notFound("no stream \(id)")
            }
            let pass: PlaybackPass?
            if let recording = request.uri.queryParameters.get("recording") {
                guard recording.utf8.count <= 100, let recordings, let summary = try await recordings.recording(id: recording),
                      summary.recording.streamID == record.id, await recordingDetails?(recording)?.deletedAt == nil else {
                    throw Problem.notFound("stream \(id) has no recording \(recording.prefix(100))")
                }
                var governing = record
                if let details = await recordingDetails?(recording) { governing.visibility = details.visibility(of: record) }
                pass = await self.pass(recording: recording, of: governing, request, context)
            } else {
                pass = await self.pass(for: record, request, context)
            }
            guard let pass else {
                throw Problem(.forbidden, "this stream is private: ask its broadcaster for an invitation")
            }
            return try Responses.json(TokenRenewal(token: pass.token, expiresAt: pass.expiresAt, expiresIn: Self.expiresIn(pass)), cache: "no-store")
        }
        routes.get("/assets/player.js") { request, _ -> Response in
            Self.asset(WatchPage.playerScript, type: "text/javascript; charset=utf-8", versioned: request.uri.queryParameters.get("v") == WatchPage.playerVersion)
        }
        routes.get("/assets/watch.js") { request, _ -> Response in
            Self.asset(WatchPage.pageScript, type: "text/javascript; charset=utf-8", versioned: request.uri.queryParameters.get("v") == WatchPage.pageVersion)
        }
        routes.get("/assets/site.js") { request, _ -> Response in
            Self.asset(Pages.script, type: "text/javascript; charset=utf-8", versioned: Pages.scriptPath.hasSuffix("=" + (request.uri.queryParameters.get("v") ?? "-")))
        }
        routes.get("/assets/site.css") { request, _ -> Response in
            Self.asset(Pages.stylesheet, type: "text/css; charset=utf-8", versioned: Pages.stylesheetPath.hasSuffix("=" + (request.uri.queryParameters.get("v") ?? "-")))
        }
        return routes
    }

    /// Public streams scheduled from an hour ago on, soonest first.
    static func upcoming(_ catalog: StreamCatalog, now: Date = Date()) -> [StreamRecord] {
        catalog.all.filter { r in r.visibility == .public && (r.startsAt.map { $0 > now.addingTimeInterval(-3600) } ?? false) }
            .sorted { $0.startsAt! < $1.startsAt! }
    }

    static func scheduled(_ r: StreamRecord) -> [String: Any] {
        let f = ISO8601DateFormatter()
        let zone = r.timeZone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_GB")
        local.timeZone = zone
        local.dateFormat = "EEE d MMM yyyy, HH:mm"
        return ["id": r.id, "title": r.title, "startsAt": r.startsAt.map(f.string) ?? "",
                "when": r.startsAt.map { local.string(from: $0) + " (" + zone.identifier + ")" } ?? ""]
            .merging(StreamPicture.values(r, live: false)) { a, _ in a }
    }

    static func ics(_ body: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/calendar; charset=utf-8", .cacheControl: "public, max-age=300"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func host(_ url: String) -> String { URL(string: url)?.host ?? "streamtube" }

    /// `GET /watch/{id}/token`: seconds from now as well, so a browser whose clock is off renews in time.
    struct TokenRenewal: Codable {
        var token: String
        var expiresAt: Date
        var expiresIn: Int
    }

    static func expiresIn(_ pass: PlaybackPass) -> Int { max(0, Int(pass.expiresAt.timeIntervalSinceNow)) }

    /// The channel a stream belongs to: its broadcaster's name and the absolute URL of the
    /// channel page; nil for the operator's streams (and without accounts).
    func channel(of record: StreamRecord) async -> (name: String, url: String)? {
        guard let service = renderer.service, let owner = record.owner, let account = try? await service.account(id: owner),
              let path = try? await service.channels.path(of: owner) else { return nil }
        return (account.displayName, publicURL + path)
    }

    /// The recording the stream is making now, as the database has it; nil when none (or no store).
    func recordingNow(of stream: String) async -> LiveRecording? {
        guard let recordings, let list = try? await recordings.recordings(stream: stream) else { return nil }
        return LiveRecording.current(of: list)
    }

    /// A playback token for whoever is signed in, if they may watch the stream.
    func pass(for record: StreamRecord, _ request: Request, _ context: NodeRequestContext) async -> PlaybackPass? {
        guard let playback else { return nil }
        if case .account(let caller)? = context.caller {
            return await playback.issue(for: record, to: .account(id: caller.accountID, isAdmin: caller.isAdmin), lifetime: nil)
        }
        guard let guest = InvitationPages.guestViewer(request) else { return nil }
        return await playback.issue(for: record, to: .guest(id: guest), lifetime: nil)
    }

    /// A playback token for a recording (its own visibility put in `record`): the stream's, or one
    /// scoped to the recording for a holder of a ticket for it alone.
    func pass(recording: String, of record: StreamRecord, _ request: Request, _ context: NodeRequestContext) async -> PlaybackPass? {
        guard let playback else { return nil }
        if case .account(let caller)? = context.caller {
            return await playback.issue(recording: recording, of: record, to: .account(id: caller.accountID, isAdmin: caller.isAdmin),
                                        lifetime: nil)
        }
        guard let guest = InvitationPages.guestViewer(request) else { return nil }
        return await playback.issue(recording: recording, of: record, to: .guest(id: guest), lifetime: nil)
    }

    /// A file of the repository's, built in; the version a page names is cached for good.
    static func asset(_ bytes: [UInt8], type: String, versioned: Bool) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: versioned ? Responses.immutable : "no-cache"],
                 body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
