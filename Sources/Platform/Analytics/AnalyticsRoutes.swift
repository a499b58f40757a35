// AnalyticsRoutes: a stream's viewer figures for the whole cluster, read from what every node
// reported (`ViewerFigureStore`): the operator's `GET /api/streams/{id}/analytics`, and the
// public live count (`GET /streams/{id}/viewers`: the count and nothing else, cacheable briefly).
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore

package struct AnalyticsRoutes: Sendable {
    let store: ViewerFigureStore
    let catalog: StreamCatalog
    let playback: any PlaybackPolicy
    let clock: @Sendable () -> Double
    /// Whether this node serves a session of a stream now (its report may not be written yet).
    let servesSession: @Sendable (String, String) -> Bool
    let limiter: BeaconLimiter
    /// The recordings the nodes report: a recording's figures are kept under its id.
    let recordings: RecordingStore?

    package init(store: ViewerFigureStore, catalog: StreamCatalog, playback: any PlaybackPolicy, recordings: RecordingStore? = nil,
                 servesSession: @escaping @Sendable (String, String) -> Bool = { _, _ in false },
                 limiter: BeaconLimiter = BeaconLimiter(),
                 clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.store = store
        self.catalog = catalog
        self.playback = playback
        self.servesSession = servesSession
        self.recordings = recordings
        self.limiter = limiter
        self.clock = clock
    }

    /// What a page's player says of its session (`navigator.sendBeacon`): `startup` (with
    /// `startupMs`, the time from asking to play to the first frame), `play`, `pause`, `stall`,
    /// `rendition`; each may add the time played and stalled since the previous one.
    package struct Beacon: Codable, Sendable, Equatable {
        package var session: String
        package var event: String
        package var startupMs: Int64?
        package var playedMs: Int64?
        package var stalledMs: Int64?
        package var rendition: String?

        static let events: Set<String> = ["startup", "play", "pause", "stall", "rendition", "leave"]
        /// Ten minutes: more than any beacon's interval.
        static let maxMs: Int64 = 600_000
        package static let maxBytes = 2048
    }

    /// The live count of a stream, as the watch page shows it.
    package struct LiveCount: Codable, Sendable, Equatable {
        package var viewers: Int
    }

    /// Mounted at `/api`, behind the operator token.
    package func operatorCollection(token: String) -> RouteCollection<NodeRequestContext> {
        let api = RouteCollection(context: NodeRequestContext.self)
        api.add(middleware: OperatorAuthMiddleware(token: token))
        api.get("streams/:id/analytics") { request, context -> Response in
            let record = try await stream(context)
            let since = try request.uri.queryParameters.get("since").map { text -> Double in
                guard let v = Double(text), v.isFinite, v >= 0 else { throw Problem.badRequest("since must be seconds since 1970") }
                return v
            } ?? 0
            return try Responses.json(try await store.figures(stream: record.id, now: clock(), seriesSince: since))
        }
        // A recording's: the sessions that watched its VOD playlists (its id stands for the stream's in the figures).
        api.get("recordings/:id/analytics") { _, context -> Response in
            let id = try context.parameters.require("id")
            guard id.utf8.count <= 100, let recordings, try await recordings.recording(id: id) != nil else {
                throw Problem.notFound("no recording \(id.prefix(100))")
            }
            return try Responses.json(try await store.figures(stream: id, now: clock()))
        }
        return api
    }

    /// The public routes.
    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/streams/:id/viewers") { request, context -> Response in
            let record = try await stream(context)
            // A private stream's count is for those who may watch it.
            let token = request.uri.queryParameters.get("token").map { Substring($0) }
            guard playback.allowsPlayback(of: record, token: token) else { throw Problem.notFound("no stream \(record.id)") }
            let n = try await store.concurrent(stream: record.id, now: clock())
            return try Responses.json(LiveCount(viewers: n), cache: record.visibility.isPrivate ? "private, max-age=2" : "public, max-age=2")
        }
        routes.post("/streams/:id/beacon") { request, context -> Response in
            try await beacon(request, context)
        }
        return routes
    }

    private func beacon(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let record = try await stream(context)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > Beacon.maxBytes {
            throw Problem(.contentTooLarge, "a beacon is at most \(Beacon.maxBytes) bytes")
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Beacon.maxBytes) } catch {
            throw Problem(.contentTooLarge, "a beacon is at most \(Beacon.maxBytes) bytes")
        }
        // sendBeacon sends its JSON as text/plain (no preflight): the body is read as JSON whatever its type.
        guard let b = try? JSONDecoder().decode(Beacon.self, from: Data(body.readableBytesView)) else {
            throw Problem.badRequest("expected JSON like {\"session\": \"...\", \"event\": \"startup\", \"startupMs\": 850}")
        }
        guard (16...20).contains(b.session.utf8.count),
              b.session.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
        else { throw Problem.badRequest("session: 16 to 20 base64url characters") }
        guard Beacon.events.contains(b.event) else {
            throw Problem.badRequest("event: one of \(Beacon.events.sorted().joined(separator: ", "))")
        }
        for (name, value) in [("startupMs", b.startupMs), ("playedMs", b.playedMs), ("stalledMs", b.stalledMs)] {
            if let value, !(0...Beacon.maxMs).contains(value) { throw Problem.badRequest("\(name): 0 to \(Beacon.maxMs)") }
        }
        if b.event == "startup", b.startupMs == nil { throw Problem.badRequest("a startup beacon needs startupMs") }
        let now = clock()
        guard limiter.allow(record.id + "/" + b.session, now: now) else {
            throw Problem(.tooManyRequests, "too many beacons from this session; slow down", headers: [.retryAfter: "1"])
        }
        // A session this node serves now may not be in the database yet (reports go every few seconds).
        let known = servesSession(record.id, b.session) ? true : try await store.knows(stream: record.id, session: b.session)
        guard known else { throw Problem.notFound("no viewer session \(b.session) of stream \(record.id)") }
        return try await save(b, stream: record.id, now: now)
    }

    private func save(_ b: Beacon, stream: String, now: Double) async throws -> Response {
        try await store.beacon(stream: stream, session: b.session, startupMs: b.event == "startup" ? b.startupMs : nil,
                               stalledMs: b.stalledMs ?? 0, playedMs: b.playedMs ?? 0, stalls: b.event == "stall" ? 1 : 0, now: now)
        return Response(status: .noContent)
    }

    private func stream(_ context: NodeRequestContext) async throws -> StreamRecord {
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
            throw Problem.notFound("no stream \(id)")
        }
        return record
    }
}
