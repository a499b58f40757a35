// StreamStore: the queries for stream records.
import Foundation
import SQLiteNIO

/// Stream keys are kept as their digest (to check one presented) and sealed (to show the
/// operator), never in clear.
package struct StreamStore: Sendable {
    package let database: Database
    let sealer: any SecretSealer

    package init(database: Database, sealer: any SecretSealer) {
        self.database = database
        self.sealer = sealer
    }

    package func insert(_ r: StreamRecord) async throws {
        _ = try await database.connection.query(
            "INSERT INTO streams (id, key_digest, key_sealed, title, created_at, ladder, x264_preset, keep_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [.text(r.id), .text(r.keyDigest), try r.key.map { .text(try sealer.seal($0)) } ?? .null, .text(r.title),
             .float(r.createdAt.timeIntervalSince1970), r.ladder.map { .text($0) } ?? .null, r.x264Preset.map { .text($0) } ?? .null,
             .integer(r.keepSource ? 1 : 0)])
    }

    /// Keeps the key of a record stored without one (learned by id, then presented by a broadcaster).
    package func storeKey(id: String, key: String) async throws {
        _ = try await database.connection.query("UPDATE streams SET key_sealed = ? WHERE id = ? AND key_sealed IS NULL",
                                                [.text(try sealer.seal(key)), .text(id)])
    }

    package func all() async throws -> [StreamRecord] {
        let rows = try await database.connection.query(
            "SELECT id, key_digest, key_sealed, title, created_at, ladder, x264_preset, keep_source FROM streams ORDER BY created_at", [])
        return rows.compactMap { row in
            guard let id = row.column("id")?.string, let digest = row.column("key_digest")?.string,
                  let title = row.column("title")?.string, let created = row.column("created_at")?.double else { return nil }
            let key = row.column("key_sealed")?.string.flatMap(sealer.open)
            return StreamRecord(id: id, key: key, keyDigest: digest, title: title, createdAt: Date(timeIntervalSince1970: created),
                                ladder: row.column("ladder")?.string, x264Preset: row.column("x264_preset")?.string,
                                keepSource: (row.column("keep_source")?.integer ?? 0) != 0)
        }
    }
}
