// PeerRecords: stream records across nodes that each keep their own database. A node asked
// for a stream it does not know (a broadcaster's key, a viewer's stream id) asks the other
// alive members, over HTTP with a cluster token, and keeps what it learns. The same file
// answers such a question (`routes`).
import AsyncHTTPClient
import Catalog
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import NIOCore

package enum PeerRecords {
    package static let path = "/internal/streams"
    /// What the cluster token is good for (relay and replica tokens name a stream instead).
    package static let scope = "records"

    /// Asks every other alive member at once; the first that knows the record answers.
    package static func lookup(_ query: StreamCatalog.Query, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                               localID: String) async -> StreamRecord? {
        let peers = router.view.snapshot.members.filter { $0.id.rawValue != localID && $0.status == .alive }
        guard !peers.isEmpty else { return nil }
        let parameter: String
        switch query {
        case .id(let id): parameter = "id=\(id)"
        case .key(let key): parameter = "key=\(key)"
        }
        return await withTaskGroup(of: StreamRecord?.self) { group in
            for peer in peers {
                group.addTask {
                    let target = "\(path)?\(parameter)"
                    var request = HTTPClientRequest(url: router.transport.baseURL(for: peer) + target)
                    request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                                        value: tokens.token(for: ClusterRequest(.records, "GET", target), scope: scope))
                    guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
                          let body = try? await response.body.collect(upTo: 1 << 16),
                          let peer = try? decoder.decode(PeerRecord.self, from: Data(buffer: body)) else { return nil }
                    return peer.record(for: query)
                }
            }
            for await record in group where record != nil {
                group.cancelAll()
                return record
            }
            return nil
        }
    }

    /// `GET /internal/streams?id=|key=`: this node's own record, for a node holding a token
    /// for `records`.
    package static func routes(catalog: StreamCatalog, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.get(RouterPath(path)) { request, _ -> Response in
            let q = request.uri.queryParameters
            let record = q.get("id").flatMap { catalog.record(id: $0) } ?? q.get("key").flatMap { catalog.record(key: $0) }
            guard let record else { throw Problem.notFound("no such stream here") }
            let data = try encoder.encode(PeerRecord(record))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return routes
    }

    package static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()

    package static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()
}

/// A stream record as one node tells another: the key's digest, never the key.
package struct PeerRecord: Codable, Equatable, Sendable {
    package var id: String
    package var keyDigest: String
    package var title: String
    package var createdAt: Date
    package var ladder: String?
    package var x264Preset: String?

    init(_ r: StreamRecord) {
        (id, keyDigest, title, createdAt, ladder, x264Preset) = (r.id, r.keyDigest, r.title, r.createdAt, r.ladder, r.x264Preset)
    }

    /// The record this answer gives for `query`: with the key when the asker presented it (and
    /// it matches), nil when the answer is not for the question.
    package func record(for query: StreamCatalog.Query) -> StreamRecord? {
        switch query {
        case .id(let asked):
            guard asked == id else { return nil }
            return StreamRecord(id: id, key: nil, keyDigest: keyDigest, title: title, createdAt: createdAt, ladder: ladder, x264Preset: x264Preset)
        case .key(let key):
            guard StreamIdentifiers.digest(key) == keyDigest else { return nil }
            return StreamRecord(id: id, key: key, title: title, createdAt: createdAt, ladder: ladder, x264Preset: x264Preset)
        }
    }
}

/// Lets through a request carrying a cluster token made for it (purpose, method, path and
/// query); marks the caller as that node. A token is checked before anything of the body is
/// read; the route checks the body against the digest the token carries.
package struct ClusterTokenMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    let tokens: ClusterTokens
    let purpose: ClusterPurpose

    package init(tokens: ClusterTokens, purpose: ClusterPurpose) {
        self.tokens = tokens
        self.purpose = purpose
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = request.headers[.streamTubeClusterToken] else { throw Problem(.unauthorized, "missing cluster token") }
        let grant: ClusterGrant
        do throws(ClusterTokenError) {
            grant = try tokens.verify(token, for: ClusterRequest(purpose, request.method.rawValue, request.uri.description))
        } catch {
            context.logger.warning("cluster token refused", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            throw Problem(.unauthorized, error.description)
        }
        var context = context
        context.caller = .node(id: grant.from, purpose: purpose.rawValue, scope: grant.scope, bodyDigest: grant.bodyDigest)
        return try await next(request, context)
    }
}
