// WebRoutes: the pages a viewer opens, and the script and stylesheet they load.
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
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
    /// Makes the playback tokens of private streams' pages; nil: a private stream's page is
    /// shown to no one.
    let playback: (any PlaybackIssuer)?

    package init(catalog: StreamCatalog, renderer: PageRenderer, playback: (any PlaybackIssuer)? = nil,
                 redirect: @escaping @Sendable (Request) -> Response? = { _ in nil },
                 nodes: @escaping @Sendable () -> [String] = { [] }, live: @escaping @Sendable () -> [String] = { [] }) {
        self.catalog = catalog
        self.renderer = renderer
        self.playback = playback
        self.redirect = redirect
        self.nodes = nodes
        self.live = live
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/") { request, context -> Response in
            let streams = live().compactMap { id in catalog.record(id: id) }.sorted { $0.title < $1.title }
                .map { ["id": $0.id, "title": $0.title] }
            return try await renderer.render("home", ["streams": streams, "anyLive": !streams.isEmpty], request, context)
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
                guard let pass = await pass(for: record, context) else {
                    return Responses.html(WatchPage.privateStream, status: .forbidden)
                }
                var page = Responses.html(WatchPage.render(id: record.id, title: record.title, nodes: nodes(), nonce: context.cspNonce ?? "",
                                                           token: pass.token, tokenExpiresIn: Self.expiresIn(pass)))
                page.headers[.cacheControl] = "no-store"
                return page
            }
            if let redirect = redirect(request) { return redirect }
            return Responses.html(WatchPage.render(id: record.id, title: record.title, nodes: nodes(), nonce: context.cspNonce ?? ""))
        }
        // The watch page's player renews its token here (same session), before it expires.
        routes.get("/watch/:id/token") { _, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                throw Problem.notFound("no stream \(id)")
            }
            guard let pass = await pass(for: record, context) else {
                throw Problem(.forbidden, "this stream is private: ask its broadcaster for an invitation")
            }
            return try Responses.json(TokenRenewal(token: pass.token, expiresAt: pass.expiresAt, expiresIn: Self.expiresIn(pass)), cache: "no-store")
        }
        routes.get("/assets/player.js") { request, _ -> Response in
            Self.asset(WatchPage.playerScript, type: "text/javascript; charset=utf-8", versioned: request.uri.queryParameters.get("v") == WatchPage.playerVersion)
        }
        routes.get("/assets/site.js") { request, _ -> Response in
            Self.asset(Pages.script, type: "text/javascript; charset=utf-8", versioned: Pages.scriptPath.hasSuffix("=" + (request.uri.queryParameters.get("v") ?? "-")))
        }
        routes.get("/assets/site.css") { request, _ -> Response in
            Self.asset(Pages.stylesheet, type: "text/css; charset=utf-8", versioned: Pages.stylesheetPath.hasSuffix("=" + (request.uri.queryParameters.get("v") ?? "-")))
        }
        return routes
    }

    /// `GET /watch/{id}/token`: seconds from now as well, so a browser whose clock is off renews in time.
    struct TokenRenewal: Codable {
        var token: String
        var expiresAt: Date
        var expiresIn: Int
    }

    static func expiresIn(_ pass: PlaybackPass) -> Int { max(0, Int(pass.expiresAt.timeIntervalSinceNow)) }

    /// A playback token for whoever is signed in, if they may watch the stream.
    func pass(for record: StreamRecord, _ context: NodeRequestContext) async -> PlaybackPass? {
        guard let playback, case .account(let caller)? = context.caller else { return nil }
        return await playback.issue(for: record, to: .account(id: caller.accountID, isAdmin: caller.isAdmin), lifetime: nil)
    }

    /// A file of the repository's, built in; the version a page names is cached for good.
    static func asset(_ bytes: [UInt8], type: String, versioned: Bool) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: versioned ? Responses.immutable : "no-cache"],
                 body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
