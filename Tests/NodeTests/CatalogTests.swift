import Catalog
import Cluster
import Foundation
import Logging
import SQLiteNIO
import SQLKit
import XCTest

/// The database, its migrations and the stores, on real SQLite files and, when the suite has
/// one (`STREAMTUBE_TEST_POSTGRES`, set by `ops/test`), a real PostgreSQL server.
final class CatalogTests: XCTestCase {
    let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
    let logger = Logger(label: "test")

    func tempFile() -> String { TestDatabases.tempFile() }

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
            XCTAssertEqual(version, Migrations.all(sealer: sealer).last?.version)
            let records = try await StreamStore(database: db, sealer: sealer).all()
            XCTAssertEqual(records.map(\.id), ["s1"])
            XCTAssertEqual(records.first?.key, "key1", "the key opens again")
            XCTAssertEqual(records.first?.keyDigest, StreamIdentifiers.digest("key1"))
            XCTAssertNil(records.first?.owner)
            let raw = try await db.sqliteConnection!.query("SELECT * FROM streams", [])
            XCTAssertFalse("\(raw)".contains("key1"), "no key in clear at rest")
            await db.close()
        }
    }

    /// A database at each numbered version migrates to the newest, its streams kept: on SQLite
    /// and on PostgreSQL.
    func testEveryNumberedSchemaMigratesToTheNewest() async throws {
        let all = Migrations.all(sealer: sealer)
        // By position: the numbers may skip one another branch takes.
        let versions = all.map(\.version)
        for from in 1..<all.count {
            for location in try await TestDatabases.fresh() {
                let at = "from \(from) on \(TestDatabases.engine(location))"
                let old = try await Database.open(location, logger: logger, migrations: Array(all.prefix(from)))
                XCTAssertEqual(old.appliedAtOpen, Array(versions.prefix(from)), at)
                if from >= 3 {
                    try await old.sql.raw("""
                        INSERT INTO streams (id, key_digest, key_sealed, title, created_at) \
                        VALUES ('s1', \(bind: StreamIdentifiers.digest("key1")), \(bind: try sealer.seal("key1")), 'Old', 1000)
                        """).run()
                } else {
                    try await old.sql.raw("INSERT INTO streams (id, stream_key, title, created_at) VALUES ('s1', 'key1', 'Old', 1000)").run()
                }
                if from == 5 {
                    // An account of schema 5 (before sign-in): kept, with no password and its address unverified.
                    try await old.sql.raw("""
                        INSERT INTO accounts (id, email, display_name, role, created_at) VALUES ('a1', 'ann@example.com', 'Ann', 'admin', 1000)
                        """).run()
                }
                await old.close()
                let db = try await Database.open(location, logger: logger, migrations: all)
                XCTAssertEqual(db.appliedAtOpen, Array(versions.dropFirst(from)), at)
                if from == 5 {
                    let accounts = AccountStore(database: db)
                    let ann = try await accounts.account(id: "a1")
                    XCTAssertEqual(ann?.email, "ann@example.com", at)
                    XCTAssertEqual(ann?.role, .admin, at)
                    XCTAssertEqual(ann?.emailVerified, false, at)
                    let hash = try await accounts.passwordHash(id: "a1")
                    XCTAssertNil(hash, at)
                }
                let version = try await db.schemaVersion()
                XCTAssertEqual(version, versions.last, at)
                let records = try await StreamStore(database: db, sealer: sealer).all()
                XCTAssertEqual(records.map(\.id), ["s1"], at)
                XCTAssertEqual(records.first?.key, "key1", at)
                XCTAssertEqual(records.first?.createdAt.timeIntervalSince1970, 1000, at)
                XCTAssertEqual(records.first?.keepSource, false, "\(at): the default")
                XCTAssertNil(records.first?.owner, "\(at): no owner")
                await db.close()
            }
        }
    }

    func testAStreamsOwnSettingsAreKept() async throws {
        for location in try await TestDatabases.fresh() {
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let store = StreamStore(database: db, sealer: sealer)
            let created = Date(timeIntervalSince1970: 1_764_000_000.125)
            try await store.insert(StreamRecord(id: "k", key: "kk", title: "K", createdAt: created, ladder: "240p:240:400",
                                                x264Preset: "ultrafast", keepSource: true))
            try await store.insert(StreamRecord(id: "n", key: "nn", title: "N", createdAt: Date()))
            let byID = Dictionary(uniqueKeysWithValues: try await store.all().map { ($0.id, $0) })
            let at = TestDatabases.engine(location)
            XCTAssertEqual(byID["k"]?.keepSource, true, at)
            XCTAssertEqual(byID["k"]?.ladder, "240p:240:400", at)
            XCTAssertEqual(byID["k"]?.x264Preset, "ultrafast", at)
            XCTAssertEqual(byID["k"]?.key, "kk", at)
            XCTAssertEqual(byID["k"]?.createdAt, created, "\(at): a time to the millisecond and finer")
            XCTAssertEqual(byID["n"]?.keepSource, false, at)
            XCTAssertNil(byID["n"]?.ladder, at)
            // Recording: unset (its channel's) and the channel's defaults, until set; then kept as set.
            XCTAssertNil(byID["n"]?.record, at)
            XCTAssertEqual(byID["n"]?.channelRecording, ChannelRecording(), at)
            XCTAssertEqual(byID["n"]?.isRecorded, true, at)
            var n = try XCTUnwrap(byID["n"])
            n.record = false
            n.channelRecording = ChannelRecording(records: true, keepDays: 30, keepBytes: 5 << 20)
            try await store.update(n)
            var back = try await store.record(id: "n")
            XCTAssertEqual(back?.record, false, at)
            XCTAssertEqual(back?.channelRecording, ChannelRecording(records: true, keepDays: 30, keepBytes: 5 << 20), at)
            XCTAssertEqual(back?.isRecorded, false, at)
            n.record = nil
            n.channelRecording.records = false
            try await store.update(n)
            back = try await store.record(id: "n")
            XCTAssertNil(back?.record, at)
            XCTAssertEqual(back?.isRecorded, false, "\(at): as its channel says")
            let one = try await store.record(id: "k")
            XCTAssertEqual(one, byID["k"], at)
            let none = try await store.record(id: "nope")
            XCTAssertNil(none, at)
            await db.close()
        }
    }

    func testMigrationsRunOnceAndANewerSchemaIsRefused() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            XCTAssertEqual(db.appliedAtOpen.count, Migrations.all(sealer: sealer).count, at)
            let store = StreamStore(database: db, sealer: sealer)
            try await store.insert(StreamRecord(id: "a", key: "k", title: "A", createdAt: Date()))
            await db.close()
            let again = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            XCTAssertEqual(again.appliedAtOpen, [], "\(at): nothing to do the second time")
            let count = try await StreamStore(database: again, sealer: sealer).all().count
            XCTAssertEqual(count, 1, at)
            switch again.engine {
            case .sqlite: try await again.sql.raw("PRAGMA user_version = 99").run()
            case .postgres:
                try await again.sql.raw("INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'from the future', 0)").run()
            }
            await again.close()
            do {
                _ = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
                XCTFail("\(at): a newer schema must be refused")
            } catch let error as DatabaseError {
                XCTAssertTrue("\(error)".contains("schema version 99, newer than this streamtube knows (\(Migrations.all(sealer: sealer).last?.version ?? 0))"),
                              "\(at): \(error)")
                XCTAssertTrue("\(error)".contains("run a newer streamtube"), "\(at): \(error)")
            }
        }
    }

    /// Three nodes starting at the same moment on one new PostgreSQL database: each migration is
    /// applied once, by one of them (the advisory lock), and all three start.
    func testThreeNodesStartingTogetherApplyEachMigrationOnce() async throws {
        let location = try await TestDatabases.freshPostgres()
        let migrations = Migrations.all(sealer: sealer)
        let logger = self.logger
        let opened = try await withThrowingTaskGroup(of: Database.self) { group in
            for _ in 0..<3 { group.addTask { try await Database.open(location, logger: logger, migrations: migrations) } }
            var all: [Database] = []
            for try await db in group { all.append(db) }
            return all
        }
        XCTAssertEqual(opened.count, 3)
        XCTAssertEqual(opened.flatMap(\.appliedAtOpen).sorted(), migrations.map(\.version), "each migration once in all")
        XCTAssertEqual(opened.filter { !$0.appliedAtOpen.isEmpty }.count, 1, "one node migrated, the others found it done")
        let rows = try await opened[0].sql.raw("SELECT version FROM schema_version ORDER BY version").all()
            .map { try $0.decode(column: "version", as: Int.self) }
        XCTAssertEqual(rows, migrations.map(\.version), "the log: one row per migration")
        for db in opened {
            let version = try await db.schemaVersion()
            XCTAssertEqual(version, migrations.last?.version)
            await db.close()
        }
    }

    func testAccountsOwnStreams() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let accounts = AccountStore(database: db)
            let ana = Account(email: "  Ana@Example.org ", displayName: "Ana", role: .broadcaster)
            try await accounts.insert(ana)
            let byEmail = try await accounts.account(email: "ana@example.ORG")
            XCTAssertEqual(byEmail?.id, ana.id, at)
            XCTAssertEqual(byEmail?.email, "ana@example.org", at)
            XCTAssertEqual(byEmail?.role, .broadcaster, at)
            let byID = try await accounts.account(id: ana.id)
            XCTAssertEqual(byID?.displayName, "Ana", at)
            do {
                try await accounts.insert(Account(email: "ANA@example.org", displayName: "Other", role: .viewer))
                XCTFail("\(at): one account an email")
            } catch let e as AccountError {
                XCTAssertEqual(e, .emailTaken("ana@example.org"), at)
            }
            let store = StreamStore(database: db, sealer: sealer)
            try await store.insert(StreamRecord(id: "owned", key: "ok", title: "Ana's", createdAt: Date(), owner: ana.id))
            try await store.insert(StreamRecord(id: "operators", key: "ak", title: "The operator's", createdAt: Date()))
            let owned = try await store.record(id: "owned")
            XCTAssertEqual(owned?.owner, ana.id, at)
            let operators = try await store.record(id: "operators")
            XCTAssertNil(operators?.owner, at)
            if db.engine == .postgres {
                do {
                    try await store.insert(StreamRecord(id: "stray", key: "sk", title: "T", createdAt: Date(), owner: "noaccount"))
                    XCTFail("an owner must be an account")
                } catch {}
            }
            // The role is one of three.
            do {
                try await db.sql.raw("INSERT INTO accounts (id, email, display_name, role, created_at) VALUES ('x', 'x@y', 'X', 'god', 0)").run()
                XCTFail("\(at): no such role")
            } catch {}
            await db.close()
        }
    }

    /// Two nodes on one database: a stream renamed on one shows its new title on the other
    /// within a second (PostgreSQL: NOTIFY; a shared SQLite file: its data version, read twice
    /// a second), and a stream made on one is known on the other without a miss.
    func testAChangeOnOneNodeReachesTheOtherWithinASecond() async throws {
        for location in try await TestDatabases.fresh() { try await sharingOneDatabase(location) { a, b, _ in
            let at = TestDatabases.engine(location)
            let s = try await a.create(title: "Before")
            try await waitUntil(at, "the new stream on b") { b.record(id: s.id) != nil }
            let started = ContinuousClock.now
            let renamed = try await a.rename(id: s.id, title: "  After  ")
            XCTAssertEqual(renamed?.title, "After", at)
            XCTAssertEqual(a.record(id: s.id)?.title, "After", "\(at): at once on the node that renamed it")
            try await waitUntil(at, "the new title on b") { b.record(id: s.id)?.title == "After" }
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), at)
            XCTAssertEqual(b.record(id: s.id)?.key, s.key, "\(at): the key opens on b too (one cluster key)")
            let missing = try await a.rename(id: "nosuchstream", title: "X")
            XCTAssertNil(missing, at)
            do {
                _ = try await a.rename(id: s.id, title: "   ")
                XCTFail("\(at): an empty title")
            } catch let e as StreamError {
                XCTAssertEqual(e, .badTitle("a stream needs a title"), at)
            }
        } }
    }

    /// A new key made on one node reaches a node sharing its database as a record with the digest
    /// only (as placement sends it): the shared row keeps the sealed key, and the key opens there.
    func testANewKeyPlacedOnANodeSharingTheDatabaseKeepsTheSealedKey() async throws {
        for location in try await TestDatabases.fresh() {
            // Not following the database's changes: b learns the new key only from the placement.
            let (db, dbB, a, b) = try await TestDatabases.twoNodes(location, sealer: sealer)
            let at = TestDatabases.engine(location)
            let s = try await a.create(title: "Keyed")
            await b.adopt(s)
            let rekeyed = try await a.rotateKey(id: s.id)
            let newKey = try XCTUnwrap(rekeyed?.key, at)
            var placed = try XCTUnwrap(rekeyed, at)
            placed.key = nil
            await b.adopt(placed)
            XCTAssertEqual(b.record(id: s.id)?.key, newKey, "\(at): the key opens on b")
            let row = try await StreamStore(database: db, sealer: sealer).record(id: s.id)
            XCTAssertEqual(row?.keyDigest, StreamIdentifiers.digest(newKey), at)
            XCTAssertEqual(row?.key, newKey, "\(at): the shared row still holds the key, sealed")
            await db.close()
            await dbB.close()
        }
    }

    /// Two nodes sharing the database at `location` (catalogs a and b, b following what changes,
    /// already listening), handed to `body` with a's database; closed after.
    func sharingOneDatabase(_ location: DatabaseLocation,
                            _ body: (StreamCatalog, StreamCatalog, Database) async throws -> Void) async throws {
        let (dbA, dbB, a, b) = try await TestDatabases.twoNodes(location, sealer: sealer)
        let following = Task { await b.followChanges() }
        let outcome: Result<Void, any Error>
        do {
            // Listening (PostgreSQL) or the first data version read (SQLite) before any change.
            try await Task.sleep(for: .milliseconds(700))
            try await body(a, b, dbA)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        following.cancel()
        await following.value
        await dbA.close()
        await dbB.close()
        try outcome.get()
    }

    func testWhereTheDatabaseIsAndWhatIsLogged() throws {
        XCTAssertEqual(try DatabaseLocation("data/streamtube.sqlite"), .sqlite(path: "data/streamtube.sqlite"))
        XCTAssertEqual(try DatabaseLocation("sqlite:rel.sqlite"), .sqlite(path: "rel.sqlite"))
        XCTAssertEqual(try DatabaseLocation("sqlite:///var/lib/st.sqlite"), .sqlite(path: "/var/lib/st.sqlite"))
        guard case .postgres(let p) = try DatabaseLocation("postgres://stream:s%40cret@db.example:6543/platform?sslmode=require") else {
            return XCTFail("a postgres URL")
        }
        XCTAssertEqual(p.user, "stream")
        XCTAssertEqual(p.password, "s@cret", "percent-escapes decoded")
        XCTAssertEqual(p.host, "db.example")
        XCTAssertEqual(p.port, 6543)
        XCTAssertEqual(p.database, "platform")
        XCTAssertEqual(p.tls, .require)
        XCTAssertEqual("\(p)", "postgres://stream:***@db.example:6543/platform?sslmode=require")
        guard case .postgres(let q) = try DatabaseLocation("postgresql://u@[::1]/d") else { return XCTFail("a postgresql URL") }
        XCTAssertEqual(q.host, "::1")
        XCTAssertEqual(q.port, 5432)
        XCTAssertEqual(q.tls, .prefer, "libpq's default")
        XCTAssertEqual("\(q)", "postgres://u@[::1]:5432/d?sslmode=prefer")
        for (bad, why) in [("postgres://u:pw@host:5432/", "no database name"), ("postgres://host/db", "no user name"),
                           ("postgres://u:pw@host/db?sslmode=sometimes", "sslmode sometimes"),
                           ("postgres://u:pw@host/db?color=blue", "unknown parameter color"),
                           ("mysql://u:pw@host/db", "unknown kind of URL"), ("", "empty")] {
            do {
                _ = try DatabaseLocation(bad)
                XCTFail("\(bad) must be refused")
            } catch {
                XCTAssertTrue("\(error)".contains(why), "\(bad): \(error)")
                XCTAssertFalse("\(error)".contains("pw"), "\(bad): no password in \(error)")
            }
        }
    }

    func testAnUnreachableServerIsSaidAtOnceWithoutThePassword() async throws {
        // Port 1 on the loopback: nothing listens, the connection is refused at once.
        let location = try DatabaseLocation("postgres://streamtube:hunter2@127.0.0.1:1/platform?sslmode=disable")
        do {
            _ = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            XCTFail("nothing listens there")
        } catch let error as DatabaseError {
            XCTAssertTrue("\(error)".hasPrefix("cannot open the database postgres://streamtube:***@127.0.0.1:1/platform"), "\(error)")
            XCTAssertFalse("\(error)".contains("hunter2"), "\(error)")
        }
    }

    func testACatalogLearnsAKeyOnlyFromTheBroadcasterWhoHasIt() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            // Learned from a peer by id: the digest, not the key.
            await catalog.adopt(StreamRecord(id: "s9", key: nil, keyDigest: StreamIdentifiers.digest("secret"), title: "T", createdAt: Date()))
            XCTAssertNil(catalog.record(id: "s9")?.key, at)
            XCTAssertNil(catalog.record(key: "wrong"), at)
            let found = await catalog.find(key: "secret")
            XCTAssertEqual(found?.key, "secret", at)
            try await catalog.load()
            XCTAssertEqual(catalog.record(id: "s9")?.key, "secret", "\(at): kept sealed in the database")
            let fresh = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            try await fresh.load()
            XCTAssertEqual(fresh.record(id: "s9")?.key, "secret", "\(at): read back from the database")
            await db.close()
        }
    }

    func testUnknownIdsCostThePeersABoundedNumberOfQuestions() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let clock = Clock()
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger, now: { clock.seconds })
            let asked = Counter()
            catalog.lookUpPeers { _ in asked.add(); return nil }
            for _ in 0..<10_000 { _ = await catalog.find(id: StreamIdentifiers.randomID(length: 12)) }
            XCTAssertEqual(asked.value, Int(StreamCatalog.lookupBurst), "\(at): a burst, then nothing while no time passes")
            clock.seconds += 10
            for _ in 0..<10_000 { _ = await catalog.find(id: StreamIdentifiers.randomID(length: 12)) }
            XCTAssertEqual(asked.value, Int(StreamCatalog.lookupBurst) * 2, "\(at): ten seconds refill the bucket, no more")
            // The same unknown id is not asked again for a while, even with budget to spare.
            clock.seconds += 100
            let before = asked.value
            for _ in 0..<5 { _ = await catalog.find(id: "samestream") }
            XCTAssertEqual(asked.value, before + 1, at)
            await db.close()
        }
    }
}

extension CatalogTests {
    /// What a catalog tells the cluster, and what it takes from it, when a stream is changed or
    /// deleted on another node: changes only for records kept here, deletions always, and no
    /// record of a deleted stream ever again (until its tombstone is old).
    func testChangesAndDeletionsFromPeersAndTombstones() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let clock = Clock()
            clock.seconds = Date().timeIntervalSince1970
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger, now: { clock.seconds })
            let told = Told()
            catalog.whenChanged { told.add($0) }

            // Made, changed (details, a new key), deleted here: each told once, in order.
            let made = try await catalog.create(title: "Mine")
            var details = StreamDetails()
            details.visibility = .inviteOnly
            let changed = try await catalog.update(id: made.id, details)
            let rekeyed = try await catalog.rotateKey(id: made.id)
            _ = try await catalog.update(id: made.id, details)  // no change: nothing told
            let deletedHere = try await catalog.delete(id: made.id)
            XCTAssertTrue(deletedHere, at)
            XCTAssertEqual(told.changes, [.made(made), .changed(changed!), .changed(rekeyed!), .deleted(made.id)], at)

            // A change for a record not kept here is not taken; one for a record kept here is.
            let learned = StreamRecord(id: "peer1", key: nil, keyDigest: StreamIdentifiers.digest("k1"), title: "Theirs", createdAt: Date())
            var private1 = learned
            private1.visibility = .inviteOnly
            await catalog.adopt(private1, onlyIfKnown: true)
            XCTAssertNil(catalog.record(id: "peer1"), "\(at): a change to a record this node never kept")
            await catalog.adopt(learned)
            await catalog.adopt(private1, onlyIfKnown: true)
            XCTAssertEqual(catalog.record(id: "peer1")?.visibility, .inviteOnly, at)
            try await catalog.load()
            XCTAssertEqual(catalog.record(id: "peer1")?.visibility, .inviteOnly, "\(at): kept in the database")

            // Deleted on another node: gone here, and never placed here again, nor found by a lookup.
            await catalog.forget(id: "peer1")
            XCTAssertNil(catalog.record(id: "peer1"), at)
            await catalog.adopt(learned)
            XCTAssertNil(catalog.record(id: "peer1"), "\(at): a stale holder cannot bring it back")
            catalog.lookUpPeers { _ in learned }
            let found = await catalog.find(id: "peer1")
            XCTAssertNil(found, "\(at): nor a peer that still has it")
            try await catalog.load()
            XCTAssertNil(catalog.record(id: "peer1"), at)
            // A deletion of a stream never known here is remembered too.
            await catalog.forget(id: "never2")
            let deleted = try await catalog.deletedStreams()
            XCTAssertEqual(Set(deleted), [made.id, "peer1", "never2"], at)

            // Tombstones are kept for a while, then forgotten (a record may then come back).
            clock.seconds += (StreamCatalog.tombstoneDays + 1) * 86_400
            let later = try await catalog.deletedStreams()
            XCTAssertEqual(later, [], at)
            await catalog.adopt(learned)
            XCTAssertNotNil(catalog.record(id: "peer1"), at)
            await db.close()
        }
    }
}

extension CatalogTests {
    /// Rows read from the database just before a change here must not undo it: a full reload
    /// (another node wrote the SQLite file, a periodic refresh) racing an edit keeps the edit.
    func testAReloadRacingAnEditKeepsTheEdit() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            for i in 0..<20 { _ = try await catalog.create(title: "Filler \(i)") }
            let s = try await catalog.create(title: "Edited")
            var visibility = StreamRecord.Visibility.public
            for round in 0..<60 {
                visibility = visibility == .public ? .inviteOnly : .public
                var details = StreamDetails()
                details.visibility = visibility
                async let loaded: Void = round % 2 == 0 ? catalog.load() : catalog.reload(id: s.id)
                _ = try await catalog.update(id: s.id, details)
                try await loaded
                XCTAssertEqual(catalog.record(id: s.id)?.visibility, visibility, "\(at): round \(round)")
                // And a stream made while the rows are read is not dropped as deleted.
                async let again: Void = catalog.load()
                let made = try await catalog.create(title: "New \(round)")
                try await again
                XCTAssertNotNil(catalog.record(id: made.id), "\(at): round \(round)")
            }
            await db.close()
        }
    }
}

final class Told: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [StreamCatalog.RecordChange] = []
    func add(_ c: StreamCatalog.RecordChange) { lock.withLock { list.append(c) } }
    var changes: [StreamCatalog.RecordChange] { lock.withLock { list } }
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
