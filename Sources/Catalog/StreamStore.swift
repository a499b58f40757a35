// StreamStore: the queries for stream records.
import Foundation
import SQLiteNIO

package struct StreamStore: Sendable {
    package let database: Database

    package init(database: Database) { self.database = database }

    package func insert(_ r: StreamRecord) async throws {
        _ = try await database.connection.query(
            "INSERT INTO streams (id, stream_key, title, created_at, ladder, x264_preset) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(r.id), .text(r.key), .text(r.title), .float(r.createdAt.timeIntervalSince1970),
             r.ladder.map { .text($0) } ?? .null, r.x264Preset.map { .text($0) } ?? .null])
    }

    package func all() async throws -> [StreamRecord] {
        let rows = try await database.connection.query(
            "SELECT id, stream_key, title, created_at, ladder, x264_preset FROM streams ORDER BY created_at", [])
        return rows.compactMap { row in
            guard let id = row.column("id")?.string, let key = row.column("stream_key")?.string,
                  let title = row.column("title")?.string, let created = row.column("created_at")?.double else { return nil }
            return StreamRecord(id: id, key: key, title: title, createdAt: Date(timeIntervalSince1970: created),
                                ladder: row.column("ladder")?.string, x264Preset: row.column("x264_preset")?.string)
        }
    }
}
