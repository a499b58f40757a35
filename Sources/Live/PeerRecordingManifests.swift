// PeerRecordingManifests: a recording's manifest (its segments and their durations) asked of a
// node holding a copy, for a node that holds none and must know where the keyframes are (a trim
// asked through it). `GET /internal/recordings/{id}/manifest` with a cluster token for `records`;
// answered from the holder's copy as it is, untrimmed.
import AsyncHTTPClient
import Cluster
import Foundation
import HTTPSupport
import HTTPTypes
import Hummingbird
import NIOCore
import Origin

package enum PeerRecordingManifests {
    static func path(_ id: String) -> String { "/internal/recordings/\(id)/manifest" }
    static let maxBody = 8 << 20

    package static func routes(recorder: Recorder?, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.get("/internal/recordings/:recording/manifest") { _, context -> Response in
            let id = try context.parameters.require("recording")
            guard let manifest = recorder?.manifest(id: id) else { throw Problem.notFound("no copy of \(id.prefix(100)) here") }
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: try PeerRecords.encoder.encode(manifest))))
        }
        return routes
    }

    /// The manifest of recording `id` from the first of `holders` (node ids) that answers.
    package static func fetch(id: String, holders: [String], router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                              localID: String) async -> RecordingManifest? {
        let members = router.view.snapshot.members
        for holder in holders where holder != localID {
            guard let member = members.first(where: { $0.id.rawValue == holder && $0.status == .alive }) else { continue }
            let target = path(id)
            var request = HTTPClientRequest(url: router.transport.baseURL(for: member) + target)
            request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                                value: tokens.token(for: ClusterRequest(.records, "GET", target), scope: PeerRecords.scope))
            guard let response = try? await client.execute(request, timeout: .seconds(5)), response.status == .ok,
                  let body = try? await response.body.collect(upTo: maxBody),
                  let manifest = try? PeerRecords.decoder.decode(RecordingManifest.self, from: Data(buffer: body)), manifest.id == id else {
                continue
            }
            return manifest
        }
        return nil
    }
}
