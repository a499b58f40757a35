// StreamStore: the platform's stream records in the embedded SQLite file.
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

struct StreamRecord: Codable, Equatable, Sendable {
    var id: String
    var key: String
    var title: String
    var createdAt: Date
    /// This stream's own ladder ("name:height:kbps,..." or "none") and x264 preset; nil: the node's.
    var ladder: String? = nil
    var x264Preset: String? = nil
}

/// Persists stream records in SQLite (`streamtube.sqlite` in the data directory).
final class StreamStore: Sendable {
    private let connection: SQLiteConnection

    private init(connection: SQLiteConnection) { self.connection = connection }

    static func open(path: String, logger: Logger) async throws -> StreamStore {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let store = StreamStore(connection: connection)
        _ = try await connection.query("PRAGMA journal_mode=WAL", [])
        _ = try await connection.query("""
            CREATE TABLE IF NOT EXISTS streams (
                id TEXT PRIMARY KEY,
                stream_key TEXT NOT NULL UNIQUE,
                title TEXT NOT NULL,
                created_at REAL NOT NULL,
                ladder TEXT,
                x264_preset TEXT
            )
            """, [])
        // Databases made before per-stream ladders get the columns now.
        let columns = try await connection.query("PRAGMA table_info(streams)", []).compactMap { $0.column("name")?.string }
        for (column, type) in [("ladder", "TEXT"), ("x264_preset", "TEXT")] where !columns.contains(column) {
            _ = try await connection.query("ALTER TABLE streams ADD COLUMN \(column) \(type)", [])
        }
        return store
    }

    func insert(_ r: StreamRecord) async throws {
        _ = try await connection.query(
            "INSERT INTO streams (id, stream_key, title, created_at, ladder, x264_preset) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(r.id), .text(r.key), .text(r.title), .float(r.createdAt.timeIntervalSince1970),
             r.ladder.map { .text($0) } ?? .null, r.x264Preset.map { .text($0) } ?? .null])
    }

    func all() async throws -> [StreamRecord] {
        let rows = try await connection.query("SELECT id, stream_key, title, created_at, ladder, x264_preset FROM streams ORDER BY created_at", [])
        return rows.compactMap { row in
            guard let id = row.column("id")?.string, let key = row.column("stream_key")?.string,
                  let title = row.column("title")?.string, let created = row.column("created_at")?.double else { return nil }
            return StreamRecord(id: id, key: key, title: title, createdAt: Date(timeIntervalSince1970: created),
                                ladder: row.column("ladder")?.string, x264Preset: row.column("x264_preset")?.string)
        }
    }

    func close() async {
        try? await connection.close()
    }
}
