// WebRoutes: the pages a viewer opens, and the script they run.
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
    let pages: Pages

    package init(catalog: StreamCatalog, redirect: @escaping @Sendable (Request) -> Response? = { _ in nil },
                 nodes: @escaping @Sendable () -> [String] = { [] }, live: @escaping @Sendable () -> [String] = { [] }) throws {
        self.catalog = catalog
        self.redirect = redirect
        self.nodes = nodes
        self.live = live
        self.pages = try Pages()
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/") { _, _ -> Response in
            let streams = live().compactMap { id in catalog.record(id: id).map { HomeView.Stream(id: $0.id, title: $0.title) } }
            return Responses.html(pages.render(HomeView(streams: streams.sorted { $0.title < $1.title }), "home"))
        }
        routes.get("/watch/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                return Responses.html(WatchPage.notFound, status: .notFound)
            }
            if let redirect = redirect(request) { return redirect }
            return Responses.html(WatchPage.render(id: record.id, title: record.title, nodes: nodes()))
        }
        routes.get("/assets/player.js") { request, _ -> Response in
            // The page names the version it wants; that one is cached for good.
            let versioned = request.uri.queryParameters.get("v") == WatchPage.playerVersion
            return Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8",
                                                   .cacheControl: versioned ? Responses.immutable : "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(bytes: WatchPage.playerScript)))
        }
        return routes
    }
}
