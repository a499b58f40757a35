// PeerThumbnails: uploaded pictures across nodes that each keep their own database. A record
// names its uploaded picture by version (`StreamRecord.thumbnail`, a digest of the JPEG); the
// bytes follow the record to the stream's holders (owner and standbys): `RecordPlacement` sends
// them right after the record, to the same nodes. A node whose record names a picture it does
// not have asks those holders, like a record lookup, and keeps what it gets. Bytes are checked
// against the version on both sides, so no node can be handed another picture under a version.
// Nodes sharing one database never use this: the picture is in the database they share.
import AsyncHTTPClient
import Catalog
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import NIOCore

package enum PeerThumbnails {
    package static let path = "/internal/thumbnails"
    /// The largest picture sent: ours are JPEGs within 640x360, far smaller.
    package static let maxBody = 1 << 20

    static func target(_ id: String, _ version: String) -> String { "\(path)/\(id)?v=\(version)" }

    /// Asks the holders of stream `id` (owner, standbys) for the picture of `version`, all at
    /// once; the first answer whose bytes are that version wins.
    package static func lookup(id: String, version: String, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                               localID: String) async -> [UInt8]? {
        let peers = PeerRecords.targets(.id(id), view: router.view.snapshot, localID: localID)
        guard !peers.isEmpty else { return nil }
        let target = target(id, version)
        return await withTaskGroup(of: [UInt8]?.self) { group in
            for peer in peers {
                group.addTask {
                    guard let body = await PeerRecords.get(target, at: peer, router: router, client: client, tokens: tokens,
                                                           upTo: maxBody) else { return nil }
                    let jpeg = Array(buffer: body)
                    return StreamCatalog.thumbnailVersion(jpeg) == version ? jpeg : nil
                }
            }
            for await jpeg in group where jpeg != nil {
                group.cancelAll()
                return jpeg
            }
            return nil
        }
    }

    /// Sends the picture a placed record names to `member`; true when it kept it.
    @discardableResult
    package static func place(id: String, picture: StreamCatalog.Thumbnail, at member: Member, transport: ClusterTransport,
                              client: HTTPClient, tokens: ClusterTokens) async -> Bool {
        let target = target(id, picture.version)
        var request = HTTPClientRequest(url: transport.baseURL(for: member) + target)
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "image/jpeg")
        request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                            value: tokens.token(for: ClusterRequest(.records, "PUT", target), scope: PeerRecords.scope, body: picture.jpeg))
        request.body = .bytes(ByteBuffer(bytes: picture.jpeg))
        guard let response = try? await client.execute(request, timeout: .seconds(10)) else { return false }
        return response.status == .noContent
    }

    /// `GET /internal/thumbnails/{id}?v=`: the picture of that version kept here;
    /// `PUT` the same: a picture placed here with its record. Both for a node holding a token for `records`.
    package static func routes(catalog: StreamCatalog, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.get(RouterPath(path + "/:id")) { request, context -> Response in
            let (id, version) = try named(request, context)
            guard let record = catalog.record(id: id), record.thumbnail == version,
                  let picture = await catalog.uploadedThumbnail(of: record) else {
                throw Problem.notFound("no such picture here")
            }
            return Response(status: .ok, headers: [.contentType: "image/jpeg", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: picture.jpeg)))
        }
        routes.put(RouterPath(path + "/:id")) { request, context -> Response in
            guard case .node(_, _, _, let digest?) = context.caller else { throw Problem(.unauthorized, "the cluster token names no body") }
            let (id, version) = try named(request, context)
            let body = try await request.body.collect(upTo: maxBody)
            guard ClusterTokens.digest(body.readableBytesView) == digest else {
                throw Problem(.unauthorized, ClusterTokenError.wrongBody.description)
            }
            guard await catalog.keepThumbnail(id: id, version: version, jpeg: Array(buffer: body)) else {
                throw Problem.badRequest("not the picture of version \(version) of a stream known here")
            }
            return Response(status: .noContent)
        }
        return routes
    }

    private static func named(_ request: Request, _ context: NodeRequestContext) throws -> (String, String) {
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)), let version = request.uri.queryParameters.get("v"),
              StreamCatalog.isThumbnailVersion(version) else { throw Problem.badRequest("name a stream and a picture version (?v=)") }
        return (id, version)
    }
}
