// ThumbnailRoutes: `GET /thumbnails/{id}.jpg`, public. The picture kept here, or, on a node
// that is not the stream's origin, the origin's through the edge (one upstream request however
// many ask at once; not kept, since it changes every minute).
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore

package struct ThumbnailRoutes: Sendable {
    package let store: ThumbnailStore
    package let catalog: StreamCatalog
    package let edge: EdgeProxy?

    package init(store: ThumbnailStore, catalog: StreamCatalog, edge: EdgeProxy?) {
        self.store = store
        self.catalog = catalog
        self.edge = edge
    }

    /// How long a browser or cache may keep one: live pictures are taken about once a minute.
    package static let cacheControl = "public, max-age=60"

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/thumbnails/:file") { request, context in try await thumbnail(request, context) }
        return routes
    }

    private func thumbnail(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let file = try context.parameters.require("file")
        guard file.hasSuffix(".jpg") else { throw Problem.notFound("no such thumbnail") }
        let id = String(file.dropLast(4))
        // TODO(visibility): only public streams' pictures, once records say which are.
        guard StreamIdentifiers.isWellFormed(Substring(id)), await catalog.find(id: id) != nil else {
            throw Problem.notFound("no stream \(id)")
        }
        if let kept = store.current(id: id) {
            if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: {
                $0.trimmingCharacters(in: .whitespaces) == kept.etag || $0.trimmingCharacters(in: .whitespaces) == "*"
            }) {
                return Response(status: .notModified, headers: [.eTag: kept.etag, .cacheControl: Self.cacheControl])
            }
            return Response(status: .ok, headers: [.contentType: "image/jpeg", .cacheControl: Self.cacheControl, .eTag: kept.etag,
                                                   .accessControlAllowOrigin: "*"],
                            body: .init(byteBuffer: ByteBuffer(bytes: kept.bytes)))
        }
        // Pictures are taken on the origin; an edge asks it (never an edge asking us in turn).
        if let edge, !edge.router.ownsLocally(id), request.headers[.streamTubeEdge] == nil {
            let upstream = await edge.serve(streamID: id, path: "/thumbnails/\(id).jpg", query: nil, immutable: false)
            if upstream.status == .ok { return upstream }
        }
        throw Problem.notFound("stream \(id) has no thumbnail yet")
    }
}
