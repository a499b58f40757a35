// EdgeProxy: the edge's fetch from a stream's origin (then its standbys) — one upstream
// request per object however many viewers ask, immutable media kept in the edge store.
import AsyncHTTPClient
import Cluster
import Edge
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import Logging
import NodeMetrics
import NIOCore
import Synchronization

/// What an edge got from upstream.
package struct UpstreamResponse: Sendable {
    var status: Int
    var contentType: String?
    var cacheControl: String?
    /// The origin's validator, passed on with the bytes it names (a thumbnail's).
    var etag: String? = nil
    var body: ByteBuffer
}

/// The edge side of the media path.
package final class EdgeProxy: Sendable {
    package let router: ClusterRouter
    package let cache: EdgeStore
    package let client: HTTPClient
    package let localID: String
    private let flights = SingleFlight<String, UpstreamResponse>()
    /// Playlist answers reused while the origin allows (`EdgePlaylistCache`).
    private let playlists = Mutex(EdgePlaylistCache())
    /// Prefetches on their way now, and the most there may be: each may be a preload hint the
    /// origin holds for up to a part duration, so many streams and renditions could otherwise
    /// take every connection to the origin.
    private let prefetching = Atomic<Int>(0)
    package let maxPrefetches: Int
    /// Seconds on a monotonic clock (tests move it).
    private let clock: @Sendable () -> Double
    private let logger: Logger

    package init(router: ClusterRouter, cache: EdgeStore, localID: String, logger: Logger, maxPrefetches: Int = 64,
                 clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.router = router
        self.cache = cache
        self.localID = localID
        self.logger = logger
        self.maxPrefetches = maxPrefetches
        self.clock = clock
        var config = HTTPClient.Configuration()
        // Blocking reloads and preload hints are held by the origin for up to a part duration
        // each, one per rendition and stream: AsyncHTTPClient's default of 8 connections to a
        // host would queue the next part behind them.
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 128)
        config.redirectConfiguration = .disallow
        // Inside the cluster a connection is made in well under a second; a dead origin must not hold
        // viewers up longer than that before the standby is asked.
        config.timeout = .init(connect: .seconds(1), read: .seconds(20))
        // The client of every request to another node (the edge's, replication, record lookups):
        // with cluster TLS, it presents this node's certificate and trusts the cluster CAs only.
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: router.transport.httpClientConfiguration(config))
    }

    package func shutdown() async {
        try? await client.shutdown()
        cache.close()
    }

    /// Serves `path?query` of a stream owned elsewhere: immutable media from the store or
    /// one upstream fetch; playlists from `EdgePlaylistCache` while fresh, else upstream
    /// (concurrent requests for one key sharing one fetch). A live media playlist from
    /// upstream starts the prefetch of the objects viewers will ask next (`EdgePrefetch`).
    ///
    /// The store, the playlist cache and the single flights name an object by `path?query`
    /// alone: `query` carries no playback token, so every viewer shares them. `token` (already
    /// checked here) goes to the origin with the fetch, which checks it again; `carry` is
    /// written into every URI of a playlist answered (a private stream's viewer's token).
    /// `holders`: nodes to ask before the stream's origin and standbys (a recording's copies).
    /// `carryQuery`: written into every URI of a playlist instead of `carry`'s token (the token
    /// and the viewer session); `observe` is handed a playlist's text as the origin sent it.
    /// `passOn`: this node is the stream's owner and holds nothing of it: the nodes after it are
    /// asked, each to answer itself, and one that has nothing either (404) leaves it to the next.
    package func serve(streamID: String, path: String, query: String?, immutable: Bool,
                       token: Substring? = nil, carry: Substring? = nil, holders: [String] = [],
                       carryQuery: String? = nil, observe: (@Sendable (String) -> Void)? = nil,
                       passOn: Bool = false) async -> Response {
        let key = query.map { "\(path)?\($0)" } ?? path
        // Only playlists are kept for their max-age: a thumbnail (max-age 60) removed or replaced
        // must not be answered from here after the change.
        let playlist = !immutable && path.hasSuffix(".m3u8")
        if immutable, let bytes = cache.buffer(key) {
            NodeMetrics.edgeCacheHits.increment()
            return Responses.media(bytes)
        }
        // The first viewer's token opens the one fetch every viewer waiting for `key` shares.
        var upstreamTarget = key
        if let token, PlaybackQuery.isPlain(token) {
            upstreamTarget += query == nil ? "?token=" : "&token="
            upstreamTarget += token
        }
        do {
            let upstream: UpstreamResponse
            if playlist, let kept = keptPlaylist(key) {
                upstream = kept
            } else {
                let target = upstreamTarget
                upstream = try await flights.value(for: key) { [self] () async throws -> UpstreamResponse in
                    // Asked again inside the flight: a request that missed just as the previous
                    // flight for `key` finished finds its answer here, not at the origin.
                    if immutable, let bytes = cache.buffer(key) { return UpstreamResponse(status: 200, body: bytes) }
                    if playlist, let kept = keptPlaylist(key) { return kept }
                    let r = try await fetchFromOrigin(streamID: streamID, pathAndQuery: target, holders: holders, media: immutable,
                                                      passOn: passOn)
                    if r.status == 200 {
                        if immutable {
                            cache.put(key, r.body)
                        } else if playlist {
                            let now = clock()
                            playlists.withLock { $0.keep(key, r, now: now) }
                            prefetch(after: r, streamID: streamID, path: path, token: token, holders: holders)
                        }
                    }
                    return r
                }
            }
            if upstream.status == 200, immutable { return Responses.media(upstream.body) }
            var headers = HTTPFields()
            headers[.contentType] = upstream.contentType ?? "application/octet-stream"
            headers[.cacheControl] = upstream.cacheControl ?? "no-cache"
            headers[.accessControlAllowOrigin] = "*"
            if let observe, upstream.status == 200, !immutable { observe(String(buffer: upstream.body)) }
            if let query = carryQuery ?? carry.map({ "token=" + $0 }), upstream.status == 200 {
                headers[.cacheControl] = upstream.cacheControl.map { $0.replacingOccurrences(of: "public", with: "private") } ?? "private, no-cache"
                let text = PlaybackQuery.carrying(query: query, in: String(buffer: upstream.body))
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            if let etag = upstream.etag { headers[.eTag] = etag }
            return Response(status: .init(code: upstream.status), headers: headers,
                            body: .init(byteBuffer: upstream.body))
        } catch {
            logger.warning("edge: origin and standbys failed", metadata: ["stream": "\(streamID)", "path": "\(key)", "error": "\(error)"])
            return Response(status: .serviceUnavailable, headers: [.retryAfter: "1", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: "the stream's origin cannot be reached; try again\n")))
        }
    }

    /// A playlist answer still fresh in `playlists`, counted as a hit.
    private func keptPlaylist(_ key: String) -> UpstreamResponse? {
        let now = clock()
        guard let kept = playlists.withLock({ $0.answer(key, now: now) }) else { return nil }
        NodeMetrics.edgePlaylistHits.increment()
        return kept
    }

    /// Fetches what `EdgePrefetch` names in a media playlist just got from upstream (at `path`,
    /// `.../index.m3u8`) into the store, each through the single flight a viewer's request for
    /// it would join; skipped when already stored or when `maxPrefetches` are on their way.
    /// `token`: the one the playlist was fetched with (a private stream's objects need one).
    private func prefetch(after playlist: UpstreamResponse, streamID: String, path: String, token: Substring?, holders: [String]) {
        guard path.hasSuffix("/index.m3u8") else { return }
        let base = path.dropLast("index.m3u8".count)
        for name in EdgePrefetch.targets(in: String(buffer: playlist.body)) {
            let key = String(base) + String(name)
            guard cache.memoryBuffer(key) == nil else { continue }
            guard prefetching.wrappingAdd(1, ordering: .relaxed).newValue <= maxPrefetches else {
                prefetching.wrappingSubtract(1, ordering: .relaxed)
                NodeMetrics.edgePrefetchesSkipped.increment()
                return
            }
            var target = key
            if let token, PlaybackQuery.isPlain(token) { target += "?token=" + token }
            Task { [self, target] in
                defer { prefetching.wrappingSubtract(1, ordering: .relaxed) }
                _ = try? await flights.value(for: key) { [self] () async throws -> UpstreamResponse in
                    if let bytes = cache.buffer(key) { return UpstreamResponse(status: 200, body: bytes) }
                    NodeMetrics.edgePrefetches.increment()
                    let r = try await fetchFromOrigin(streamID: streamID, pathAndQuery: target, holders: holders, media: true)
                    if r.status == 200 { cache.put(key, r.body) }
                    return r
                }
            }
        }
    }

    /// Prefetches on their way now (tests).
    package var prefetchesInFlight: Int { prefetching.load(ordering: .relaxed) }

    /// A memory-tier hit for a media object of a stream owned elsewhere, for the fast path
    /// (on the event loop: no disk, no waiting).
    package func cachedMedia(_ object: MediaObjectRequest) -> ByteBuffer? {
        guard !router.ownsLocally(object.streamID), let bytes = cache.memoryBuffer(object.path) else { return nil }
        NodeMetrics.edgeCacheHits.increment()
        return bytes
    }

    struct NoOrigin: Error {}

    /// An object too large to keep or hold in memory (a recording's MP4), of a stream held
    /// elsewhere: asked of the first holder that answers (`Range` passed on), its body streamed
    /// to the client as it arrives, nothing kept. `token` as for `serve`.
    package func stream(streamID: String, path: String, token: Substring?, range: String?, holders: [String]) async -> Response {
        var target = path
        if let token, PlaybackQuery.isPlain(token) { target += "?token=" + token }
        var lastError: any Error = NoOrigin()
        for member in members(streamID: streamID, holders: holders) where member.id.rawValue != localID {
            NodeMetrics.edgeUpstreamRequests.increment()
            var request = HTTPClientRequest(url: router.transport.baseURL(for: member) + target)
            request.headers.add(name: HTTPField.Name.streamTubeEdge.rawName, value: localID)
            if let range { request.headers.add(name: "Range", value: range) }
            do {
                let response = try await client.execute(request, timeout: .seconds(20))
                guard response.status.code < 500 else {
                    lastError = HTTPError(.badGateway, message: "holder answered \(response.status.code)")
                    continue
                }
                var headers = HTTPFields()
                for name in ["Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Content-Disposition", "Cache-Control",
                             "Retry-After"] {
                    if let value = response.headers.first(name: name), let field = HTTPField.Name(name) { headers[field] = value }
                }
                headers[.accessControlAllowOrigin] = "*"
                return Response(status: .init(code: Int(response.status.code)), headers: headers,
                                body: .init(asyncSequence: response.body))
            } catch {
                lastError = error
            }
        }
        logger.warning("edge: no holder answered", metadata: ["stream": "\(streamID)", "path": "\(path)", "error": "\(lastError)"])
        return Response(status: .serviceUnavailable, headers: [.retryAfter: "1", .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(string: "no node holding it can be reached; try again\n")))
    }

    /// The nodes to ask for a stream's objects, in order: `holders` (alive), then its origin and standbys.
    private func members(streamID: String, holders: [String]) -> [Member] {
        var members = holders.compactMap { id in router.view.snapshot.members.first { $0.id.rawValue == id && !$0.status.isDeadOrLeft } }
        for m in router.placement(of: streamID).map({ [$0.owner] + $0.standbys }) ?? [] where !members.contains(where: { $0.id == m.id }) {
            members.append(m)
        }
        return members
    }

    /// One request to the origin; on failure the standbys in order.
    /// `media`: an immutable object (counted apart, so the requests per object can be read).
    private func fetchFromOrigin(streamID: String, pathAndQuery: String, holders: [String] = [], media: Bool = false,
                                 passOn: Bool = false) async throws -> UpstreamResponse {
        let members = members(streamID: streamID, holders: holders)
        guard !members.isEmpty else { throw NoOrigin() }
        var lastError: any Error = NoOrigin()
        var notFound: UpstreamResponse?
        for member in members where member.id.rawValue != localID {
            NodeMetrics.edgeUpstreamRequests.increment()
            if media { NodeMetrics.edgeUpstreamMediaRequests.increment() }
            var request = HTTPClientRequest(url: router.transport.baseURL(for: member) + pathAndQuery)
            request.headers.add(name: HTTPField.Name.streamTubeEdge.rawName, value: localID)
            if passOn { request.headers.add(name: HTTPField.Name.streamTubePassedOn.rawName, value: "1") }
            do {
                let (response, body) = try await attempt(request, at: member.id)
                guard response.status.code < 500 else {
                    lastError = HTTPError(.badGateway, message: "origin answered \(response.status.code)")
                    continue
                }
                let answer = UpstreamResponse(status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                                              cacheControl: response.headers.first(name: "Cache-Control"),
                                              etag: response.headers.first(name: "ETag"), body: body)
                if passOn, answer.status == 404 {
                    notFound = notFound ?? answer
                    continue
                }
                return answer
            } catch {
                lastError = error
            }
        }
        if let notFound { return notFound }
        throw lastError
    }

    struct MemberGone: Error, CustomStringConvertible {
        var member: NodeID
        var description: String { "the cluster holds \(member) suspect or dead" }
    }

    /// One request to `member` and its whole body, given up as soon as the cluster holds the
    /// member suspect or dead: a node cut off or frozen keeps its connections half-open, and the
    /// request would otherwise wait out its 20 s while the next node (the standby, which holds
    /// everything players were shown) could answer. Players polling the playlist would stall
    /// that long and come back behind the window (ffmpeg skipped segments in the network lab).
    private func attempt(_ request: HTTPClientRequest, at member: NodeID) async throws -> (HTTPClientResponse, ByteBuffer) {
        try await withThrowingTaskGroup(of: (HTTPClientResponse, ByteBuffer)?.self) { group in
            group.addTask { [client] in
                let response = try await client.execute(request, timeout: .seconds(20))
                return (response, try await response.body.collect(upTo: 64 << 20))
            }
            group.addTask { [router] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    let status = router.view.snapshot.members.first { $0.id == member }?.status
                    if status != .alive, !Task.isCancelled { return nil }
                }
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else {
                NodeMetrics.edgeUpstreamAbandoned.increment()
                logger.info("edge: gave up a request to a node held suspect or dead", metadata: ["node": "\(member)"])
                throw MemberGone(member: member)
            }
            return answer
        }
    }
}


