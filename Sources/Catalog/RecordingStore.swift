// RecordingStore: the recordings of streams, as the nodes that hold them report them — one row
// per copy (a recording id and the node holding it), written once for both engines. A listing
// merges a recording's copies: its state is the best of them, its holders all of them.
import Foundation
import SQLKit

/// One node's copy of a recording.
package struct RecordingCopy: Sendable, Equatable {
    package var id: String
    package var nodeID: String
    package var streamID: String
    /// `recording`, `ready` or `incomplete`.
    package var state: String
    package var reason: String?
    package var startedAt: Date
    package var endedAt: Date?
    package var durationSeconds: Double
    package var bytes: Int
    package var renditions: [String]
    /// When the node last reported it (read back from the database).
    package var updatedAt: Date?

    package init(id: String, nodeID: String, streamID: String, state: String, reason: String? = nil, startedAt: Date,
                 endedAt: Date? = nil, durationSeconds: Double, bytes: Int, renditions: [String], updatedAt: Date? = nil) {
        self.id = id
        self.nodeID = nodeID
        self.streamID = streamID
        self.state = state
        self.reason = reason
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.durationSeconds = durationSeconds
        self.bytes = bytes
        self.renditions = renditions
        self.updatedAt = updatedAt
    }
}

/// A recording with every copy of it merged.
package struct RecordingSummary: Sendable, Equatable {
    /// The copy that says most (its `startedAt` the earliest of all): `recording` while a copy is
    /// being made (reported in the last `RecordingSummary.fresh` seconds, and since any copy
    /// ended: a standby that took over goes on where the old origin's copy ended, while a dead
    /// origin's copy is left behind); else a `ready` one; else a `recording` one (its node
    /// stopped reporting); else an `incomplete` one. Its `nodeID` is the first of `nodes`.
    package var recording: RecordingCopy
    /// The nodes holding a copy, in that order.
    package var nodes: [String]

    /// A copy being made reports at least this often (seconds).
    package static let fresh: Double = 90

    /// Merges the copies of one recording (at least one), the longest of equals first.
    package init(copies: [RecordingCopy], now: Date = Date()) {
        let lastEnd = copies.filter { $0.state != "recording" }.compactMap(\.endedAt).max()
        func rank(_ c: RecordingCopy) -> Int {
            switch c.state {
            case "recording":
                let updated = c.updatedAt ?? now
                return now.timeIntervalSince(updated) < Self.fresh && lastEnd.map { updated > $0 } ?? true ? 0 : 2
            case "ready": return 1
            default: return 3
            }
        }
        let sorted = copies.sorted { (rank($0), -$0.durationSeconds, $0.nodeID) < (rank($1), -$1.durationSeconds, $1.nodeID) }
        recording = sorted[0]
        recording.startedAt = copies.map(\.startedAt).min()!
        if recording.state != "incomplete" { recording.reason = nil }
        nodes = sorted.map(\.nodeID)
    }
}

package struct RecordingStore: Sendable {
    package let database: Database

    static let columns = ["id", "node_id", "stream_id", "state", "reason", "started_at", "ended_at", "duration_seconds", "bytes",
                          "renditions", "updated_at"]

    package init(database: Database) {
        self.database = database
    }

    private var sql: any SQLDatabase { database.sql }

    /// Keeps a node's copy as it is now (made or replaced).
    package func save(_ c: RecordingCopy, now: Date = Date()) async throws {
        try await sql.insert(into: "recordings").columns(Self.columns)
            .values(SQLBind(c.id), SQLBind(c.nodeID), SQLBind(c.streamID), SQLBind(c.state), Migrations.optional(c.reason),
                    SQLBind(c.startedAt.timeIntervalSince1970), Migrations.optional(c.endedAt?.timeIntervalSince1970),
                    SQLBind(c.durationSeconds), SQLBind(c.bytes), SQLBind(c.renditions.joined(separator: ",")),
                    SQLBind(now.timeIntervalSince1970))
            .onConflict(with: ["id", "node_id"]) { u in
                u.set(excludedValueOf: "state").set(excludedValueOf: "reason").set(excludedValueOf: "ended_at")
                    .set(excludedValueOf: "duration_seconds").set(excludedValueOf: "bytes").set(excludedValueOf: "renditions")
                    .set(excludedValueOf: "updated_at")
            }
            .run()
    }

    /// A stream's recordings, oldest first.
    package func recordings(stream: String) async throws -> [RecordingSummary] {
        let rows = try await sql.select().columns(Self.columns).from("recordings").where("stream_id", .equal, stream)
            .orderBy("started_at").all()
        return Self.merge(rows.compactMap(copy))
    }

    /// The copies of a stream's recordings this database knows, each as reported.
    package func copies(stream: String) async throws -> [RecordingCopy] {
        try await sql.select().columns(Self.columns).from("recordings").where("stream_id", .equal, stream).orderBy("started_at").all()
            .compactMap(copy)
    }

    /// Copies (from this database and others) merged into recordings, in the order given.
    package static func summaries(_ copies: [RecordingCopy]) -> [RecordingSummary] { merge(copies) }

    /// One recording, with every copy; nil when no node reported it.
    package func recording(id: String) async throws -> RecordingSummary? {
        let rows = try await sql.select().columns(Self.columns).from("recordings").where("id", .equal, id).all()
        return Self.merge(rows.compactMap(copy)).first
    }

    /// The recordings of several streams (a person's), oldest first.
    package func recordings(streams: [String]) async throws -> [RecordingSummary] {
        guard !streams.isEmpty else { return [] }
        let rows = try await sql.select().columns(Self.columns).from("recordings").where("stream_id", .in, streams)
            .orderBy("started_at").all()
        return Self.merge(rows.compactMap(copy))
    }

    /// Forgets a node's copy (deleted from its disk).
    package func removeCopy(id: String, nodeID: String) async throws {
        try await sql.delete(from: "recordings").where("id", .equal, id).where("node_id", .equal, nodeID).run()
    }

    /// The ids of the copies a node holds, by the database.
    package func copies(nodeID: String) async throws -> [String] {
        try await sql.select().column("id").from("recordings").where("node_id", .equal, nodeID).all()
            .compactMap { try? $0.decode(column: "id", as: String.self) }
    }

    static func merge(_ copies: [RecordingCopy]) -> [RecordingSummary] {
        var order: [String] = []
        var byID: [String: [RecordingCopy]] = [:]
        for c in copies {
            if byID[c.id] == nil { order.append(c.id) }
            byID[c.id, default: []].append(c)
        }
        return order.map { RecordingSummary(copies: byID[$0]!) }
    }

    private func copy(_ row: any SQLRow) -> RecordingCopy? {
        guard let id = try? row.decode(column: "id", as: String.self),
              let node = try? row.decode(column: "node_id", as: String.self),
              let stream = try? row.decode(column: "stream_id", as: String.self),
              let state = try? row.decode(column: "state", as: String.self),
              let started = try? row.decode(column: "started_at", as: Double.self) else { return nil }
        return RecordingCopy(id: id, nodeID: node, streamID: stream, state: state,
                             reason: (try? row.decode(column: "reason", as: String?.self)) ?? nil,
                             startedAt: Date(timeIntervalSince1970: started),
                             endedAt: ((try? row.decode(column: "ended_at", as: Double?.self)) ?? nil).map(Date.init(timeIntervalSince1970:)),
                             durationSeconds: (try? row.decode(column: "duration_seconds", as: Double.self)) ?? 0,
                             bytes: (try? row.decode(column: "bytes", as: Int.self)) ?? 0,
                             renditions: ((try? row.decode(column: "renditions", as: String.self)) ?? "").split(separator: ",").map(String.init),
                             updatedAt: (try? row.decode(column: "updated_at", as: Double.self)).map(Date.init(timeIntervalSince1970:)))
    }
}
