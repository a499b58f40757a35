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
        let token = tokens.token(scope: scope)
        return await withTaskGroup(of: StreamRecord?.self) { group in
            for peer in peers {
                group.addTask {
                    var request = HTTPClientRequest(url: "http://\(peer.metadata.httpAddress)\(path)?\(parameter)")
                    request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName, value: token)
                    guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
                          let body = try? await response.body.collect(upTo: 1 << 16) else { return nil }
                    return try? decoder.decode(StreamRecord.self, from: Data(buffer: body))
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
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, scope: { _, _ in scope }))
        routes.get(RouterPath(path)) { request, _ -> Response in
            let q = request.uri.queryParameters
            let record = q.get("id").flatMap { catalog.record(id: $0) } ?? q.get("key").flatMap { catalog.record(key: $0) }
            guard let record else { throw Problem.notFound("no such stream here") }
            let data = try encoder.encode(record)
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

/// Lets through a request carrying a cluster token for the scope the route needs (from the
/// request and its parameters: a stream id, say); marks the caller as a node.
package struct ClusterTokenMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    let tokens: ClusterTokens
    let scope: @Sendable (Request, Context) throws -> String

    package init(tokens: ClusterTokens, scope: @escaping @Sendable (Request, Context) throws -> String) {
        self.tokens = tokens
        self.scope = scope
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let wanted = try scope(request, context)
        guard let token = request.headers[.streamTubeClusterToken], tokens.verify(token) == wanted else {
            throw Problem(.unauthorized, "missing or wrong cluster token")
        }
        var context = context
        context.caller = .node(purpose: wanted)
        return try await next(request, context)
    }
}
