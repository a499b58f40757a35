import Catalog
import Cluster
import Foundation
import Live
import Logging
import Origin
import SQLKit
import XCTest

/// Co-hosts: kept on both engines, heard of at once by another node sharing the database (as a
/// new key is), admitted by ingest only while on the air, one publisher at a time, and named in
/// the relay token's signed scope.
final class CoHostTests: XCTestCase {
    let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
    let logger = Logger(label: "test")

    func accounts(_ db: Database) async throws -> (host: String, ann: String, bob: String) {
        let store = AccountStore(database: db)
        let host = Account(email: "host@example.com", displayName: "Host", role: .broadcaster)
        let ann = Account(email: "ann@example.com", displayName: "Ann", role: .broadcaster)
        let bob = Account(email: "bob@example.com", displayName: "Bob", role: .broadcaster)
        for a in [host, ann, bob] { try await store.insert(a) }
        return (host.id, ann.id, bob.id)
    }

    /// Two nodes on one database: a co-host added, handed the stream, given a new key and removed
    /// on one is known so on the other within a second — the old key and a removed co-host's key
    /// open nothing there any more.
    func testCoHostChangesReachEveryNodeSharingTheDatabaseAtOnce() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let (dbA, dbB, a, b) = try await TestDatabases.twoNodes(location, sealer: sealer)
            let (host, ann, bob) = try await accounts(dbA)
            let following = Task { await b.followChanges() }
            try await Task.sleep(for: .milliseconds(700))
            let s = try await a.create(title: "Together", owner: host)
            try await waitUntil(at, "the stream on b") { b.record(id: s.id) != nil }

            let added = try await a.addCohost(id: s.id, account: ann)
            let annKey = try XCTUnwrap(added?.cohost(account: ann)?.key, at)
            XCTAssertEqual(StreamIdentifiers.streamID(inKey: annKey), s.id, "\(at): a co-host's key names its stream in front")
            XCTAssertNotEqual(annKey, s.key, at)
            XCTAssertEqual(a.record(key: annKey)?.publisher(key: annKey), .cohost(account: ann), at)
            let started = ContinuousClock.now
            try await waitUntil(at, "ann's key on b") { b.record(key: annKey)?.id == s.id }
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), at)
            XCTAssertEqual(b.record(key: annKey)?.cohost(account: ann)?.key, annKey, "\(at): sealed at rest, opened with the cluster key")
            XCTAssertEqual(b.record(key: s.key!)?.publisher(key: s.key!), .host, at)
            XCTAssertEqual(b.record(id: s.id)?.onAirPublisher, .host, "\(at): the host is on the air by default")

            // Bad co-hosts: the owner, twice the same, handing to someone who is none.
            for (what, attempt) in [("the owner", { _ = try await a.addCohost(id: s.id, account: host) }),
                                    ("twice", { _ = try await a.addCohost(id: s.id, account: ann) }),
                                    ("hand to a stranger", { _ = try await a.handOver(id: s.id, to: bob) })] as [(String, () async throws -> Void)] {
                do {
                    try await attempt()
                    XCTFail("\(at): \(what) must be refused")
                } catch let e as StreamError {
                    guard case .badCohost = e else { return XCTFail("\(at): \(what): \(e)") }
                }
            }

            _ = try await a.handOver(id: s.id, to: ann)
            try await waitUntil(at, "the stream handed to ann on b") { b.record(id: s.id)?.onAirPublisher == .cohost(account: ann) }

            let rotated = try await a.rotateCohostKey(id: s.id, account: ann)
            let newKey = try XCTUnwrap(rotated?.cohost(account: ann)?.key, at)
            XCTAssertNil(a.record(key: annKey), "\(at): the old key opens nothing here at once")
            try await waitUntil(at, "the old key refused on b") { b.record(key: annKey) == nil && b.record(key: newKey) != nil }
            XCTAssertNotNil(b.record(key: s.key!), "\(at): the stream's own key is untouched")

            _ = try await a.addCohost(id: s.id, account: bob)
            let removed = try await a.removeCohost(id: s.id, account: ann)
            XCTAssertEqual(removed?.onAirPublisher, .host, "\(at): a stream handed to a removed co-host goes back to its host")
            XCTAssertNil(a.record(key: newKey), at)
            try await waitUntil(at, "ann removed on b") { b.record(key: newKey) == nil && b.record(id: s.id)?.onAir == nil }
            XCTAssertEqual(b.record(id: s.id)?.cohosts.map(\.account), [bob], at)
            let again = try await a.removeCohost(id: s.id, account: ann)
            XCTAssertNil(again, "\(at): removed once")

            // Read back from the database by a node starting now.
            let fresh = StreamCatalog(store: StreamStore(database: dbB, sealer: sealer), logger: logger)
            try await fresh.load()
            XCTAssertEqual(fresh.record(id: s.id)?.cohosts.map(\.account), [bob], at)
            XCTAssertNotNil(fresh.record(id: s.id)?.cohosts.first?.key, at)
            if case .sqlite = location {
                let raw = try await dbA.sqliteConnection!.query("SELECT * FROM cohosts", [])
                XCTAssertFalse("\(raw)".contains(fresh.record(id: s.id)!.cohosts[0].key!), "no co-host key in clear at rest")
            }
            // Deleting the stream takes its co-hosts along.
            _ = try await a.delete(id: s.id)
            let left = try await dbA.sql.raw("SELECT COUNT(*) AS n FROM cohosts").first()?.decode(column: "n", as: Int.self)
            XCTAssertEqual(left, 0, at)
            following.cancel()
            await following.value
            await dbA.close()
            await dbB.close()
        }
    }

    /// A database at schema 10 (before co-hosts) migrates: its streams have none, their host on the air.
    func testASchema10DatabaseMigratesToCoHosts() async throws {
        let all = Migrations.all(sealer: sealer)
        XCTAssertTrue(all.contains { $0.version > 10 && $0.name.hasPrefix("co-hosts") })
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let old = try await Database.open(location, logger: logger, migrations: Array(all.prefix(10)))
            let (host, ann, _) = try await accounts(old)
            try await old.sql.raw("""
                INSERT INTO streams (id, key_digest, key_sealed, title, created_at, owner_account) \
                VALUES ('oldstream123', \(bind: StreamIdentifiers.digest("oldstream123_k")), \(bind: try sealer.seal("oldstream123_k")), 'Old', 1000, \(bind: host))
                """).run()
            await old.close()
            let db = try await Database.open(location, logger: logger, migrations: all)
            XCTAssertEqual(db.appliedAtOpen, all.map(\.version).filter { $0 > 10 }, "\(at): the numbers may skip one another branch takes")
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            try await catalog.load()
            let r = try XCTUnwrap(catalog.record(id: "oldstream123"), at)
            XCTAssertEqual(r.cohosts, [], at)
            XCTAssertNil(r.onAir, at)
            XCTAssertEqual(r.publisher(key: "oldstream123_k"), .host, at)
            let added = try await catalog.addCohost(id: r.id, account: ann)
            XCTAssertEqual(added?.cohosts.count, 1, at)
            await db.close()
        }
    }

    /// Records told between nodes carry co-hosts' digests (never their keys) and who is on the
    /// air; a node adopting one keeps them, and a co-host's key finds the stream there.
    func testPeerRecordsCarryCoHostsDigestsOnly() async throws {
        let key = StreamIdentifiers.randomKey(for: "abcdefghijkm")
        var r = StreamRecord(id: "abcdefghijkm", key: "abcdefghijkm_host", title: "T", createdAt: Date(timeIntervalSince1970: 1000))
        r.cohosts = [CoHost(account: "annannannann", key: key, addedAt: Date(timeIntervalSince1970: 2000))]
        r.onAir = "annannannann"
        let wire = try PeerRecords.encoder.encode(PeerRecord(r))
        XCTAssertFalse(String(decoding: wire, as: UTF8.self).contains(key), "a co-host's key never leaves its node")
        let told = try PeerRecords.decoder.decode(PeerRecord.self, from: wire)
        let asked = try XCTUnwrap(told.record(for: .key(key)))
        XCTAssertNil(asked.key, "a co-host's key is not the stream's key")
        XCTAssertEqual(asked.publisher(key: key), .cohost(account: "annannannann"))
        XCTAssertEqual(asked.onAirPublisher, .cohost(account: "annannannann"))
        XCTAssertNil(told.record(for: .key("abcdefghijkm_wrong")))
        // None is said as none; a node from before co-hosts says nothing, which the receiver tells apart.
        let none = try PeerRecords.encoder.encode(PeerRecord(StreamRecord(id: "abcdefghijkm", key: nil, keyDigest: r.keyDigest, title: "T",
                                                                          createdAt: r.createdAt)))
        XCTAssertEqual(try PeerRecords.decoder.decode(PeerRecord.self, from: none).cohosts, [])
        var old = try XCTUnwrap(try JSONSerialization.jsonObject(with: none) as? [String: Any])
        old["cohosts"] = nil
        XCTAssertNil(try PeerRecords.decoder.decode(PeerRecord.self, from: JSONSerialization.data(withJSONObject: old)).cohosts)
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            // The co-host's account, as a database shared by the nodes has it (PostgreSQL holds to the foreign key).
            try await AccountStore(database: db).insert(Account(id: "annannannann", email: "ann@example.com", displayName: "Ann", role: .broadcaster))
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            var placed = told.record
            placed.cohosts = []
            placed.onAir = nil
            await catalog.adopt(placed)
            XCTAssertNil(catalog.record(key: key), at)
            // The maker added the co-host and handed the stream over since: what it says now wins.
            await catalog.adopt(told.record)
            XCTAssertEqual(catalog.record(key: key)?.id, r.id, at)
            XCTAssertEqual(catalog.record(id: r.id)?.onAirPublisher, .cohost(account: "annannannann"), at)
            try await catalog.load()
            XCTAssertEqual(catalog.record(key: key)?.id, r.id, "\(at): kept in this node's database")
            await db.close()
        }
    }

    /// Ingest: only whoever is on the air is admitted, each with the clear reason; the same person
    /// twice is refused; the one handed the stream takes over from the one publishing.
    func testIngestAdmitsWhoeverIsOnTheAirAndTheHandOverTakesOver() async throws {
        let db = try await Database.open(.sqlite(path: TestDatabases.tempFile()), logger: logger, migrations: Migrations.all(sealer: sealer))
        let (host, ann, bob) = try await accounts(db)
        let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
        let streams = LiveStreams(catalog: catalog, packaging: .default, ladder: nil, logger: logger)
        let policy = IngestPolicy(streams: streams, cluster: nil)
        let s = try await catalog.create(title: "Show", owner: host)
        _ = try await catalog.addCohost(id: s.id, account: ann)
        let r = try await catalog.addCohost(id: s.id, account: bob)
        let annKey = try XCTUnwrap(r?.cohost(account: ann)?.key)

        guard case .known(let found, .cohost(account: ann), relayed: false) = policy.resolve(app: "live", key: annKey) else {
            return XCTFail("a co-host's key resolves to the stream and the co-host")
        }
        XCTAssertEqual(found.id, s.id)
        guard case .known(_, .host, relayed: false) = policy.resolve(app: "live", key: s.key!) else { return XCTFail("the host's key") }

        func refusal(_ result: Result<IngestPolicy.Admission, IngestRefusal>) -> IngestRefusal? {
            if case .failure(let f) = result { return f }
            return nil
        }
        // The host on the air: a co-host is refused, saying why and who can change it.
        let early = refusal(policy.admit(catalog.record(id: s.id)!, as: .cohost(account: ann), relayed: false, connection: 1))
        XCTAssertEqual(early?.reason, "not_on_air")
        XCTAssertEqual(early?.code, "NetStream.Publish.BadName")
        XCTAssertEqual(early?.description, "Stream \(s.id) is on the air from its host; the host can hand it to you in the studio")

        guard case .success(.local(_, _, let hostClaim, displaced: nil)) = policy.admit(catalog.record(id: s.id)!, as: .host, relayed: false,
                                                                                       connection: 2) else {
            return XCTFail("the host is admitted")
        }
        XCTAssertEqual(refusal(policy.admit(catalog.record(id: s.id)!, as: .host, relayed: false, connection: 3))?.reason, "already_publishing",
                       "one connection of the host at a time")

        _ = try await catalog.handOver(id: s.id, to: ann)
        let host2 = refusal(policy.admit(catalog.record(id: s.id)!, as: .host, relayed: false, connection: 4))
        XCTAssertEqual(host2?.description, "Stream \(s.id) is handed to a co-host; take it back in the studio to publish")
        let bob1 = refusal(policy.admit(catalog.record(id: s.id)!, as: .cohost(account: bob), relayed: false, connection: 5))
        XCTAssertEqual(bob1?.description, "Stream \(s.id) is handed to another co-host; the host can hand it to you in the studio")
        guard case .success(.local(_, _, let annClaim, displaced: let displaced?)) = policy.admit(
            catalog.record(id: s.id)!, as: .cohost(account: ann), relayed: false, connection: 6) else {
            return XCTFail("the co-host handed the stream takes over")
        }
        XCTAssertEqual(displaced.connection, 2)
        XCTAssertTrue(hostClaim.isDisplaced, "the host's connection feeds nothing more")
        XCTAssertFalse(annClaim.isDisplaced)
        XCTAssertEqual(streams.publisher(id: s.id), .cohost(account: ann))
        // The displaced connection going away frees nothing; the co-host's does.
        policy.release(s.id, connection: 2)
        XCTAssertEqual(streams.publisher(id: s.id), .cohost(account: ann))
        XCTAssertTrue(policy.stillPublisher(s.id, .cohost(account: ann)))

        // Removed: the key opens nothing, the live connection is no publisher any more, the host is on the air again.
        _ = try await catalog.removeCohost(id: s.id, account: ann)
        guard case .lookUp = policy.resolve(app: "live", key: annKey) else { return XCTFail("a removed co-host's key is not known") }
        XCTAssertFalse(policy.stillPublisher(s.id, .cohost(account: ann)))
        XCTAssertEqual(refusal(policy.admit(catalog.record(id: s.id)!, as: .cohost(account: ann), relayed: true, connection: 7))?.reason, "bad_key",
                       "a relay for a removed co-host (a stale record on the relaying node) is refused by the owner")
        guard case .success(.local(_, _, _, displaced: let back?)) = policy.admit(catalog.record(id: s.id)!, as: .host, relayed: false,
                                                                                  connection: 8) else {
            return XCTFail("the host takes the stream back from the removed co-host's connection")
        }
        XCTAssertEqual(back.connection, 6)
        await db.close()
    }

    /// The relay token names who publishes, under the signature: the owner admits that person.
    func testTheRelayTokenScopeNamesThePublisher() throws {
        let tokens = ClusterTokens(clusterKeys: [Array(repeating: 7, count: 32)], localID: "node-a")
        let cohost = RelayScope(streamID: "abcdefghijkm", publisher: .cohost(account: "annannannann"))
        XCTAssertEqual(cohost.scope, "abcdefghijkm_annannannann")
        XCTAssertEqual(RelayScope(scope: cohost.scope), cohost)
        XCTAssertEqual(RelayScope(scope: "abcdefghijkm"), RelayScope(streamID: "abcdefghijkm", publisher: .host),
                       "a bare stream id is its host, as relays from nodes before co-hosts say")
        XCTAssertNil(RelayScope(scope: "a_b_c"))
        XCTAssertNil(RelayScope(scope: "abc_"))
        let token = tokens.token(for: .relay, scope: cohost.scope)
        let grant = try tokens.verify(token, for: .relay)
        XCTAssertEqual(RelayScope(scope: grant.scope), cohost)
        // Another publisher put in the token: the signature no longer holds.
        var parts = token.split(separator: ".").map(String.init)
        parts[3] = "abcdefghijkm"
        XCTAssertThrowsError(try tokens.verify(parts.joined(separator: "."), for: .relay)) { error in
            XCTAssertEqual(error as? ClusterTokenError, .badSignature)
        }
    }
}
