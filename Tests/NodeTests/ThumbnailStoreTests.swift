import Foundation
import XCTest
@testable import Live

/// The thumbnails' folder: uploaded wins over live, writes are whole, ids never make paths.
final class ThumbnailStoreTests: XCTestCase {
    func testUploadedWinsAndRemovingItShowsTheLiveOneAgain() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thumbs-store-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ThumbnailStore(directory: dir)
        let id = "abcdefgh1234"
        XCTAssertNil(store.current(id: id))
        XCTAssertFalse(store.exists(id: id))

        try store.save([0xFF, 0xD8, 1], id: id, kind: .live)
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 1])
        XCTAssertEqual(store.current(id: id)?.uploaded, false)
        let liveTag = try XCTUnwrap(store.current(id: id)?.etag)

        try store.save([0xFF, 0xD8, 2, 2], id: id, kind: .uploaded)
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 2, 2])
        XCTAssertTrue(store.isUploaded(id: id))
        XCTAssertNotEqual(store.current(id: id)?.etag, liveTag)
        // A new live picture does not replace what is shown.
        try store.save([0xFF, 0xD8, 3], id: id, kind: .live)
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 2, 2])

        XCTAssertTrue(store.remove(id: id, kind: .uploaded))
        XCTAssertFalse(store.remove(id: id, kind: .uploaded))
        XCTAssertEqual(store.current(id: id)?.bytes, [0xFF, 0xD8, 3])

        // Closed to other users; no temporary file left behind.
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("\(id).jpg").path)[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o777, 0o600)
        let dirMode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir.path)[.posixPermissions] as? Int)
        XCTAssertEqual(dirMode & 0o777, 0o700)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["\(id).jpg"])
    }

    func testIdsThatAreNotStreamIdsNameNoFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thumbs-store-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ThumbnailStore(directory: dir)
        for id in ["../etc", "a/b", "", ".hidden", "x.uploaded"] {
            XCTAssertThrowsError(try store.save([1], id: id, kind: .live), id)
            XCTAssertNil(store.current(id: id))
            XCTAssertFalse(store.remove(id: id, kind: .uploaded))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
