import Catalog
import Cluster
import Foundation
import Logging
import SQLiteNIO
import XCTest

/// The database and its migrations, on real SQLite files.
final class CatalogTests: XCTestCase {
    let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
    let logger = Logger(label: "test")

    func tempFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString).sqlite").path
    }

    /// A file as the first releases left it: the streams table with the key in clear, no version.
    func makeLegacyFile(withLadderColumns: Bool) async throws -> String {
        let path = tempFile()
        let c = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        _ = try await c.query("CREATE TABLE streams (id TEXT PRIMARY KEY, stream_key TEXT NOT NULL UNIQUE, title TEXT NOT NULL, created_at REAL NOT NULL"
                              + (withLadderColumns ? ", ladder TEXT, x264_preset TEXT)" : ")"), [])
        _ = try await c.query("INSERT INTO streams (id, stream_key, title, created_at) VALUES ('s1', 'key1', 'Old', 1000)", [])
        try await c.close()
        return path
    }

    func testEveryEarlierSchemaMigratesAndKeepsItsStreams() async throws {
        for ladderColumns in [false, true] {
            let path = try await makeLegacyFile(withLadderColumns: ladderColumns)
            let db = try await Database.open(path: path, logger: logger, migrations: Migrations.all(sealer: sealer))
            let version = try await db.schemaVersion()
            XCTAssertEqual(version, Migrations.all(sealer: sealer).count)
            let records = try await StreamStore(database: db, sealer: sealer).all()
            XCTAssertEqual(records.map(\.id), ["s1"])
            XCTAssertEqual(records.first?.key, "key1", "the key opens again")
            XCTAssertEqual(records.first?.keyDigest, StreamIdentifiers.digest("key1"))
            let raw = try await db.connection.query("SELECT * FROM streams", [])
            XCTAssertFalse("\(raw)".contains("key1"), "no key in clear at rest")
            await db.close()
        }
    }

    /// A file at each numbered version migrates to the newest, its streams kept.
    func testEveryNumberedSchemaMigratesToTheNewest() async throws {
        let all = Migrations.all(sealer: sealer)
        for from in 1..<all.count {
            let path = tempFile()
            let old = try await Database.open(path: path, logger: logger, migrations: Array(all.prefix(from)))
            if from >= 3 {
                _ = try await old.connection.query(
                    "INSERT INTO streams (id, key_digest, key_sealed, title, created_at) VALUES ('s1', ?, ?, 'Old', 1000)",
                    [.text(StreamIdentifiers.digest("key1")), .text(try sealer.seal("key1"))])
            } else {
                _ = try await old.connection.query(
                    "INSERT INTO streams (id, stream_key, title, created_at) VALUES ('s1', 'key1', 'Old', 1000)", [])
            }
            await old.close()
            let db = try await Database.open(path: path, logger: logger, migrations: all)
            let version = try await db.schemaVersion()
            XCTAssertEqual(version, all.count, "from \(from)")
            let records = try await StreamStore(database: db, sealer: sealer).all()
            XCTAssertEqual(records.map(\.id), ["s1"], "from \(from)")
            XCTAssertEqual(records.first?.key, "key1", "from \(from)")
            XCTAssertEqual(records.first?.keepSource, false, "from \(from): the default")
            await db.close()
        }
    }

    func testAStreamsOwnSettingsAreKept() async throws {
        let db = try await Database.open(path: tempFile(), logger: logger, migrations: Migrations.all(sealer: sealer))
        let store = StreamStore(database: db, sealer: sealer)
        try await store.insert(StreamRecord(id: "k", key: "kk", title: "K", createdAt: Date(), ladder: "240p:240:400",
                                            x264Preset: "ultrafast", keepSource: true))
        try await store.insert(StreamRecord(id: "n", key: "nn", title: "N", createdAt: Date()))
        let byID = Dictionary(uniqueKeysWithValues: try await store.all().map { ($0.id, $0) })
        XCTAssertEqual(byID["k"]?.keepSource, true)
        XCTAssertEqual(byID["k"]?.ladder, "240p:240:400")
        XCTAssertEqual(byID["n"]?.keepSource, false)
        await db.close()
    }

    func testMigrationsRunOnceAndANewerSchemaIsRefused() async throws {
        let path = tempFile()
        let db = try await Database.open(path: path, logger: logger, migrations: Migrations.all(sealer: sealer))
        let store = StreamStore(database: db, sealer: sealer)
        try await store.insert(StreamRecord(id: "a", key: "k", title: "A", createdAt: Date()))
        await db.close()
        let again = try await Database.open(path: path, logger: logger, migrations: Migrations.all(sealer: sealer))
        let count = try await StreamStore(database: again, sealer: sealer).all().count
        XCTAssertEqual(count, 1)
        _ = try await again.connection.query("PRAGMA user_version = 99", [])
        await again.close()
        do {
            _ = try await Database.open(path: path, logger: logger, migrations: Migrations.all(sealer: sealer))
            XCTFail("a newer schema must be refused")
        } catch let error as DatabaseError {
            XCTAssertTrue("\(error)".contains("schema version 99, newer than this streamtube knows"), "\(error)")
        }
    }

    func testACatalogLearnsAKeyOnlyFromTheBroadcasterWhoHasIt() async throws {
        let db = try await Database.open(path: tempFile(), logger: logger, migrations: Migrations.all(sealer: sealer))
        let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
        // Learned from a peer by id: the digest, not the key.
        await catalog.adopt(StreamRecord(id: "s9", key: nil, keyDigest: StreamIdentifiers.digest("secret"), title: "T", createdAt: Date()))
        XCTAssertNil(catalog.record(id: "s9")?.key)
        XCTAssertNil(catalog.record(key: "wrong"))
        let found = await catalog.find(key: "secret")
        XCTAssertEqual(found?.key, "secret")
        try await catalog.load()
        XCTAssertEqual(catalog.record(id: "s9")?.key, "secret", "kept sealed in the database")
        await db.close()
    }

    func testUnknownIdsCostThePeersABoundedNumberOfQuestions() async throws {
        let db = try await Database.open(path: tempFile(), logger: logger, migrations: Migrations.all(sealer: sealer))
        let clock = Clock()
        let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger, now: { clock.seconds })
        let asked = Counter()
        catalog.lookUpPeers { _ in asked.add(); return nil }
        for _ in 0..<10_000 { _ = await catalog.find(id: StreamIdentifiers.randomID(length: 12)) }
        XCTAssertEqual(asked.value, Int(StreamCatalog.lookupBurst), "a burst, then nothing while no time passes")
        clock.seconds += 10
        for _ in 0..<10_000 { _ = await catalog.find(id: StreamIdentifiers.randomID(length: 12)) }
        XCTAssertEqual(asked.value, Int(StreamCatalog.lookupBurst) * 2, "ten seconds refill the bucket, no more")
        // The same unknown id is not asked again for a while, even with budget to spare.
        clock.seconds += 100
        let before = asked.value
        for _ in 0..<5 { _ = await catalog.find(id: "samestream") }
        XCTAssertEqual(asked.value, before + 1)
        await db.close()
    }
}

final class Clock: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 1_000_000.0
    var seconds: Double {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
