// The platform database: one SQLite file and its numbered migrations.
import Foundation
import Logging
import SQLiteNIO

package enum DatabaseError: Error, CustomStringConvertible {
    case newerSchema(found: Int, known: Int, path: String)
    case cannotOpen(String, String)

    package var description: String {
        switch self {
        case .newerSchema(let found, let known, let path):
            return "the database \(path) has schema version \(found), newer than this streamtube knows (\(known)): "
                + "run a newer streamtube, or restore a backup made by this version"
        case .cannotOpen(let path, let why): return "cannot open the database \(path): \(why)"
        }
    }
}

/// One schema change, applied once, in order.
package struct Migration: Sendable {
    package var version: Int
    package var name: String
    package var apply: @Sendable (SQLiteConnection) async throws -> Void
}

package final class Database: Sendable {
    package let connection: SQLiteConnection
    package let path: String

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    /// Opens the file and brings its schema up to date.
    package static func open(path: String, logger: Logger, migrations: [Migration]) async throws -> Database {
        let connection: SQLiteConnection
        do { connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger) } catch {
            throw DatabaseError.cannotOpen(path, "\(error)")
        }
        let db = Database(connection: connection, path: path)
        _ = try await connection.query("PRAGMA journal_mode=WAL", [])
        _ = try await connection.query("PRAGMA busy_timeout=5000", [])
        do { try await db.migrate(migrations, logger: logger) } catch {
            try? await connection.close()
            throw error
        }
        return db
    }

    package func schemaVersion() async throws -> Int {
        try await connection.query("PRAGMA user_version", []).first?.column("user_version")?.integer ?? 0
    }

    /// Applies the migrations past the file's version inside one transaction (`BEGIN
    /// IMMEDIATE`: nodes sharing the file wait for each other, and each change is made once).
    package func migrate(_ migrations: [Migration], logger: Logger) async throws {
        let known = migrations.map(\.version).max() ?? 0
        _ = try await connection.query("BEGIN IMMEDIATE", [])
        do {
            let current = try await schemaVersion()
            guard current <= known else { throw DatabaseError.newerSchema(found: current, known: known, path: path) }
            for m in migrations.sorted(by: { $0.version < $1.version }) where m.version > current {
                try await m.apply(connection)
                _ = try await connection.query("PRAGMA user_version = \(m.version)", [])
                logger.info("database migrated", metadata: ["version": "\(m.version)", "migration": "\(m.name)"])
            }
            _ = try await connection.query("COMMIT", [])
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }

    package func close() async {
        try? await connection.close()
    }
}

package enum Migrations {
    /// Every migration, in order; `sealer` seals what is kept secret at rest.
    package static func all(sealer: any SecretSealer) -> [Migration] { [
        Migration(version: 1, name: "streams") { c in
            // Files made before numbered migrations already have the table.
            _ = try await c.query("""
                CREATE TABLE IF NOT EXISTS streams (
                    id TEXT PRIMARY KEY,
                    stream_key TEXT NOT NULL UNIQUE,
                    title TEXT NOT NULL,
                    created_at REAL NOT NULL
                )
                """, [])
        },
        Migration(version: 2, name: "per-stream ladder and preset") { c in
            let columns = try await c.query("PRAGMA table_info(streams)", []).compactMap { $0.column("name")?.string }
            for (column, type) in [("ladder", "TEXT"), ("x264_preset", "TEXT")] where !columns.contains(column) {
                _ = try await c.query("ALTER TABLE streams ADD COLUMN \(column) \(type)", [])
            }
        },
        Migration(version: 3, name: "stream keys kept as a digest and sealed") { c in
            _ = try await c.query("""
                CREATE TABLE streams_v3 (
                    id TEXT PRIMARY KEY,
                    key_digest TEXT NOT NULL UNIQUE,
                    key_sealed TEXT,
                    title TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    ladder TEXT,
                    x264_preset TEXT
                )
                """, [])
            let rows = try await c.query("SELECT id, stream_key, title, created_at, ladder, x264_preset FROM streams", [])
            for row in rows {
                guard let id = row.column("id")?.string, let key = row.column("stream_key")?.string else { continue }
                _ = try await c.query(
                    "INSERT INTO streams_v3 (id, key_digest, key_sealed, title, created_at, ladder, x264_preset) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [.text(id), .text(StreamIdentifiers.digest(key)), .text(try sealer.seal(key)),
                     row.column("title") ?? .null, row.column("created_at") ?? .null, row.column("ladder") ?? .null,
                     row.column("x264_preset") ?? .null])
            }
            _ = try await c.query("DROP TABLE streams", [])
            _ = try await c.query("ALTER TABLE streams_v3 RENAME TO streams", [])
        },
        Migration(version: 4, name: "keep the source rendition whatever its keyframes") { c in
            _ = try await c.query("ALTER TABLE streams ADD COLUMN keep_source INTEGER NOT NULL DEFAULT 0", [])
        },
    ] }
}
