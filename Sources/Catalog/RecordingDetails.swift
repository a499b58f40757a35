// RecordingDetails: what people set on a recording — title, description, visibility, trim, an
// uploaded picture — and whether it was deleted, one row per recording (`recording_details`,
// schema v15), whichever nodes hold its copies. `RecordingDetailsStore` writes it once for both
// engines and announces every change on `streamtube_recordings` with the recording's id;
// `RecordingCatalog` keeps what the media routes ask on every request in memory.
import Foundation
import Logging
import SQLKit
import Synchronization

package struct RecordingDetails: Codable, Sendable, Equatable {
    package var id: String
    package var streamID: String
    /// Nil: the default (the stream's title with the day it started).
    package var title: String?
    package var description: String
    /// Nil: the stream's.
    package var visibility: StreamRecord.Visibility?
    /// The effective trim, in seconds from the start (segment boundaries), and the numbers of the
    /// first and last segments it keeps: a node holding no copy refuses the others too.
    package var trimStart: Double?
    package var trimEnd: Double?
    package var trimSegments: ClosedRange<Int>?
    /// The uploaded picture's version (a digest of its JPEG); nil: a frame of the recording.
    package var thumbnail: String?
    /// Set once it was deleted: the tombstone.
    package var deletedAt: Date?
    package var updatedAt: Date

    package init(id: String, streamID: String, title: String? = nil, description: String = "", visibility: StreamRecord.Visibility? = nil,
                 trimStart: Double? = nil, trimEnd: Double? = nil, trimSegments: ClosedRange<Int>? = nil, thumbnail: String? = nil,
                 deletedAt: Date? = nil, updatedAt: Date = Date()) {
        self.trimSegments = trimSegments
        self.id = id
        self.streamID = streamID
        self.title = title
        self.description = description
        self.visibility = visibility
        self.trimStart = trimStart
        self.trimEnd = trimEnd
        self.thumbnail = thumbnail
        self.deletedAt = deletedAt
        self.updatedAt = updatedAt
    }

    /// The visibility that applies: its own, else its stream's.
    package func visibility(of stream: StreamRecord) -> StreamRecord.Visibility { visibility ?? stream.visibility }

    /// The title shown: its own, else the stream's title and the day it started (UTC).
    package static func defaultTitle(streamTitle: String, startedAt: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return "\(streamTitle) (\(f.string(from: startedAt)))"
    }

    package static let maxTitle = 200
    package static let maxDescription = StreamDetails.maxDescription

    /// A title or description as a person typed it, checked: trimmed, not empty (a title), not too long, no control characters.
    package static func checked(title raw: String) throws(StreamError) -> String {
        let title = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw .badTitle("a recording's title cannot be empty") }
        guard title.count <= maxTitle else { throw .badTitle("at most \(maxTitle) characters") }
        guard !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badTitle("no control characters")
        }
        return title
    }

    package static func checked(description raw: String) throws(StreamError) -> String {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count <= maxDescription else { throw .badDetails("a description has at most \(maxDescription) characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\r" && $0 != "\t" }) else {
            throw .badDetails("a description has no control characters")
        }
        return text
    }
}

package struct RecordingDetailsStore: Sendable {
    package let database: Database
    /// The channel changes are announced on; the payload is the recording's id.
    package static let changes = "streamtube_recordings"
    static let columns = ["id", "stream_id", "title", "description", "visibility", "trim_start", "trim_end", "trim_first", "trim_last",
                          "thumbnail", "deleted_at", "updated_at"]

    package init(database: Database) {
        self.database = database
    }

    private var sql: any SQLDatabase { database.sql }

    package func details(id: String) async throws -> RecordingDetails? {
        try await sql.select().columns(Self.columns).from("recording_details").where("id", .equal, id).first().flatMap(Self.details)
    }

    /// The details of a stream's recordings (deleted ones too), by id.
    package func details(stream: String) async throws -> [String: RecordingDetails] {
        let rows = try await sql.select().columns(Self.columns).from("recording_details").where("stream_id", .equal, stream).all()
        return Dictionary(rows.compactMap(Self.details).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The details of many streams' recordings, by id.
    package func details(streams: [String]) async throws -> [String: RecordingDetails] {
        guard !streams.isEmpty else { return [:] }
        let rows = try await sql.select().columns(Self.columns).from("recording_details").where("stream_id", .in, streams).all()
        return Dictionary(rows.compactMap(Self.details).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Keeps the details as they are now (made or replaced), unless the recording was deleted:
    /// a tombstone is never taken back. False then.
    @discardableResult
    package func save(_ d: RecordingDetails) async throws -> Bool {
        if let known = try await details(id: d.id), known.deletedAt != nil { return false }
        try await sql.insert(into: "recording_details").columns(Self.columns)
            .values(SQLBind(d.id), SQLBind(d.streamID), Migrations.optional(d.title), SQLBind(d.description),
                    Migrations.optional(d.visibility?.rawValue), Migrations.optional(d.trimStart), Migrations.optional(d.trimEnd),
                    Migrations.optional(d.trimSegments?.lowerBound), Migrations.optional(d.trimSegments?.upperBound),
                    Migrations.optional(d.thumbnail), Migrations.optional(d.deletedAt?.timeIntervalSince1970),
                    SQLBind(d.updatedAt.timeIntervalSince1970))
            .onConflict(with: ["id"]) { u in
                u.set(excludedValueOf: "title").set(excludedValueOf: "description").set(excludedValueOf: "visibility")
                    .set(excludedValueOf: "trim_start").set(excludedValueOf: "trim_end").set(excludedValueOf: "trim_first")
                    .set(excludedValueOf: "trim_last").set(excludedValueOf: "thumbnail")
                    .set(excludedValueOf: "updated_at")
            }
            .run()
        await database.announce(d.id, on: Self.changes)
        return true
    }

    /// Marks a recording deleted (its details kept as the tombstone, its picture dropped).
    package func markDeleted(id: String, stream: String, at time: Date = Date()) async throws {
        try await sql.insert(into: "recording_details").columns("id", "stream_id", "description", "deleted_at", "updated_at")
            .values(SQLBind(id), SQLBind(stream), SQLBind(""), SQLBind(time.timeIntervalSince1970), SQLBind(time.timeIntervalSince1970))
            .onConflict(with: ["id"]) { u in
                u.set("deleted_at", to: SQLBind(time.timeIntervalSince1970)).set("updated_at", to: SQLBind(time.timeIntervalSince1970))
                    .set("thumbnail", to: SQLLiteral.null).set("thumbnail_jpeg", to: SQLLiteral.null)
            }
            .run()
        await database.announce(id, on: Self.changes)
    }

    /// The recordings deleted since `time` (tombstones), oldest first.
    package func deleted(since time: Date = .distantPast) async throws -> [(id: String, stream: String)] {
        let rows = try await sql.select().columns("id", "stream_id").from("recording_details")
            .where("deleted_at", .isNot, SQLLiteral.null)
            .where("deleted_at", .greaterThanOrEqual, SQLBind(max(time.timeIntervalSince1970, 0)))
            .orderBy("deleted_at").all()
        return rows.compactMap { row in
            guard let id = try? row.decode(column: "id", as: String.self), let stream = try? row.decode(column: "stream_id", as: String.self) else {
                return nil
            }
            return (id, stream)
        }
    }

    /// Keeps an uploaded picture (its version and JPEG) with the details.
    package func setThumbnail(_ d: RecordingDetails, jpeg: [UInt8]) async throws -> Bool {
        guard let version = d.thumbnail, try await save(d) else { return false }
        try await sql.update("recording_details").set("thumbnail_jpeg", to: SQLBind(Data(jpeg)))
            .where("id", .equal, d.id).where("thumbnail", .equal, version).run()
        return true
    }

    /// The uploaded picture of a recording, with its version.
    package func thumbnail(id: String) async throws -> (version: String, jpeg: [UInt8])? {
        guard let row = try await sql.select().columns("thumbnail", "thumbnail_jpeg").from("recording_details")
                .where("id", .equal, id).where("deleted_at", .is, SQLLiteral.null).first(),
              let version = try? row.decode(column: "thumbnail", as: String.self),
              let jpeg = try? row.decode(column: "thumbnail_jpeg", as: Data.self) else { return nil }
        return (version, [UInt8](jpeg))
    }

    static func details(_ row: any SQLRow) -> RecordingDetails? {
        guard let id = try? row.decode(column: "id", as: String.self),
              let stream = try? row.decode(column: "stream_id", as: String.self) else { return nil }
        func optional<T: Decodable>(_ column: String, _ type: T.Type) -> T? { (try? row.decode(column: column, as: T?.self)) ?? nil }
        return RecordingDetails(id: id, streamID: stream, title: optional("title", String.self),
                                description: optional("description", String.self) ?? "",
                                visibility: optional("visibility", String.self).flatMap(StreamRecord.Visibility.init(rawValue:)),
                                trimStart: optional("trim_start", Double.self), trimEnd: optional("trim_end", Double.self),
                                trimSegments: optional("trim_first", Int.self).flatMap { first in
                                    optional("trim_last", Int.self).flatMap { $0 >= first ? first...$0 : nil }
                                },
                                thumbnail: optional("thumbnail", String.self),
                                deletedAt: optional("deleted_at", Double.self).map(Date.init(timeIntervalSince1970:)),
                                updatedAt: Date(timeIntervalSince1970: optional("updated_at", Double.self) ?? 0))
    }
}

/// The details the media routes ask on every request of a recording, kept in memory: read from
/// the database once, then until a change notice names the recording (or says anything may have
/// changed), and at most `maxAge` seconds whatever was said — what a lost notice costs.
package final class RecordingCatalog: Sendable {
    package let store: RecordingDetailsStore
    private let logger: Logger
    private let maxAge: Double
    private struct Entry {
        var details: RecordingDetails?
        var readAt: Date
    }
    private let cache = Mutex<[String: Entry]>([:])
    /// Bounds the memory a crawler asking for many ids can take.
    static let maxEntries = 10_000

    package init(store: RecordingDetailsStore, maxAge: Double = 5, logger: Logger) {
        self.store = store
        self.maxAge = maxAge
        self.logger = logger
    }

    /// A recording's details (nil: none were ever set). Throws when the database cannot be read.
    package func details(id: String, now: Date = Date()) async throws -> RecordingDetails? {
        if let e = cache.withLock({ $0[id] }), now.timeIntervalSince(e.readAt) < maxAge { return e.details }
        let d = try await store.details(id: id)
        remember(id, d, now: now)
        return d
    }

    /// Takes what this node changed at once (other nodes hear of it by the notice).
    package func remember(_ id: String, _ d: RecordingDetails?, now: Date = Date()) {
        cache.withLock { c in
            if c.count >= Self.maxEntries { c.removeAll(keepingCapacity: true) }
            c[id] = Entry(details: d, readAt: now)
        }
    }

    package func forget(_ id: String) { _ = cache.withLock { $0.removeValue(forKey: id) } }

    /// Drops what a change notice names, until cancelled; `changed` is told each notice too (the
    /// recorder's deletions follow it).
    package func followChanges(_ changed: @escaping @Sendable (DatabaseChange) async -> Void = { _ in }) async {
        for await change in store.database.changes(on: RecordingDetailsStore.changes) {
            switch change {
            case .changed(let id): forget(id)
            case .unknown: cache.withLock { $0.removeAll() }
            }
            await changed(change)
        }
    }
}
