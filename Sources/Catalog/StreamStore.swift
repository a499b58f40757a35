// StreamStore: the queries for stream records, written once for both engines. Every change
// is announced (`Database.announce`) so that nodes sharing a PostgreSQL database reload the
// record at once.
import Foundation
import SQLKit

/// Stream keys are kept as their digest (to check one presented) and sealed (to show the
/// operator), never in clear.
package struct StreamStore: Sendable {
    package let database: Database
    let sealer: any SecretSealer

    /// The channel changes to stream records are announced on; the payload is the stream's id.
    package static let changes = "streamtube_records"
    static let columns = ["id", "key_digest", "key_sealed", "title", "created_at", "ladder", "x264_preset", "keep_source",
                          "owner_account", "description", "tags", "visibility", "starts_at", "time_zone", "allow_guests",
                          "thumbnail_version", "thumbnail_changed_at", "on_air", "record", "channel_recording"]

    package init(database: Database, sealer: any SecretSealer) {
        self.database = database
        self.sealer = sealer
    }

    private var sql: any SQLDatabase { database.sql }

    package func insert(_ r: StreamRecord) async throws {
        try await sql.insert(into: "streams").columns(Self.columns)
            .values(SQLBind(r.id), SQLBind(r.keyDigest), Migrations.optional(try r.key.map(sealer.seal)), SQLBind(r.title),
                    SQLBind(r.createdAt.timeIntervalSince1970), Migrations.optional(r.ladder), Migrations.optional(r.x264Preset),
                    SQLBind(r.keepSource ? 1 : 0), Migrations.optional(r.owner), SQLBind(r.description),
                    SQLBind(r.tags.joined(separator: ",")), SQLBind(r.visibility.rawValue),
                    Migrations.optional(r.startsAt?.timeIntervalSince1970), Migrations.optional(r.timeZone), SQLBind(r.allowGuests ? 1 : 0),
                    Migrations.optional(r.thumbnail), Migrations.optional(r.thumbnailChangedAt?.timeIntervalSince1970),
                    Migrations.optional(r.onAir), Migrations.optional(r.record.map { $0 ? 1 : 0 }),
                    Migrations.optional(r.channelRecording.column))
            .run()
        for c in r.cohosts { try await insertCohost(stream: r.id, c) }
        await database.announce(r.id, on: Self.changes)
    }

    /// Keeps what a person changed (title, description, tags, visibility, schedule, which uploaded picture).
    package func update(_ r: StreamRecord) async throws {
        try await sql.update("streams").set("title", to: SQLBind(r.title)).set("description", to: SQLBind(r.description))
            .set("tags", to: SQLBind(r.tags.joined(separator: ","))).set("visibility", to: SQLBind(r.visibility.rawValue))
            .set("starts_at", to: Migrations.optional(r.startsAt?.timeIntervalSince1970)).set("time_zone", to: Migrations.optional(r.timeZone))
            .set("allow_guests", to: SQLBind(r.allowGuests ? 1 : 0)).set("thumbnail_version", to: Migrations.optional(r.thumbnail))
            .set("thumbnail_changed_at", to: Migrations.optional(r.thumbnailChangedAt?.timeIntervalSince1970))
            .set("record", to: Migrations.optional(r.record.map { $0 ? 1 : 0 }))
            .set("channel_recording", to: Migrations.optional(r.channelRecording.column))
            .where("id", .equal, r.id).run()
        await database.announce(r.id, on: Self.changes)
    }

    /// A new key: the digest and the sealed key replaced in one statement.
    package func replaceKey(id: String, key: String) async throws {
        try await sql.update("streams").set("key_digest", to: SQLBind(StreamIdentifiers.digest(key)))
            .set("key_sealed", to: SQLBind(try sealer.seal(key))).where("id", .equal, id).run()
        await database.announce(id, on: Self.changes)
    }

    /// A key replaced on the node that made the stream: its digest, and no key here.
    package func replaceDigest(id: String, digest: String) async throws {
        // Only where the row still has another digest: a database shared with the node that made
        // the new key holds it already, sealed, and keeps it.
        try await sql.update("streams").set("key_digest", to: SQLBind(digest)).set("key_sealed", to: SQLLiteral.null)
            .where("id", .equal, id).where("key_digest", .notEqual, digest).run()
        await database.announce(id, on: Self.changes)
    }

    /// Deletes a stream's record and remembers that it was deleted (a tombstone), so that a
    /// node that was away cannot bring it back. Also for a stream this database never had.
    package func delete(id: String, at time: Date = Date()) async throws {
        try await sql.delete(from: "stream_thumbnails").where("stream_id", .equal, id).run()
        // SQLite does not enforce the foreign key's cascade unless asked: the co-hosts go first.
        try await sql.delete(from: "cohosts").where("stream_id", .equal, id).run()
        try await sql.delete(from: "streams").where("id", .equal, id).run()
        try await sql.insert(into: "deleted_streams").columns("id", "deleted_at")
            .values(SQLBind(id), SQLBind(time.timeIntervalSince1970)).ignoringConflicts().run()
        await database.announce(id, on: Self.changes)
    }

    /// Whether the stream was deleted (and its tombstone not yet purged).
    package func isDeleted(id: String) async throws -> Bool {
        try await sql.select().column("id").from("deleted_streams").where("id", .equal, id).first() != nil
    }

    /// The streams deleted since `time`, oldest first.
    package func deleted(since time: Date = .distantPast) async throws -> [String] {
        try await sql.select().column("id").from("deleted_streams")
            .where("deleted_at", .greaterThanOrEqual, SQLBind(time.timeIntervalSince1970)).orderBy("deleted_at").all()
            .compactMap { try? $0.decode(column: "id", as: String.self) }
    }

    /// Forgets tombstones older than `time`: a node away longer than that may bring its record back.
    package func purgeDeleted(before time: Date) async throws {
        try await sql.delete(from: "deleted_streams").where("deleted_at", .lessThan, SQLBind(time.timeIntervalSince1970)).run()
    }

    /// Keeps the key of a record stored without one (learned by id, then presented by a broadcaster).
    package func storeKey(id: String, key: String) async throws {
        try await sql.update("streams").set("key_sealed", to: SQLBind(try sealer.seal(key)))
            .where("id", .equal, id).where("key_sealed", .is, SQLLiteral.null)
            .run()
        await database.announce(id, on: Self.changes)
    }

    /// Gives a stream a new title; the record as it is now, nil when there is no such stream.
    package func rename(id: String, title: String) async throws -> StreamRecord? {
        try await sql.update("streams").set("title", to: SQLBind(title)).where("id", .equal, id).run()
        guard let record = try await record(id: id) else { return nil }
        await database.announce(id, on: Self.changes)
        return record
    }

    // MARK: Uploaded thumbnails

    /// Keeps a stream's uploaded picture (replacing the one before); the record names it only
    /// once `setThumbnailVersion` says so, so a reader that finds a version finds its bytes.
    package func putThumbnail(id: String, version: String, jpeg: [UInt8]) async throws {
        try await sql.insert(into: "stream_thumbnails").columns("stream_id", "version", "jpeg")
            .values(SQLBind(id), SQLBind(version), SQLBind(Data(jpeg)))
            .onConflict(with: ["stream_id"]) { try $0.set(excludedValueOf: "version").set(excludedValueOf: "jpeg") }
            .run()
    }

    /// Names the uploaded picture the stream shows (nil: the live pictures again, and the kept
    /// picture is dropped).
    package func setThumbnailVersion(id: String, version: String?, at: Date) async throws {
        try await sql.update("streams").set("thumbnail_version", to: Migrations.optional(version))
            .set("thumbnail_changed_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, id).run()
        if version == nil { try await sql.delete(from: "stream_thumbnails").where("stream_id", .equal, id).run() }
        await database.announce(id, on: Self.changes)
    }

    /// The uploaded picture kept here for a stream, whichever version it is.
    package func thumbnail(id: String) async throws -> (version: String, jpeg: [UInt8])? {
        guard let row = try await sql.select().columns("version", "jpeg").from("stream_thumbnails").where("stream_id", .equal, id).first(),
              let version = try? row.decode(column: "version", as: String.self),
              let jpeg = try? row.decode(column: "jpeg", as: Data.self) else { return nil }
        return (version, [UInt8](jpeg))
    }

    package func record(id: String) async throws -> StreamRecord? {
        guard var r = try await sql.select().columns(Self.columns).from("streams").where("id", .equal, id).first().flatMap(record) else {
            return nil
        }
        r.cohosts = try await cohostRows(sql.select().columns(Self.cohostColumns).from("cohosts").where("stream_id", .equal, id))[id] ?? []
        return r
    }

    package func all() async throws -> [StreamRecord] {
        let cohosts = try await cohostRows(sql.select().columns(Self.cohostColumns).from("cohosts"))
        return try await sql.select().columns(Self.columns).from("streams").orderBy("created_at").all().compactMap(record).map { r in
            var r = r
            r.cohosts = cohosts[r.id] ?? []
            return r
        }
    }

    // MARK: Co-hosts

    static let cohostColumns = ["stream_id", "account_id", "key_digest", "key_sealed", "created_at"]

    /// Adds `cohost` to stream `stream` (with its key sealed when this node has it).
    package func addCohost(stream: String, _ cohost: CoHost) async throws {
        try await insertCohost(stream: stream, cohost)
        await database.announce(stream, on: Self.changes)
    }

    private func insertCohost(stream: String, _ c: CoHost) async throws {
        try await sql.insert(into: "cohosts").columns(Self.cohostColumns)
            .values(SQLBind(stream), SQLBind(c.account), SQLBind(c.keyDigest), Migrations.optional(try c.key.map(sealer.seal)),
                    SQLBind(c.addedAt.timeIntervalSince1970))
            .run()
    }

    /// Removes a co-host; a stream handed to them goes back to its host. False when they were none.
    package func removeCohost(stream: String, account: String) async throws -> Bool {
        let removed = try await sql.delete(from: "cohosts").where("stream_id", .equal, stream).where("account_id", .equal, account)
            .returning("account_id").all()
        try await sql.update("streams").set("on_air", to: SQLLiteral.null).where("id", .equal, stream).where("on_air", .equal, account).run()
        await database.announce(stream, on: Self.changes)
        return !removed.isEmpty
    }

    /// A co-host's new key: the digest and the sealed key replaced in one statement.
    package func replaceCohostKey(stream: String, account: String, key: String) async throws -> Bool {
        let changed = try await sql.update("cohosts").set("key_digest", to: SQLBind(StreamIdentifiers.digest(key)))
            .set("key_sealed", to: SQLBind(try sealer.seal(key)))
            .where("stream_id", .equal, stream).where("account_id", .equal, account).returning("account_id").all()
        await database.announce(stream, on: Self.changes)
        return !changed.isEmpty
    }

    /// Hands the stream to a co-host (their account id), or back to its host (nil).
    package func setOnAir(stream: String, account: String?) async throws {
        try await sql.update("streams").set("on_air", to: Migrations.optional(account)).where("id", .equal, stream).run()
        await database.announce(stream, on: Self.changes)
    }

    /// The co-hosts another node says a stream has (their digests; keys stay where they were
    /// made): what this node kept is replaced, a key it had kept while the digest stands.
    package func replaceCohosts(stream: String, _ cohosts: [CoHost]) async throws {
        let kept = try await cohostRows(sql.select().columns(Self.cohostColumns).from("cohosts").where("stream_id", .equal, stream))[stream] ?? []
        try await sql.delete(from: "cohosts").where("stream_id", .equal, stream).run()
        for var c in cohosts {
            if c.key == nil, let k = kept.first(where: { $0.account == c.account && $0.keyDigest == c.keyDigest }) { c.key = k.key }
            try await insertCohost(stream: stream, c)
        }
        await database.announce(stream, on: Self.changes)
    }

    /// Co-hosts by stream id, oldest first.
    private func cohostRows(_ query: SQLSelectBuilder) async throws -> [String: [CoHost]] {
        var out: [String: [CoHost]] = [:]
        for row in try await query.orderBy("created_at").all() {
            guard let stream = try? row.decode(column: "stream_id", as: String.self),
                  let account = try? row.decode(column: "account_id", as: String.self),
                  let digest = try? row.decode(column: "key_digest", as: String.self),
                  let created = try? row.decode(column: "created_at", as: Double.self) else { continue }
            let key = (try? row.decode(column: "key_sealed", as: String?.self))?.flatMap(sealer.open)
            out[stream, default: []].append(CoHost(account: account, key: key, keyDigest: digest, addedAt: Date(timeIntervalSince1970: created)))
        }
        return out
    }

    private func record(_ row: any SQLRow) -> StreamRecord? {
        guard let id = try? row.decode(column: "id", as: String.self),
              let digest = try? row.decode(column: "key_digest", as: String.self),
              let title = try? row.decode(column: "title", as: String.self),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        let key = (try? row.decode(column: "key_sealed", as: String?.self))?.flatMap(sealer.open)
        return StreamRecord(id: id, key: key, keyDigest: digest, title: title, createdAt: Date(timeIntervalSince1970: created),
                            ladder: try? row.decode(column: "ladder", as: String?.self),
                            x264Preset: try? row.decode(column: "x264_preset", as: String?.self),
                            keepSource: ((try? row.decode(column: "keep_source", as: Int.self)) ?? 0) != 0,
                            owner: try? row.decode(column: "owner_account", as: String?.self),
                            description: (try? row.decode(column: "description", as: String.self)) ?? "",
                            tags: ((try? row.decode(column: "tags", as: String.self)) ?? "").split(separator: ",").map(String.init),
                            visibility: (try? row.decode(column: "visibility", as: String.self)).flatMap(StreamRecord.Visibility.init) ?? .public,
                            startsAt: ((try? row.decode(column: "starts_at", as: Double?.self)) ?? nil).map(Date.init(timeIntervalSince1970:)),
                            timeZone: (try? row.decode(column: "time_zone", as: String?.self)) ?? nil,
                            allowGuests: ((try? row.decode(column: "allow_guests", as: Int.self)) ?? 0) != 0,
                            thumbnail: (try? row.decode(column: "thumbnail_version", as: String?.self)) ?? nil,
                            thumbnailChangedAt: ((try? row.decode(column: "thumbnail_changed_at", as: Double?.self)) ?? nil)
                                .map(Date.init(timeIntervalSince1970:)),
                            onAir: (try? row.decode(column: "on_air", as: String?.self)) ?? nil,
                            record: ((try? row.decode(column: "record", as: Int?.self)) ?? nil).map { $0 != 0 },
                            channelRecording: ChannelRecording(column: (try? row.decode(column: "channel_recording", as: String?.self)) ?? nil))
    }
}
