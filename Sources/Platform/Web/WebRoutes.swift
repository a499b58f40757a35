// WebRoutes: the pages a viewer opens.
import Catalog
import HTTPSupport
import Hummingbird

package struct WebRoutes: Sendable {
    let catalog: StreamCatalog
    /// Sends the viewer to another node (the nearest healthy edge), or nil to answer here.
    let redirect: @Sendable (Request) -> Response?

    package init(catalog: StreamCatalog, redirect: @escaping @Sendable (Request) -> Response? = { _ in nil }) {
        self.catalog = catalog
        self.redirect = redirect
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/watch/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                return Responses.html(WatchPage.notFound, status: .notFound)
            }
            if let redirect = redirect(request) { return redirect }
            return Responses.html(WatchPage.render(id: record.id, title: record.title))
        }
        return routes
    }
}
