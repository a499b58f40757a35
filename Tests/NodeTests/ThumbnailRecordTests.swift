import Catalog
import Cluster
import Foundation
import Logging
import SQLKit
import XCTest

/// Uploaded pictures kept with the stream's record (schema v12), on both engines: nodes sharing a
/// database see a new picture and its removal through the record's version; a node with its own
/// database learns the version with the record and the bytes from the holders, checked against it.
extension CatalogTests {
    static let first: [UInt8] = [0xFF, 0xD8, 0xFF, 1, 2, 3]
    static let second: [UInt8] = [0xFF, 0xD8, 0xFF, 9, 9]

    func testNodesSharingADatabaseShowTheUploadAndItsRemoval() async throws {
        let (first, second) = (Self.first, Self.second)
        for location in try await TestDatabases.fresh() { try await sharingOneDatabase(location) { a, b, dbA in
            let at = TestDatabases.engine(location)
            let s = try await a.create(title: "Pictured")
            XCTAssertNil(s.thumbnail, at)

            let v1 = StreamCatalog.thumbnailVersion(first)
            XCTAssertTrue(StreamCatalog.isThumbnailVersion(v1), at)
            let set = try await a.setThumbnail(id: s.id, jpeg: first)
            XCTAssertEqual(set?.thumbnail, v1, at)
            XCTAssertEqual(a.record(id: s.id)?.thumbnail, v1, "\(at): at once where it was uploaded")
            try await waitUntil(at, "the version on b") { b.record(id: s.id)?.thumbnail == v1 }
            let seen = await b.uploadedThumbnail(of: try XCTUnwrap(b.record(id: s.id)))
            XCTAssertEqual(seen, .init(version: v1, jpeg: first), "\(at): the bytes from the shared database")

            // Another upload replaces it; b's cache follows the record's version.
            _ = try await a.setThumbnail(id: s.id, jpeg: second)
            let v2 = StreamCatalog.thumbnailVersion(second)
            try await waitUntil(at, "the new version on b") { b.record(id: s.id)?.thumbnail == v2 }
            let replaced = await b.uploadedThumbnail(of: try XCTUnwrap(b.record(id: s.id)))
            XCTAssertEqual(replaced?.jpeg, second, at)
            // Details changed later keep the picture.
            _ = try await a.update(id: s.id, StreamDetails(description: "now described"))
            let row = try await dbA.sql.select().column("thumbnail_version").from("streams").where("id", .equal, s.id).first()
            XCTAssertEqual(try row?.decode(column: "thumbnail_version", as: String?.self), v2, at)

            // Removed: the live pictures again, everywhere, and the bytes are gone.
            _ = try await a.removeThumbnail(id: s.id)
            try await waitUntil(at, "no version on b") { b.record(id: s.id) != nil && b.record(id: s.id)?.thumbnail == nil }
            let none = await b.uploadedThumbnail(of: try XCTUnwrap(b.record(id: s.id)))
            XCTAssertNil(none, at)
            let kept = try await a.store.thumbnail(id: s.id)
            XCTAssertNil(kept, at)
            let missing = try await a.setThumbnail(id: "nosuchstream", jpeg: first)
            XCTAssertNil(missing, at)

            // Deleting the stream deletes its picture.
            _ = try await a.setThumbnail(id: s.id, jpeg: first)
            _ = try await a.delete(id: s.id)
            let rows = try await dbA.sql.select().column("stream_id").from("stream_thumbnails").all()
            XCTAssertEqual(rows.count, 0, at)
        } }
    }

    func testANodeWithItsOwnDatabaseGetsTheBytesFromTheHoldersCheckedAgainstTheVersion() async throws {
        let (first, second) = (Self.first, Self.second)
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let makerDB = try await Database.open(.sqlite(path: TestDatabases.tempFile()), logger: logger, migrations: Migrations.all(sealer: sealer))
            let maker = StreamCatalog(store: StreamStore(database: makerDB, sealer: sealer), logger: logger)
            let s = try await maker.create(title: "Made elsewhere")
            let set = try await maker.setThumbnail(id: s.id, jpeg: first)
            let placed = try XCTUnwrap(set)
            let version = try XCTUnwrap(placed.thumbnail)

            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let clock = Clock()
            let node = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger, now: { clock.seconds })
            // The record as a peer tells it: the version rides along, the bytes do not.
            let told = PeerRecord(placed)
            XCTAssertEqual(told.thumbnail, version, at)
            let wire = try PeerRecords.decoder.decode(PeerRecord.self, from: PeerRecords.encoder.encode(told))
            await node.adopt(wire.record)
            let record = try XCTUnwrap(node.record(id: s.id))
            XCTAssertEqual(record.thumbnail, version, at)
            let without = await node.uploadedThumbnail(of: record)
            XCTAssertNil(without, "\(at): no one to ask")

            // Holders handing other bytes under the version are not believed.
            let asked = Counter()
            node.lookUpThumbnails { id, v in
                asked.add()
                return id == s.id && v == version && asked.value > 1 ? first : second
            }
            let lie = await node.uploadedThumbnail(of: record)
            XCTAssertNil(lie, at)
            let soon = await node.uploadedThumbnail(of: record)
            XCTAssertNil(soon, "\(at): a miss is not asked again at once")
            XCTAssertEqual(asked.value, 1, at)
            clock.seconds += StreamCatalog.missMemory + 1
            let got = await node.uploadedThumbnail(of: record)
            XCTAssertEqual(got?.jpeg, first, at)
            XCTAssertEqual(asked.value, 2, at)
            // Kept in this node's database: no question after a restart.
            let again = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            try await again.load()
            let restarted = await again.uploadedThumbnail(of: try XCTUnwrap(again.record(id: s.id)))
            XCTAssertEqual(restarted?.jpeg, first, at)

            // Bytes placed by a peer are kept only for a known stream and the version they are.
            let kept = await node.keepThumbnail(id: s.id, version: version, jpeg: second)
            XCTAssertFalse(kept, at)
            let unknown = await node.keepThumbnail(id: "nosuchstream", version: StreamCatalog.thumbnailVersion(second), jpeg: second)
            XCTAssertFalse(unknown, at)
            // A removal placed later (the record without a version) is the live pictures again.
            let unset = try await maker.removeThumbnail(id: s.id)
            let removed = try XCTUnwrap(unset)
            await node.adopt(PeerRecord(removed).record)
            XCTAssertNil(node.record(id: s.id)?.thumbnail, at)
            let gone = await node.uploadedThumbnail(of: try XCTUnwrap(node.record(id: s.id)))
            XCTAssertNil(gone, at)
            // The upload's copy arriving after the removal's (a ring change re-placing an old copy) changes nothing.
            await node.adopt(PeerRecord(placed).record)
            XCTAssertNil(node.record(id: s.id)?.thumbnail, "\(at): the later change wins")
            try await node.load()
            XCTAssertNil(node.record(id: s.id)?.thumbnail, "\(at): in the database too")
            await db.close()
            await makerDB.close()
        }
    }
}
