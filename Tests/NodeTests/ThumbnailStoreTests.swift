import Foundation
import XCTest
@testable import Live

/// The live pictures' folder: writes are whole, a new picture replaces the one before, ids never
/// make paths. (Uploaded pictures are kept with the record: `CatalogTests`.)
final class ThumbnailStoreTests: XCTestCase {
    func testANewLivePictureReplacesTheOneBeforeWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thumbs-store-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ThumbnailStore(directory: dir)
        let id = "abcdefgh1234"
        XCTAssertNil(store.current(id: id))
        XCTAssertFalse(store.exists(id: id))

        try store.save([0xFF, 0xD8, 1], id: id)
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 1])
        XCTAssertTrue(store.exists(id: id))
        let first = try XCTUnwrap(store.current(id: id)?.etag)
        try store.save([0xFF, 0xD8, 3, 3], id: id)
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 3, 3])
        XCTAssertNotEqual(store.current(id: id)?.etag, first)

        // Closed to other users; no temporary file left behind.
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("\(id).jpg").path)[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o777, 0o600)
        let dirMode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir.path)[.posixPermissions] as? Int)
        XCTAssertEqual(dirMode & 0o777, 0o700)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["\(id).jpg"])
        XCTAssertTrue(store.remove(id: id))
        XCTAssertFalse(store.remove(id: id))
        XCTAssertNil(store.current(id: id))
    }

    func testIdsThatAreNotStreamIdsNameNoFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thumbs-store-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ThumbnailStore(directory: dir)
        for id in ["../etc", "a/b", "", ".hidden", "x.uploaded"] {
            XCTAssertThrowsError(try store.save([1], id: id), id)
            XCTAssertNil(store.current(id: id))
            XCTAssertFalse(store.remove(id: id))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
