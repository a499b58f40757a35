// PeerRecordingDetails: what people set on a recording, told to every other alive node when it
// changes (`POST /internal/recordings/details`, a cluster token for `records` covering the body),
// for clusters whose nodes each keep their own database: every node then checks a recording's
// own visibility and trim as the node that took the change does. A node sharing the database
// has the change already and keeps its own (the same, or newer). An uploaded picture's bytes are
// not sent: each node keeps the picture it has.
import AsyncHTTPClient
import Catalog
import Cluster
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Origin

package enum PeerRecordingDetails {
    package static let path = "/internal/recordings/details"
    static let maxBatch = 100

    package static func routes(catalog: RecordingCatalog, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.post(RouterPath(path)) { request, context -> Response in
            let body = try await PeerRecords.signedBody(request, context)
            let told: [RecordingDetails]
            do { told = try PeerRecords.decoder.decode([RecordingDetails].self, from: Data(buffer: body)) } catch {
                throw Problem.badRequest("not a list of recordings' details: \(error)")
            }
            guard told.count <= maxBatch else { throw Problem.badRequest("at most \(maxBatch) recordings at once") }
            for d in told where !isWellFormed(d) { throw Problem.badRequest("malformed details of recording \(d.id.prefix(100))") }
            for var d in told {
                let known = try await catalog.store.details(id: d.id)
                // A tombstone stands; of two changes, the later one.
                if let known, known.deletedAt != nil || known.updatedAt >= d.updatedAt { continue }
                d.thumbnail = known?.thumbnail
                if try await catalog.store.save(d) { catalog.forget(d.id) }
            }
            return Response(status: .noContent)
        }
        return routes
    }

    static func isWellFormed(_ d: RecordingDetails) -> Bool {
        guard let parts = RecordingManifest.parse(id: d.id), parts.stream == d.streamID, StreamIdentifiers.isWellFormed(Substring(d.streamID)),
              d.deletedAt == nil, (try? RecordingDetails.checked(description: d.description)) != nil else { return false }
        if let title = d.title, (try? RecordingDetails.checked(title: title)) == nil { return false }
        return true
    }

    /// Tells every other alive member (a few at a time); a node away keeps what it had.
    package static func tell(_ details: RecordingDetails, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                             localID: String, logger: Logger) async {
        guard let body = try? PeerRecords.encoder.encode([details]) else { return }
        let failed = await tellAll(body, path: path, router: router, client: client, tokens: tokens, localID: localID)
        if failed > 0 {
            logger.warning("recording details not told to every node", metadata: ["recording": "\(details.id)", "failed": "\(failed)"])
        }
    }

    /// POSTs `body` to `path` at every other alive member, 16 at a time; how many did not take it.
    static func tellAll(_ body: Data, path: String, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                        localID: String) async -> Int {
        let members = router.view.snapshot.members.filter { $0.id.rawValue != localID && $0.status == .alive }
        var failed = 0
        for start in stride(from: 0, to: members.count, by: 16) {
            await withTaskGroup(of: Bool.self) { group in
                for member in members[start..<min(start + 16, members.count)] {
                    group.addTask { await post(body, to: path, at: member, router: router, client: client, tokens: tokens) }
                }
                for await ok in group where !ok { failed += 1 }
            }
        }
        return failed
    }

    /// A signed POST of `body` to another node's `target`; true on 204.
    static func post(_ body: Data, to target: String, at member: Member, router: ClusterRouter, client: HTTPClient,
                     tokens: ClusterTokens) async -> Bool {
        var request = HTTPClientRequest(url: router.transport.baseURL(for: member) + target)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                            value: tokens.token(for: ClusterRequest(.records, "POST", target), scope: PeerRecords.scope, body: Array(body)))
        request.body = .bytes(ByteBuffer(bytes: body))
        guard let response = try? await client.execute(request, timeout: .seconds(10)) else { return false }
        return response.status == .noContent
    }
}
