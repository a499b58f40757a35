// WebRoutes: the pages a viewer opens, and the script and stylesheet they load.
import Catalog
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
    /// Whether this node has a thumbnail of a stream: pages name an image only when it exists.
    let hasThumbnail: @Sendable (String) -> Bool
    let renderer: PageRenderer

    package init(catalog: StreamCatalog, renderer: PageRenderer, redirect: @escaping @Sendable (Request) -> Response? = { _ in nil },
                 nodes: @escaping @Sendable () -> [String] = { [] }, live: @escaping @Sendable () -> [String] = { [] },
                 hasThumbnail: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.catalog = catalog
        self.renderer = renderer
        self.redirect = redirect
        self.nodes = nodes
        self.live = live
        self.hasThumbnail = hasThumbnail
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/") { request, context -> Response in
            let streams = live().compactMap { id in catalog.record(id: id) }.sorted { $0.title < $1.title }
                .map { r -> [String: Any] in ["id": r.id, "title": r.title, "thumbnail": hasThumbnail(r.id)] }
            return try await renderer.render("home", ["streams": streams, "anyLive": !streams.isEmpty], request, context)
        }
        routes.get("/watch/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                return Responses.html(WatchPage.notFound, status: .notFound)
            }
            if let redirect = redirect(request) { return redirect }
            return Responses.html(WatchPage.render(id: record.id, title: record.title, nodes: nodes(), nonce: context.cspNonce ?? ""))
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

    /// A file of the repository's, built in; the version a page names is cached for good.
    static func asset(_ bytes: [UInt8], type: String, versioned: Bool) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: versioned ? Responses.immutable : "no-cache"],
                 body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
