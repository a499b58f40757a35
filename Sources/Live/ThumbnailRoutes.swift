// ThumbnailRoutes: `GET /thumbnails/{id}.jpg`, public. The stream's uploaded picture when its
// record names one (kept with the record: from memory, the database, or the stream's holders;
// the same bytes and ETag on every node), else the picture of the live stream taken here, else,
// on a node that is not the stream's origin, the origin's through the edge (one upstream request
// however many ask at once; not kept, since it changes every minute). `?v={version}` names an
// uploaded picture: while it is the one shown, the answer may be kept for good. A node whose
// record may be stale (its own database, and not one of the stream's holders, which hear of every
// change) does not trust the version it has: it asks the origin, which does. A private stream's
// picture is a frame of it: it needs a playback token like its media (`?token=`), is asked of the
// origin with it, and is kept by no shared cache.
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore

package struct ThumbnailRoutes: Sendable {
    package let store: ThumbnailStore
    package let catalog: StreamCatalog
    package let edge: EdgeProxy?
    /// Whether this node's record of a stream is kept up to date (a shared database, or a holder of it).
    package let recordIsCurrent: @Sendable (String) -> Bool
    package let playback: any PlaybackPolicy

    package init(store: ThumbnailStore, catalog: StreamCatalog, edge: EdgeProxy?, playback: any PlaybackPolicy = PublicPlayback(),
                 recordIsCurrent: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.playback = playback
        self.store = store
        self.catalog = catalog
        self.edge = edge
        self.recordIsCurrent = recordIsCurrent
    }

    /// How long a browser or cache may keep one: live pictures are taken about once a minute,
    /// and an upload replaces the picture at the unversioned URL.
    package static let cacheControl = "public, max-age=60"
    /// A versioned URL's answer, while that version is the one shown: it never changes.
    package static let versionedCacheControl = "public, max-age=31536000, immutable"

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/thumbnails/:file") { request, context in try await thumbnail(request, context) }
        return routes
    }

    private func thumbnail(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let file = try context.parameters.require("file")
        guard file.hasSuffix(".jpg") else { throw Problem.notFound("no such thumbnail") }
        let id = String(file.dropLast(4))
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
            throw Problem.notFound("no stream \(id)")
        }
        let access = try LiveRoutes.authorize(request, record, playback: playback)
        var answer = try await picture(of: record, request, token: access.token)
        if record.visibility.isPrivate { answer.headers[.cacheControl] = "private, max-age=60" }
        return answer
    }

    private func picture(of record: StreamRecord, _ request: Request, token: Substring?) async throws -> Response {
        let id = record.id
        // An uploaded picture wins over the live ones, on every node.
        let current = recordIsCurrent(id)
        if current, let uploaded = await catalog.uploadedThumbnail(of: record) { return Self.answer(uploaded, request) }
        if let kept = store.current(id: id) { return Self.answer(kept.bytes, etag: kept.etag, cache: Self.cacheControl, request) }
        // Pictures are taken on the origin; an edge asks it (never an edge asking us in turn).
        var originHasNone = false
        if let edge, !edge.router.ownsLocally(id), request.headers[.streamTubeEdge] == nil {
            // A version asked for goes along: the origin, which knows, says whether it is the one shown.
            let version = request.uri.queryParameters.get("v").flatMap { v -> String? in StreamCatalog.isThumbnailVersion(v) ? "v=\(v)" : nil }
            let upstream = await edge.serve(streamID: id, path: "/thumbnails/\(id).jpg", query: version, immutable: false,
                                            token: record.visibility.isPrivate ? token : nil)
            if upstream.status == .ok {
                if let etag = upstream.headers[.eTag], Self.matches(request, etag) {
                    return Response(status: .notModified, headers: [.eTag: etag, .cacheControl: upstream.headers[.cacheControl] ?? Self.cacheControl])
                }
                return upstream
            }
            originHasNone = upstream.status == .notFound
        }
        // The origin could not be asked: what this node knows (an origin saying "none" is believed).
        if !current, !originHasNone, let uploaded = await catalog.uploadedThumbnail(of: record) { return Self.answer(uploaded, request) }
        throw Problem.notFound("stream \(id) has no thumbnail yet")
    }

    /// Whether the client's copy is the one `etag` names.
    static func matches(_ request: Request, _ etag: String) -> Bool {
        guard let match = request.headers[.ifNoneMatch] else { return false }
        return match.split(separator: ",").contains {
            let tag = $0.trimmingCharacters(in: .whitespaces)
            return tag == etag || tag == "*"
        }
    }

    /// An uploaded picture: the same ETag on every node; kept for good at its versioned URL.
    static func answer(_ uploaded: StreamCatalog.Thumbnail, _ request: Request) -> Response {
        let versioned = request.uri.queryParameters.get("v") == uploaded.version
        return answer(uploaded.jpeg, etag: "\"u-\(uploaded.version)\"", cache: versioned ? versionedCacheControl : cacheControl, request)
    }

    /// The picture, or 304 when the client's copy is this one.
    static func answer(_ bytes: [UInt8], etag: String, cache: String, _ request: Request) -> Response {
        if matches(request, etag) { return Response(status: .notModified, headers: [.eTag: etag, .cacheControl: cache]) }
        return Response(status: .ok, headers: [.contentType: "image/jpeg", .cacheControl: cache, .eTag: etag, .accessControlAllowOrigin: "*"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
