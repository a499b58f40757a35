// ReplicaRoutes: a stream's origin replicating to this node, its standby
// (`POST /internal/replica/{id}`, with a cluster token for that stream).
import Catalog
import Cluster
import HTTPSupport
import Hummingbird
import Origin

package enum ReplicaRoutes {
    /// A snapshot of a whole ladder's window fits.
    package static let maxBody = 256 << 20

    package static func collection(streams: LiveStreams, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens) { _, context in try context.parameters.require("id") })
        routes.post("\(Replicator.path):id") { request, context -> Response in
            let record = try await LiveRoutes.stream(context, in: streams.catalog)
            guard let live = streams.live(id: record.id) else { throw Problem.notFound("no stream \(record.id)") }
            let body = try await request.body.collect(upTo: maxBody)
            do throws(ReplicaError) {
                for batch in try Replicator.decodeBundle(body) { try live.applyReplica(batch) }
            } catch {
                switch error {
                case .malformed: throw Problem.badRequest("\(error)")
                case .outOfSequence, .publishingHere: throw Problem(.conflict, "\(error)")
                }
            }
            return Response(status: .noContent)
        }
        return routes
    }
}
