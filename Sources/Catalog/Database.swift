// The platform database: one schema on two engines behind one handle. An SQLite file (one
// host, the default) or PostgreSQL (a cluster of hosts), chosen by `--database`; every query is
// written once with SQLKit, and the numbered migrations (`Migrations`) run at start.
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresKit
import SQLiteKit
import SQLiteNIO
import SQLKit

package enum DatabaseError: Error, CustomStringConvertible {
    case newerSchema(found: Int, known: Int, location: String)
    case cannotOpen(String, String)
    case badLocation(String, String)

    package var description: String {
        switch self {
        case .newerSchema(let found, let known, let location):
            return "the database \(location) has schema version \(found), newer than this streamtube knows (\(known)): "
                + "run a newer streamtube, or restore a backup made by this version"
        case .cannotOpen(let location, let why): return "cannot open the database \(location): \(why)"
        case .badLocation(let text, let why):
            return "--database \(text): \(why) (give an SQLite file path, or postgres://user:password@host:5432/database)"
        }
    }
}

/// Where the records live: what `--database` says.
package enum DatabaseLocation: Equatable, Sendable, CustomStringConvertible {
    /// A file; nodes on one host may share it.
    case sqlite(path: String)
    /// A server every node of a cluster uses.
    case postgres(PostgresLocation)

    /// A path (or `sqlite:path`) is an SQLite file; a `postgres://` or `postgresql://` URL a
    /// PostgreSQL database.
    package init(_ text: String) throws {
        let lower = text.lowercased()
        if lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://") {
            self = .postgres(try PostgresLocation(url: text))
        } else if lower.hasPrefix("sqlite:") {
            var path = String(text.dropFirst("sqlite:".count))
            // `sqlite:///abs/path` as well as `sqlite:path`.
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw DatabaseError.badLocation(text, "no file named after sqlite:") }
            self = .sqlite(path: path)
        } else if text.contains("://") {
            throw DatabaseError.badLocation(PostgresLocation.redacted(text), "unknown kind of URL")
        } else {
            guard !text.isEmpty else { throw DatabaseError.badLocation(text, "empty") }
            self = .sqlite(path: text)
        }
    }

    /// Safe to log: a PostgreSQL URL without its password.
    package var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let p): return p.description
        }
    }
}

/// A PostgreSQL server and database, from `postgres://user:password@host:port/database?sslmode=`.
package struct PostgresLocation: Equatable, Sendable, CustomStringConvertible {
    /// libpq's `sslmode`: `disable`; `prefer` (the default: TLS when the server offers it) and
    /// `require` (TLS or nothing), both without checking the certificate, as libpq does;
    /// `verify-ca` (a certificate from a trusted CA) and `verify-full` (and for this host name).
    package enum TLSMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    package var user: String
    package var password: String?
    package var host: String
    package var port: Int
    package var database: String
    package var tls: TLSMode

    package init(url text: String) throws {
        guard let c = URLComponents(string: text), let host = c.host, !host.isEmpty else {
            throw DatabaseError.badLocation(Self.redacted(text), "not a URL with a host")
        }
        guard let user = c.user, !user.isEmpty else {
            throw DatabaseError.badLocation(Self.redacted(text), "no user name (postgres://USER:password@host/database)")
        }
        let database = String(c.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw DatabaseError.badLocation(Self.redacted(text), "no database name after the host (postgres://user@host:5432/DATABASE)")
        }
        var tls = TLSMode.prefer
        for item in c.queryItems ?? [] {
            switch item.name.lowercased() {
            case "sslmode", "tlsmode":
                guard let mode = item.value.flatMap({ TLSMode(rawValue: $0.lowercased()) }) else {
                    throw DatabaseError.badLocation(Self.redacted(text), "sslmode \(item.value ?? "") is not one of "
                        + TLSMode.allCases.map(\.rawValue).joined(separator: ", "))
                }
                tls = mode
            default:
                throw DatabaseError.badLocation(Self.redacted(text), "unknown parameter \(item.name) (known: sslmode)")
            }
        }
        self.user = user
        self.password = c.password
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = c.port ?? 5432
        self.database = database
        self.tls = tls
    }

    /// The URL without the password.
    package var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }

    /// `text` with whatever stands between `user:` and `@` hidden, for error messages about a
    /// URL that did not parse.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].lastIndex(of: "@") else { return text }
        let userinfo = text[scheme.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }

    package func configuration() throws -> SQLPostgresConfiguration {
        let tlsSetting: PostgresConnection.Configuration.TLS
        if tls == .disable {
            tlsSetting = .disable
        } else {
            var client = TLSConfiguration.makeClientConfiguration()
            switch tls {
            case .verifyFull: client.certificateVerification = .fullVerification
            case .verifyCA: client.certificateVerification = .noHostnameVerification
            default: client.certificateVerification = .none
            }
            let context: NIOSSLContext
            do { context = try NIOSSLContext(configuration: client) } catch {
                throw DatabaseError.cannotOpen(description, "TLS: \(error)")
            }
            tlsSetting = [.require, .verifyCA, .verifyFull].contains(tls) ? .require(context) : .prefer(context)
        }
        return SQLPostgresConfiguration(hostname: host, port: port, username: user, password: password, database: database,
                                        tls: tlsSetting)
    }
}

/// One schema change, applied once, in order. `apply` gets the session the migration runs in
/// (inside the transaction); `Migrations.isPostgres` tells the engine where types differ.
package struct Migration: Sendable {
    package var version: Int
    package var name: String
    package var apply: @Sendable (any SQLDatabase) async throws -> Void

    package init(version: Int, name: String, apply: @escaping @Sendable (any SQLDatabase) async throws -> Void) {
        self.version = version
        self.name = name
        self.apply = apply
    }
}

/// A change made elsewhere: by another node (PostgreSQL's NOTIFY) or another process on the
/// same SQLite file.
package enum DatabaseChange: Equatable, Sendable {
    /// What the change's maker announced (a record's id).
    case changed(String)
    /// Anything may have changed: the file was written, or notices may have been missed.
    case unknown
}

/// The handle every store uses: `sql` takes SQLKit queries, written once for both engines.
package final class Database: Sendable {
    package enum Engine: String, Sendable {
        case sqlite, postgres
    }

    /// Unchecked: AsyncKit's pool is safe to share (it locks its own state) but not marked so.
    private enum Backend: @unchecked Sendable {
        case sqlite(SQLiteConnection)
        case postgres(EventLoopGroupConnectionPool<PostgresConnectionSource>, SQLPostgresConfiguration)
    }

    package let location: DatabaseLocation
    package let sql: any SQLDatabase
    /// The migrations this handle applied when it opened (none when the schema was current).
    package let appliedAtOpen: [Int]
    private let backend: Backend
    private let logger: Logger
    /// SQLite: one transaction at a time from this handle, on a connection of its own.
    private let gate = TransactionGate()

    package var engine: Engine {
        switch backend {
        case .sqlite: return .sqlite
        case .postgres: return .postgres
        }
    }

    /// The SQLite connection, for tests that shape a file as an old release left it.
    package var sqliteConnection: SQLiteConnection? {
        if case .sqlite(let c) = backend { return c }
        return nil
    }

    /// Serializes nodes migrating one PostgreSQL database (`pg_advisory_xact_lock`).
    static let migrationLock: Int64 = 0x5354_5245_414D_0001
    /// Connections a node keeps to PostgreSQL, per event loop.
    static let connectionsPerLoop = 4

    private init(location: DatabaseLocation, backend: Backend, sql: any SQLDatabase, appliedAtOpen: [Int], logger: Logger) {
        self.location = location
        self.backend = backend
        self.sql = sql
        self.appliedAtOpen = appliedAtOpen
        self.logger = logger
    }

    /// Opens the SQLite file at `path` and brings its schema up to date.
    package static func open(path: String, logger: Logger, migrations: [Migration]) async throws -> Database {
        try await open(.sqlite(path: path), logger: logger, migrations: migrations)
    }

    /// Opens the database and brings its schema up to date; a schema newer than `migrations`
    /// know is refused.
    package static func open(_ location: DatabaseLocation, logger: Logger, migrations: [Migration]) async throws -> Database {
        let (backend, sql) = try await connect(location, logger: logger)
        let opened = Database(location: location, backend: backend, sql: sql, appliedAtOpen: [], logger: logger)
        let applied: [Int]
        do { applied = try await opened.migrate(migrations, logger: logger) } catch {
            await opened.close()
            if let error = error as? DatabaseError { throw error }
            throw DatabaseError.cannotOpen(location.description, "migrating: \(Self.explain(error))")
        }
        return Database(location: location, backend: backend, sql: sql, appliedAtOpen: applied, logger: logger)
    }

    /// The schema version a database is at, read without changing anything (`streamtube doctor`).
    package static func schemaVersion(at location: DatabaseLocation, logger: Logger) async throws -> Int {
        let (backend, sql) = try await connect(location, logger: logger)
        let opened = Database(location: location, backend: backend, sql: sql, appliedAtOpen: [], logger: logger)
        do {
            let version = try await opened.schemaVersion()
            await opened.close()
            return version
        } catch {
            await opened.close()
            throw DatabaseError.cannotOpen(location.description, Self.explain(error))
        }
    }

    private static func connect(_ location: DatabaseLocation, logger: Logger) async throws -> (Backend, any SQLDatabase) {
        switch location {
        case .sqlite(let path):
            let connection: SQLiteConnection
            do { connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger) } catch {
                throw DatabaseError.cannotOpen(path, "\(error)")
            }
            let sql = connection.sql(queryLogLevel: nil)
            do {
                try await sql.raw("PRAGMA journal_mode=WAL").run()
                try await sql.raw("PRAGMA busy_timeout=5000").run()
            } catch {
                try? await connection.close()
                throw DatabaseError.cannotOpen(path, "\(error)")
            }
            return (.sqlite(connection), sql)
        case .postgres(let p):
            let configuration = try p.configuration()
            let pool = EventLoopGroupConnectionPool(source: PostgresConnectionSource(sqlConfiguration: configuration),
                                                    maxConnectionsPerEventLoop: connectionsPerLoop, requestTimeout: .seconds(10),
                                                    logger: logger, on: MultiThreadedEventLoopGroup.singleton)
            let sql = pool.database(logger: logger).sql(queryLogLevel: nil)
            // A first query now: an unreachable server or a wrong password is said at start.
            do { try await sql.raw("SELECT 1").run() } catch {
                try? await pool.shutdownAsync()
                throw DatabaseError.cannotOpen(p.description, explain(error))
            }
            return (.postgres(pool, configuration), sql)
        }
    }

    /// What went wrong, without what PostgresNIO hides by default and never the password.
    package static func explain(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] {
                return message + (e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = e.underlying { return "\(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }

    /// The newest migration applied: SQLite keeps it in `PRAGMA user_version`, PostgreSQL in
    /// the `schema_version` table (one row per migration applied).
    package func schemaVersion() async throws -> Int {
        switch engine {
        case .sqlite: return try await Self.sqliteVersion(sql)
        case .postgres:
            let exists = try await sql.raw("SELECT to_regclass('schema_version') IS NOT NULL AS present").first()?
                .decode(column: "present", as: Bool.self) ?? false
            return exists ? try await Self.postgresVersion(sql) : 0
        }
    }

    private static func sqliteVersion(_ s: any SQLDatabase) async throws -> Int {
        try await s.raw("PRAGMA user_version").first()?.decode(column: "user_version", as: Int.self) ?? 0
    }

    private static func postgresVersion(_ s: any SQLDatabase) async throws -> Int {
        try await s.raw("SELECT COALESCE(MAX(version), 0) AS version FROM schema_version").first()?
            .decode(column: "version", as: Int.self) ?? 0
    }

    /// Applies the migrations past the database's version inside one transaction and returns
    /// the versions applied. Nodes sharing an SQLite file wait for each other (`BEGIN
    /// IMMEDIATE`); nodes sharing a PostgreSQL database take an advisory lock first, so each
    /// change is made once however many start together.
    @discardableResult
    package func migrate(_ migrations: [Migration], logger: Logger) async throws -> [Int] {
        let known = migrations.map(\.version).max() ?? 0
        let engine = self.engine
        let location = self.location.description
        return try await sql.withSession { s -> [Int] in
            switch engine {
            case .sqlite:
                try await s.raw("BEGIN IMMEDIATE").run()
            case .postgres:
                try await s.raw("BEGIN").run()
            }
            do {
                if engine == .postgres {
                    try await s.raw("SELECT pg_advisory_xact_lock(\(literal: Int(Self.migrationLock)))").run()
                    try await s.create(table: "schema_version").ifNotExists()
                        .column("version", type: .int, .primaryKey(autoIncrement: false))
                        .column("name", type: .text, .notNull)
                        .column("applied_at", type: Migrations.timeType(s), .notNull)
                        .run()
                }
                let current = engine == .sqlite ? try await Self.sqliteVersion(s) : try await Self.postgresVersion(s)
                guard current <= known else { throw DatabaseError.newerSchema(found: current, known: known, location: location) }
                var applied: [Int] = []
                for m in migrations.sorted(by: { $0.version < $1.version }) where m.version > current {
                    try await m.apply(s)
                    switch engine {
                    case .sqlite:
                        try await s.raw("PRAGMA user_version = \(unsafeRaw: String(m.version))").run()
                    case .postgres:
                        try await s.insert(into: "schema_version").columns("version", "name", "applied_at")
                            .values(SQLBind(m.version), SQLBind(m.name), SQLBind(Date().timeIntervalSince1970)).run()
                    }
                    applied.append(m.version)
                    logger.info("database migrated", metadata: ["version": "\(m.version)", "migration": "\(m.name)",
                                                                "engine": "\(engine.rawValue)"])
                }
                try await s.raw("COMMIT").run()
                return applied
            } catch {
                try? await s.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    /// Tells the other nodes that what `payload` names changed (PostgreSQL: `NOTIFY channel`,
    /// delivered to every node listening, this one too). With SQLite there is no one to tell:
    /// nodes sharing the file see it written (`changes`). A failure is logged, not thrown: the
    /// change itself is made, and the other nodes' periodic reload catches up.
    package func announce(_ payload: String, on channel: String) async {
        guard engine == .postgres else { return }
        do { try await sql.raw("SELECT pg_notify(\(bind: channel), \(bind: payload))").run() } catch {
            logger.warning("database change not announced", metadata: ["channel": "\(channel)", "error": "\(Self.explain(error))"])
        }
    }

    /// Changes made elsewhere, until the stream's consumer stops. PostgreSQL: notices on
    /// `channel` (LISTEN, on a connection of its own, made again when it drops; `.unknown`
    /// each time it starts listening, as notices may have been missed). SQLite: `.unknown` when
    /// another connection wrote the file (`PRAGMA data_version`, read every `poll`).
    package func changes(on channel: String, poll: Duration = .milliseconds(500)) -> AsyncStream<DatabaseChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: DatabaseChange.self, bufferingPolicy: .bufferingNewest(1024))
        let logger = self.logger
        let task: Task<Void, Never>
        switch backend {
        case .sqlite:
            let sql = self.sql
            task = Task {
                var last: Int?
                while !Task.isCancelled {
                    if let version = try? await sql.raw("PRAGMA data_version").first()?.decode(column: "data_version", as: Int.self) {
                        if let last, last != version { continuation.yield(.unknown) }
                        last = version
                    }
                    try? await Task.sleep(for: poll)
                }
                continuation.finish()
            }
        case .postgres(_, let configuration):
            let location = self.location.description
            task = Task {
                var delay = Duration.milliseconds(250)
                var id = 0
                while !Task.isCancelled {
                    id += 1
                    do {
                        let connection = try await PostgresConnection.connect(configuration: configuration.coreConfiguration,
                                                                              id: id, logger: logger)
                        do {
                            try await connection.listen(on: channel) { notices in
                                delay = .milliseconds(250)
                                continuation.yield(.unknown)
                                for try await notice in notices { continuation.yield(.changed(notice.payload)) }
                            }
                        } catch {
                            try? await connection.close()
                            throw error
                        }
                        try? await connection.close()
                    } catch {
                        if Task.isCancelled { break }
                        logger.warning("database change notices interrupted; listening again", metadata: [
                            "database": "\(location)", "error": "\(Self.explain(error))", "retryIn": "\(delay)"])
                    }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
                continuation.finish()
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// SQLite: on a connection of its own (the shared connection's other queries must not fall
    /// inside it), one transaction at a time from this handle, `BEGIN IMMEDIATE` so that nodes
    /// sharing the file take turns (the busy timeout waits); PostgreSQL: on one connection of the
    /// pool, READ COMMITTED — make changes that race conditional (unique keys, `UPDATE ... WHERE
    /// state = ...`), not read-then-write.
    package func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        switch (backend, location) {
        case (.sqlite, .sqlite(let path)):
            await gate.acquire()
            do {
                let connection = try await gate.connection(path: path, logger: logger)
                let result = try await Self.run(connection.sql(queryLogLevel: nil), begin: "BEGIN IMMEDIATE", body)
                await gate.release()
                return result
            } catch {
                await gate.release()
                throw error
            }
        default:
            return try await sql.withSession { s in try await Self.run(s, begin: "BEGIN", body) }
        }
    }

    private static func run<T: Sendable>(_ s: any SQLDatabase, begin: String,
                                         _ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await s.raw(SQLQueryString(begin)).run()
        do {
            let result = try await body(s)
            try await s.raw("COMMIT").run()
            return result
        } catch {
            try? await s.raw("ROLLBACK").run()
            throw error
        }
    }

    package func close() async {
        await gate.close()
        switch backend {
        case .sqlite(let c): try? await c.close()
        case .postgres(let pool, _): try? await pool.shutdownAsync()
        }
    }
}

/// Transactions on an SQLite file, one at a time, on a connection opened for them, with a
/// thread of its own: SQLite waits for a lock by blocking its thread, and the connections that
/// wait for this one's transaction to end must not take every thread it needs to end it.
private actor TransactionGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var writer: SQLiteConnection?
    private var thread: NIOThreadPool?

    func acquire() async {
        guard busy else { busy = true; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }

    func connection(path: String, logger: Logger) async throws -> SQLiteConnection {
        if let writer { return writer }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let c: SQLiteConnection
        do {
            c = try await SQLiteConnection.open(storage: .file(path: path), threadPool: pool, logger: logger,
                                                on: MultiThreadedEventLoopGroup.singleton.any())
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
        do {
            try await c.sql(queryLogLevel: nil).raw("PRAGMA busy_timeout=5000").run()
        } catch {
            try? await c.close()
            try? await pool.shutdownGracefully()
            throw error
        }
        (writer, thread) = (c, pool)
        return c
    }

    func close() async {
        try? await writer?.close()
        try? await thread?.shutdownGracefully()
        (writer, thread) = (nil, nil)
    }
}
