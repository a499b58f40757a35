// ViewerFigures: the viewer figures of a stream as the nodes report them (schema v19). Each
// node adds, per session, what it served since its last report (`viewer_sessions`, one row per
// stream, session and node); the stream's owner samples the concurrent viewers
// (`viewer_samples`); the page's player adds its beacons (`viewer_beacons`). Figures are read
// back merged: a session is counted once however many nodes served it.
import Foundation
import SQLKit

/// What a node reports of one session: what it served since its last report, and its state.
package struct ViewerSessionReport: Sendable, Equatable {
    package var stream: String
    package var session: String
    package var rendition: String?
    package var device: String
    package var referrer: String?
    package var firstSeen: Double
    package var lastSeen: Double
    /// Media served since the last report: milliseconds of media, bytes.
    package var watchMs: Int64
    package var bytes: Int64

    package init(stream: String, session: String, rendition: String?, device: String, referrer: String?,
                 firstSeen: Double, lastSeen: Double, watchMs: Int64, bytes: Int64) {
        self.stream = stream
        self.session = session
        self.rendition = rendition
        self.device = device
        self.referrer = referrer
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.watchMs = watchMs
        self.bytes = bytes
    }
}

/// One line of a breakdown: the sessions with that value and the watch time they add up to.
package struct ViewerBreakdown: Codable, Sendable, Equatable {
    package var name: String
    package var viewers: Int
    package var watchSeconds: Double

    package init(name: String, viewers: Int, watchSeconds: Double) {
        self.name = name
        self.viewers = viewers
        self.watchSeconds = watchSeconds
    }
}

/// A sample of the concurrent viewers.
package struct ViewerSample: Codable, Sendable, Equatable {
    /// Seconds since 1970.
    package var at: Double
    package var viewers: Int

    package init(at: Double, viewers: Int) {
        self.at = at
        self.viewers = viewers
    }
}

/// A stream's figures, for the whole cluster.
package struct ViewerFigures: Codable, Sendable, Equatable {
    package var stream: String
    package var concurrentViewers: Int
    package var peakViewers: Int
    package var uniqueViewers: Int
    package var watchSeconds: Double
    package var averageWatchSeconds: Double
    /// From the players' beacons: the median startup time, and the time stalled over the time
    /// played and stalled (nil until a player sends one).
    package var startupMs: Double?
    package var rebufferingRatio: Double?
    package var byRegion: [ViewerBreakdown]
    package var byRendition: [ViewerBreakdown]
    package var byDevice: [ViewerBreakdown]
    package var byReferrer: [ViewerBreakdown]
    package var series: [ViewerSample]
}

package struct ViewerFigureStore: Sendable {
    package let database: Database
    /// Seconds after its last request a session stops counting as watching.
    package let window: Double
    /// Seconds between two samples of one stream.
    package let sampleEvery: Double

    package init(database: Database, window: Double = 8, sampleEvery: Double = 5) {
        self.database = database
        self.window = window
        self.sampleEvery = sampleEvery
    }

    private var sql: any SQLDatabase { database.sql }

    /// Adds a node's reports: each session's row for this node gets the media served since the
    /// last report, and its latest state. One statement per `batch` sessions (a report names each
    /// session once, as one statement must).
    package func save(_ reports: [ViewerSessionReport], node: String, region: String, batch: Int = 400) async throws {
        var start = 0
        while start < reports.count {
            let rows = reports[start..<min(start + batch, reports.count)].map { r -> any SQLExpression in
                SQLGroupExpression([SQLBind(r.stream), SQLBind(r.session), SQLBind(node), SQLBind(region), Migrations.optional(r.rendition),
                                    SQLBind(r.device), Migrations.optional(r.referrer), SQLBind(r.firstSeen), SQLBind(r.lastSeen),
                                    SQLBind(r.watchMs), SQLBind(r.bytes)])
            }
            try await sql.raw("""
                INSERT INTO viewer_sessions (stream_id, session_id, node_id, region, rendition, device, referrer,
                    first_seen, last_seen, watch_ms, bytes)
                VALUES \(SQLList(rows))
                ON CONFLICT (stream_id, session_id, node_id) DO UPDATE SET
                    rendition = COALESCE(excluded.rendition, viewer_sessions.rendition),
                    referrer = COALESCE(viewer_sessions.referrer, excluded.referrer),
                    last_seen = CASE WHEN excluded.last_seen > viewer_sessions.last_seen THEN excluded.last_seen ELSE viewer_sessions.last_seen END,
                    watch_ms = viewer_sessions.watch_ms + excluded.watch_ms,
                    bytes = viewer_sessions.bytes + excluded.bytes
                """).run()
            start += batch
        }
    }

    /// Streams with a session seen since `since`.
    package func streamsWatched(since: Double) async throws -> [String] {
        try await sql.raw("SELECT DISTINCT stream_id FROM viewer_sessions WHERE last_seen >= \(bind: since)").all()
            .compactMap { try? $0.decode(column: "stream_id", as: String.self) }
    }

    /// Sessions of a stream watching at `now` (seen within the window, on any node).
    package func concurrent(stream: String, now: Double) async throws -> Int {
        let row = try await sql.raw("""
            SELECT COUNT(DISTINCT session_id) AS n FROM viewer_sessions WHERE stream_id = \(bind: stream) AND last_seen >= \(bind: now - window)
            """).first()
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Keeps the concurrent viewers of `stream` now, as one sample per `sampleEvery` seconds
    /// (two owners at once during a failover write the same sample).
    package func sample(stream: String, now: Double) async throws {
        let n = try await concurrent(stream: stream, now: now)
        let at = (now / sampleEvery).rounded(.down) * sampleEvery
        try await sql.raw("""
            INSERT INTO viewer_samples (stream_id, at, concurrent) VALUES (\(bind: stream), \(bind: at), \(bind: n))
            ON CONFLICT (stream_id, at) DO UPDATE SET concurrent = CASE WHEN excluded.concurrent > viewer_samples.concurrent
                THEN excluded.concurrent ELSE viewer_samples.concurrent END
            """).run()
    }

    /// A player's beacon: startup time (kept once), time stalled and played since its last one.
    package func beacon(stream: String, session: String, startupMs: Int64?, stalledMs: Int64, playedMs: Int64, stalls: Int,
                        now: Double) async throws {
        try await sql.raw("""
            INSERT INTO viewer_beacons (stream_id, session_id, startup_ms, stalled_ms, played_ms, stalls, updated_at)
            VALUES (\(bind: stream), \(bind: session), \(bind: startupMs), \(bind: stalledMs), \(bind: playedMs), \(bind: stalls), \(bind: now))
            ON CONFLICT (stream_id, session_id) DO UPDATE SET
                startup_ms = COALESCE(viewer_beacons.startup_ms, excluded.startup_ms),
                stalled_ms = viewer_beacons.stalled_ms + excluded.stalled_ms,
                played_ms = viewer_beacons.played_ms + excluded.played_ms,
                stalls = viewer_beacons.stalls + excluded.stalls,
                updated_at = excluded.updated_at
            """).run()
    }

    /// Whether a session of `stream` was seen by any node (a beacon must name one).
    package func knows(stream: String, session: String) async throws -> Bool {
        try await sql.raw("""
            SELECT 1 AS one FROM viewer_sessions WHERE stream_id = \(bind: stream) AND session_id = \(bind: session) LIMIT 1
            """).first() != nil
    }

    /// The figures of a stream at `now`; `seriesSince`: the first sample kept in the series.
    package func figures(stream: String, now: Double, seriesSince: Double = 0) async throws -> ViewerFigures {
        let concurrent = try await concurrent(stream: stream, now: now)
        let totals = try await sql.raw("""
            SELECT COUNT(DISTINCT session_id) AS viewers, CAST(COALESCE(SUM(watch_ms), 0) AS BIGINT) AS watch
            FROM viewer_sessions WHERE stream_id = \(bind: stream)
            """).first()
        let unique = try totals?.decode(column: "viewers", as: Int.self) ?? 0
        let watchMs = try totals?.decode(column: "watch", as: Int64.self) ?? 0
        let samples = try await sql.raw("""
            SELECT at, concurrent FROM viewer_samples WHERE stream_id = \(bind: stream) AND at >= \(bind: seriesSince) ORDER BY at
            """).all().map { ViewerSample(at: try $0.decode(column: "at", as: Double.self), viewers: try $0.decode(column: "concurrent", as: Int.self)) }
        let peakRow = try await sql.raw("SELECT MAX(concurrent) AS peak FROM viewer_samples WHERE stream_id = \(bind: stream)").first()
        let sampledPeak: Int? = try peakRow?.decode(column: "peak", as: Int?.self)
        let peak = max(concurrent, sampledPeak ?? 0)
        var figures = ViewerFigures(stream: stream, concurrentViewers: concurrent, peakViewers: peak, uniqueViewers: unique,
                                    watchSeconds: Double(watchMs) / 1000,
                                    averageWatchSeconds: unique == 0 ? 0 : Double(watchMs) / 1000 / Double(unique),
                                    byRegion: try await breakdown(stream, by: "region"), byRendition: try await breakdown(stream, by: "rendition"),
                                    byDevice: try await breakdown(stream, by: "device"), byReferrer: try await breakdown(stream, by: "referrer"),
                                    series: samples)
        let startups = try await sql.raw("""
            SELECT startup_ms FROM viewer_beacons WHERE stream_id = \(bind: stream) AND startup_ms IS NOT NULL ORDER BY startup_ms
            """).all().compactMap { try? $0.decode(column: "startup_ms", as: Int64.self) }
        if !startups.isEmpty { figures.startupMs = Double(startups[startups.count / 2]) }
        let quality = try await sql.raw("""
            SELECT CAST(COALESCE(SUM(stalled_ms), 0) AS BIGINT) AS stalled, CAST(COALESCE(SUM(played_ms), 0) AS BIGINT) AS played FROM viewer_beacons
            WHERE stream_id = \(bind: stream)
            """).first()
        let stalled = try quality?.decode(column: "stalled", as: Int64.self) ?? 0
        let played = try quality?.decode(column: "played", as: Int64.self) ?? 0
        if stalled + played > 0 { figures.rebufferingRatio = Double(stalled) / Double(stalled + played) }
        return figures
    }

    /// Sessions and watch time by one column's value (most watched first; at most 50 lines).
    private func breakdown(_ stream: String, by column: String) async throws -> [ViewerBreakdown] {
        // `column` is one of ours, never the caller's.
        precondition(["region", "rendition", "device", "referrer"].contains(column))
        return try await sql.raw("""
            SELECT COALESCE(\(unsafeRaw: column), '') AS name, COUNT(DISTINCT session_id) AS viewers, CAST(COALESCE(SUM(watch_ms), 0) AS BIGINT) AS watch
            FROM viewer_sessions WHERE stream_id = \(bind: stream) GROUP BY COALESCE(\(unsafeRaw: column), '')
            ORDER BY watch DESC, name LIMIT 50
            """).all().map {
            ViewerBreakdown(name: try $0.decode(column: "name", as: String.self), viewers: try $0.decode(column: "viewers", as: Int.self),
                            watchSeconds: Double(try $0.decode(column: "watch", as: Int64.self)) / 1000)
        }
    }
}
