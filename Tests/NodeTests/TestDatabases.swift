import Catalog
import Foundation
import Logging
import PostgresKit
import XCTest

/// The engines every repository test runs on: a new SQLite file always, and a new PostgreSQL
/// database when `STREAMTUBE_TEST_POSTGRES` names a server (`ops/test` starts one with
/// `ops/test-postgres` and sets it; so does `STREAMTUBE_TEST_POSTGRES=$(ops/test-postgres start
/// DIR) swift test` by hand).
enum TestDatabases {
    static let logger = Logger(label: "test")

    static var postgresURL: String? {
        ProcessInfo.processInfo.environment["STREAMTUBE_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// One new, empty database on each engine there is.
    static func fresh() async throws -> [DatabaseLocation] {
        var locations: [DatabaseLocation] = [.sqlite(path: tempFile())]
        if postgresURL != nil { locations.append(try await freshPostgres()) }
        return locations
    }

    static func tempFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString).sqlite").path
    }

    /// A database made now on the test server (`CREATE DATABASE`), its URL.
    static func freshPostgres() async throws -> DatabaseLocation {
        guard let url = postgresURL else { throw XCTSkip("no PostgreSQL: set STREAMTUBE_TEST_POSTGRES (ops/test does)") }
        guard case .postgres(var server) = try DatabaseLocation(url) else {
            XCTFail("STREAMTUBE_TEST_POSTGRES is not a postgres:// URL: \(url)")
            throw XCTSkip("bad STREAMTUBE_TEST_POSTGRES")
        }
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let connection = try await PostgresConnection.connect(configuration: try server.configuration().coreConfiguration, id: 1,
                                                              logger: logger)
        do {
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        server.database = name
        return .postgres(server)
    }

    /// Two nodes' handles on one database and their catalogs, loaded.
    static func twoNodes(_ location: DatabaseLocation, sealer: any SecretSealer) async throws
        -> (Database, Database, StreamCatalog, StreamCatalog) {
        let migrations = Migrations.all(sealer: sealer)
        let dbA = try await Database.open(location, logger: logger, migrations: migrations)
        let dbB = try await Database.open(location, logger: logger, migrations: migrations)
        let a = StreamCatalog(store: StreamStore(database: dbA, sealer: sealer), logger: logger)
        let b = StreamCatalog(store: StreamStore(database: dbB, sealer: sealer), logger: logger)
        try await a.load()
        try await b.load()
        return (dbA, dbB, a, b)
    }

    static func engine(_ location: DatabaseLocation) -> String {
        if case .postgres = location { return "postgres" }
        return "sqlite"
    }
}

extension XCTestCase {
    /// Waits for `condition` (what another node sharing the database should see soon), failing after `timeout`.
    func waitUntil(_ at: String, _ what: String, timeout: Duration = .seconds(3), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else {
                XCTFail("\(at): timed out waiting for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
