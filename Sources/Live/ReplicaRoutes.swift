// ReplicaRoutes: a stream's origin replicating to this node, its standby
// (`POST /internal/replica/{id}`, with a cluster token made for that request and body).
import Catalog
import Cluster
import Gossip
import HTTPSupport
import Hummingbird
import Origin

package enum ReplicaRoutes {
    /// A snapshot of a whole ladder's window fits.
    package static let maxBody = 256 << 20

    package static func collection(streams: LiveStreams, tokens: ClusterTokens, router: ClusterRouter) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .replica))
        routes.post("\(Replicator.path):id") { request, context -> Response in
            guard case .node(let from, _, let scope, let digest) = context.caller else { throw Problem(.unauthorized, "missing cluster token") }
            let record = try await LiveRoutes.stream(context, in: streams.catalog)
            guard scope == record.id, let digest else { throw Problem(.unauthorized, "the cluster token is for another stream") }
            guard mayReplicate(from: from, stream: record.id, view: router.view.snapshot) else {
                throw Problem(.forbidden, "node \(from) is not the origin of stream \(record.id)")
            }
            guard let live = streams.live(id: record.id) else { throw Problem.notFound("no stream \(record.id)") }
            let body = try await request.body.collect(upTo: maxBody)
            guard ClusterTokens.digest(body.readableBytesView) == digest else {
                throw Problem(.unauthorized, ClusterTokenError.wrongBody.description)
            }
            do throws(ReplicaError) {
                for batch in try Replicator.decodeBundle(body) { try live.applyReplica(batch) }
            } catch {
                switch error {
                case .malformed: throw Problem.badRequest("\(error)")
                case .outOfSequence, .publishingHere, .staleSnapshot: throw Problem(.conflict, "\(error)")
                }
            }
            return Response(status: .noContent)
        }
        return routes
    }

    /// A replica comes from the stream's origin by the ring — or from a node that has just left
    /// or died, which was the origin until then (the last batches of a handover) — or, when the
    /// ring names this node the owner, from the node still publishing the stream, which hands it
    /// over here (a node joined, a partition healed; `OwnershipHandover`).
    static func mayReplicate(from: String, stream: String, view: ClusterView.Snapshot) -> Bool {
        guard let sender = view.members.first(where: { $0.id.rawValue == from }) else { return false }
        if sender.status.isDeadOrLeft { return true }
        let owner = view.ring.placement(for: stream)?.owner
        return owner == sender.id || owner == view.localID
    }
}
