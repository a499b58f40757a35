// PeerRecordings: a stream's recordings across nodes that each keep their own database. Each
// node reports its own copies to its own database (`RecordingStore`), so the nodes holding the
// stream (its owner and standbys, which hold its recordings' copies) each know only theirs. A
// listing asks those holders for the copies their databases know, all at once, and merges them
// with its own by recording id. Nodes sharing a database get the same rows back: merged once.
import AsyncHTTPClient
import Catalog
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import NIOCore

package enum PeerRecordings {
    package static let path = "/internal/stream-recordings"
    /// The largest answer read: thousands of copies.
    static let maxBody = 4 << 20

    /// One copy as one node tells another.
    struct WireCopy: Codable {
        var id: String
        var nodeID: String
        var streamID: String
        var state: String
        var reason: String?
        var startedAt: Date
        var endedAt: Date?
        var durationSeconds: Double
        var bytes: Int
        var renditions: [String]
        var updatedAt: Date?

        init(_ c: RecordingCopy) {
            (id, nodeID, streamID, state, reason, startedAt, endedAt) = (c.id, c.nodeID, c.streamID, c.state, c.reason, c.startedAt, c.endedAt)
            (durationSeconds, bytes, renditions, updatedAt) = (c.durationSeconds, c.bytes, c.renditions, c.updatedAt)
        }

        var copy: RecordingCopy {
            RecordingCopy(id: id, nodeID: nodeID, streamID: streamID, state: state, reason: reason, startedAt: startedAt, endedAt: endedAt,
                          durationSeconds: durationSeconds, bytes: bytes, renditions: renditions, updatedAt: updatedAt)
        }
    }

    /// The copies of stream `id`'s recordings the holders' databases know (none from a holder
    /// that does not answer within a few seconds).
    package static func lookup(stream id: String, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                               localID: String) async -> [RecordingCopy] {
        let peers = PeerRecords.targets(.id(id), view: router.view.snapshot, localID: localID)
        let target = "\(path)/\(id)"
        return await withTaskGroup(of: [RecordingCopy].self) { group in
            for peer in peers {
                group.addTask {
                    guard let body = await PeerRecords.get(target, at: peer, router: router, client: client, tokens: tokens,
                                                           upTo: maxBody) else { return [] }
                    let decoder = JSONDecoder()
                    decoder.dateDecodingStrategy = .secondsSince1970
                    let copies = (try? decoder.decode([WireCopy].self, from: Data(Array(buffer: body)))) ?? []
                    // Only what was asked for.
                    return copies.map(\.copy).filter { $0.streamID == id && $0.id.hasPrefix(id + "-") }
                }
            }
            var out: [RecordingCopy] = []
            for await copies in group { out += copies }
            return out
        }
    }

    /// Copies from several databases as one list: each (recording, node) once, the latest report of it.
    package static func merged(_ lists: [RecordingCopy]...) -> [RecordingCopy] {
        var best: [String: RecordingCopy] = [:]
        for c in lists.joined() {
            let key = c.id + "\n" + c.nodeID
            if let known = best[key], (known.updatedAt ?? .distantPast) >= (c.updatedAt ?? .distantPast) { continue }
            best[key] = c
        }
        return best.values.sorted { ($0.startedAt, $0.id, $0.nodeID) < ($1.startedAt, $1.id, $1.nodeID) }
    }

    /// `GET /internal/stream-recordings/{stream}`: the copies of the stream's recordings this node's
    /// database knows, for a node holding a token for `records`.
    package static func routes(store: RecordingStore, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.get(RouterPath(path + "/:id")) { _, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)) else { throw Problem.badRequest("name a stream") }
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .secondsSince1970
            let body = try encoder.encode(try await store.copies(stream: id).map(WireCopy.init))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        return routes
    }
}

extension PeerRecords {
    /// `GET target` of `peer` with a cluster token for `records`: its body when it answered 200
    /// within a few seconds (at most `limit` bytes), else nil.
    package static func get(_ target: String, at peer: Member, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                            upTo limit: Int) async -> ByteBuffer? {
        var request = HTTPClientRequest(url: router.transport.baseURL(for: peer) + target)
        request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                            value: tokens.token(for: ClusterRequest(.records, "GET", target), scope: scope))
        guard let response = try? await client.execute(request, timeout: .seconds(3)), response.status == .ok else { return nil }
        return try? await response.body.collect(upTo: limit)
    }
}
