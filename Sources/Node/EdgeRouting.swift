// Edge routing: which node owns a stream (the ring), which node a viewer should use (the
// nearest healthy edge), and the edge's fetch from the origin — one upstream request per
// object however many viewers ask, immutable media kept in the edge store.
import AsyncHTTPClient
import Edge
import Foundation
import Gossip
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Origin
import Synchronization

/// Stream placement and viewer routing over the cluster view.
struct ClusterRouter: Sendable {
    let view: ClusterView
    let region: String

    /// Owner and standbys of a stream; nil when the ring is empty (a node on its own).
    func placement(of streamID: String) -> (owner: Member, standbys: [Member])? {
        let snap = view.snapshot
        guard let p = snap.ring.placement(for: streamID),
              let owner = snap.members.first(where: { $0.id == p.owner }) else { return nil }
        let standbys = p.standbys.compactMap { id in snap.members.first { $0.id == id && $0.status == .alive } }
        return (owner, standbys)
    }

    /// True when this node is the stream's origin (or the only node there is).
    func ownsLocally(_ streamID: String) -> Bool {
        let snap = view.snapshot
        guard let owner = snap.ring.placement(for: streamID)?.owner else { return true }
        return owner == snap.localID
    }

    /// The nearest healthy edge for a viewer: alive members in the viewer's region (else
    /// all), the closest three by estimated round-trip time, then the less loaded of two
    /// picked at random.
    func chooseEdge(regionHint: String?) -> Member? {
        let snap = view.snapshot
        let alive = snap.members.filter { $0.status == .alive }
        guard !alive.isEmpty else { return nil }
        let wanted = regionHint ?? region
        let inRegion = alive.filter { $0.metadata.region == wanted }
        let pool = inRegion.isEmpty ? alive : inRegion
        let byDistance = pool.sorted { a, b in
            let ra = a.id == snap.localID ? .zero : (snap.rtt[a.id] ?? .seconds(1))
            let rb = b.id == snap.localID ? .zero : (snap.rtt[b.id] ?? .seconds(1))
            return ra != rb ? ra < rb : a.id < b.id
        }
        let close = Array(byDistance.prefix(3))
        guard close.count > 1 else { return close.first }
        var picks = close.shuffled()
        picks = Array(picks.prefix(2))
        return picks.min { $0.metadata.load != $1.metadata.load ? $0.metadata.load < $1.metadata.load : $0.id < $1.id }
    }
}

/// What an edge got from upstream.
struct UpstreamResponse: Sendable {
    var status: Int
    var contentType: String?
    var cacheControl: String?
    var body: ByteBuffer
}

/// The edge side of the media path.
final class EdgeProxy: Sendable {
    static let edgeHeader = "X-StreamTube-Edge"
    let router: ClusterRouter
    let cache: EdgeStore
    let client: HTTPClient
    let localID: String
    private let flights = SingleFlight<String, UpstreamResponse>()
    private let logger: Logger

    init(router: ClusterRouter, cache: EdgeStore, localID: String, logger: Logger) {
        self.router = router
        self.cache = cache
        self.localID = localID
        self.logger = logger
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(30))
        config.redirectConfiguration = .disallow
        // Inside the cluster a connection is made in well under a second; a dead origin must not hold
        // viewers up longer than that before the standby is asked.
        config.timeout = .init(connect: .seconds(1), read: .seconds(20))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    func shutdown() async {
        try? await client.shutdown()
        cache.close()
    }

    /// Serves `path?query` of a stream owned elsewhere: immutable media from the store or
    /// one upstream fetch; playlists always upstream (blocking requests shared).
    func serve(streamID: String, path: String, query: String?, immutable: Bool) async -> Response {
        let key = query.map { "\(path)?\($0)" } ?? path
        if immutable, let bytes = cache.buffer(key) {
            Self.hits.increment()
            return HTTPRoutes.media(bytes)
        }
        do {
            let upstream = try await flights.value(for: key) { [self] () async throws -> UpstreamResponse in
                let r = try await fetchFromOrigin(streamID: streamID, pathAndQuery: key)
                if immutable, r.status == 200 { cache.put(key, r.body) }
                return r
            }
            if upstream.status == 200, immutable { return HTTPRoutes.media(upstream.body) }
            var headers = HTTPFields()
            headers[.contentType] = upstream.contentType ?? "application/octet-stream"
            headers[.cacheControl] = upstream.cacheControl ?? "no-cache"
            headers[.accessControlAllowOrigin] = "*"
            return Response(status: .init(code: upstream.status), headers: headers,
                            body: .init(byteBuffer: upstream.body))
        } catch {
            logger.warning("edge: origin and standbys failed", metadata: ["stream": "\(streamID)", "path": "\(key)", "error": "\(error)"])
            return Response(status: .serviceUnavailable, headers: [.retryAfter: "1", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: "the stream's origin cannot be reached; try again\n")))
        }
    }

    /// A memory-tier hit for the media path `path` of a stream owned elsewhere, for
    /// `MediaFastPath` (on the event loop: no disk, no waiting).
    func cachedMedia(path: String, streamExists: (String) -> Bool) -> ByteBuffer? {
        guard let id = MediaFastPath.streamID(in: path), streamExists(id), !router.ownsLocally(id),
              let bytes = cache.memoryBuffer(path) else { return nil }
        Self.hits.increment()
        return bytes
    }

    static let hits = Counter(label: "streamtube_edge_cache_hits_total")
    static let upstreamRequests = Counter(label: "streamtube_edge_upstream_requests_total")

    struct NoOrigin: Error {}

    /// One request to the origin; on failure the standbys in order.
    private func fetchFromOrigin(streamID: String, pathAndQuery: String) async throws -> UpstreamResponse {
        guard let placement = router.placement(of: streamID) else { throw NoOrigin() }
        var lastError: any Error = NoOrigin()
        for member in [placement.owner] + placement.standbys where member.id.rawValue != localID {
            Self.upstreamRequests.increment()
            var request = HTTPClientRequest(url: "http://\(member.metadata.httpAddress)\(pathAndQuery)")
            request.headers.add(name: Self.edgeHeader, value: localID)
            do {
                let response = try await client.execute(request, timeout: .seconds(20))
                let body = try await response.body.collect(upTo: 64 << 20)
                guard response.status.code < 500 else {
                    lastError = HTTPError(.badGateway, message: "origin answered \(response.status.code)")
                    continue
                }
                return UpstreamResponse(status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                                        cacheControl: response.headers.first(name: "Cache-Control"),
                                        body: body)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }
}


