import Catalog
import Cluster
import Foundation
import Logging
import XCTest
@testable import Live
@testable import Origin

/// What people set on recordings (both engines), the trim's arithmetic, and deleting a copy.
final class RecordingManagementTests: XCTestCase {
    let logger = Logger(label: "test")
    let epoch = StreamEpoch(0xabcdef01)

    func open(_ location: DatabaseLocation) async throws -> Database {
        try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])))
    }

    // MARK: The store

    func testDetailsAreKeptChangedAndListedOnBothEngines() async throws {
        for location in try await TestDatabases.fresh() {
            let engine = TestDatabases.engine(location)
            let db = try await open(location)
            do {
                let store = RecordingDetailsStore(database: db)
                let t = Date(timeIntervalSince1970: 1_700_000_000)
                try await assertNil(try await store.details(id: "s1-abcdef01-0"), engine)
                var d = RecordingDetails(id: "s1-abcdef01-0", streamID: "s1", title: "Day one", description: "Talks\nand more",
                                         visibility: .unlisted, trimStart: 4, trimEnd: 10, trimSegments: 2...4, updatedAt: t)
                try await assertTrue(try await store.save(d), engine)
                try await assertEqual(try await store.details(id: d.id), d, engine)
                d.visibility = nil
                d.trimStart = nil
                d.trimSegments = nil
                d.title = "Day 1"
                try await assertTrue(try await store.save(d), engine)
                try await assertEqual(try await store.details(id: d.id), d, "\(engine): null goes back to the stream's, the start")
                try await store.save(RecordingDetails(id: "s1-abcdef01-50", streamID: "s1", updatedAt: t))
                try await store.save(RecordingDetails(id: "s2-abcdef01-0", streamID: "s2", visibility: .paid, updatedAt: t))
                try await assertEqual(Set(try await store.details(stream: "s1").keys), ["s1-abcdef01-0", "s1-abcdef01-50"], engine)
                try await assertEqual(Set(try await store.details(streams: ["s1", "s2"]).keys), ["s1-abcdef01-0", "s1-abcdef01-50", "s2-abcdef01-0"], engine)
                try await assertEqual(try await store.details(streams: []), [:], engine)

                // A picture, then the tombstone: the picture goes, and nothing brings the recording back.
                d.thumbnail = "0011223344556677"
                try await assertTrue(try await store.setThumbnail(d, jpeg: [0xFF, 0xD8, 1, 2]), engine)
                try await assertEqual(try await store.thumbnail(id: d.id)?.jpeg, [0xFF, 0xD8, 1, 2], engine)
                try await assertEqual(try await store.thumbnail(id: d.id)?.version, "0011223344556677", engine)
                try await assertEqual(try await store.deleted().count, 0, engine)
                try await store.markDeleted(id: d.id, stream: "s1", at: t.addingTimeInterval(60))
                try await store.markDeleted(id: "s3-abcdef01-0", stream: "s3", at: t.addingTimeInterval(30))
                try await assertNil(try await store.thumbnail(id: d.id), engine)
                try await assertEqual(try await store.details(id: d.id)?.deletedAt, t.addingTimeInterval(60), engine)
                try await assertEqual(try await store.details(id: d.id)?.title, "Day 1", "\(engine): the tombstone keeps what was set")
                try await assertFalse(try await store.save(d), "\(engine): a deleted recording's details are not saved again")
                try await assertNotNil(try await store.details(id: d.id)?.deletedAt, engine)
                try await assertEqual(try await store.deleted().map(\.id), ["s3-abcdef01-0", d.id], "\(engine): oldest first")
                try await assertEqual(try await store.deleted(since: t.addingTimeInterval(45)).map(\.id), [d.id], engine)

                // A node's copy row goes when its copy does.
                let copies = RecordingStore(database: db)
                try await copies.save(RecordingCopy(id: "s1-abcdef01-50", nodeID: "a", streamID: "s1", state: "ready", startedAt: t,
                                                    durationSeconds: 8, bytes: 10, renditions: ["source"]))
                try await copies.save(RecordingCopy(id: "s1-abcdef01-50", nodeID: "b", streamID: "s1", state: "ready", startedAt: t,
                                                    durationSeconds: 8, bytes: 10, renditions: ["source"]))
                try await assertEqual(try await copies.copies(nodeID: "a"), ["s1-abcdef01-50"], engine)
                try await assertEqual(try await copies.recordings(streams: ["s1", "zz"]).map(\.nodes), [["a", "b"]], engine)
                try await copies.removeCopy(id: "s1-abcdef01-50", nodeID: "a")
                try await assertEqual(try await copies.recording(id: "s1-abcdef01-50")?.nodes, ["b"], engine)
                try await assertEqual(try await copies.copies(nodeID: "a"), [], engine)
            } catch {
                await db.close()
                throw error
            }
            await db.close()
        }
    }

    func testAnotherNodeOnTheDatabaseHearsOfAChangeAtOnce() async throws {
        for location in try await TestDatabases.fresh() {
            let engine = TestDatabases.engine(location)
            let dbA = try await open(location)
            let dbB = try await open(location)
            let a = RecordingCatalog(store: RecordingDetailsStore(database: dbA), logger: logger)
            // Long enough that only the notice can explain a fresh answer.
            let b = RecordingCatalog(store: RecordingDetailsStore(database: dbB), maxAge: 3600, logger: logger)
            let heard = Task { await b.followChanges() }
            do {
                let id = "s1-abcdef01-0"
                try await assertNil(try await b.details(id: id), engine)
                try await Task.sleep(for: .milliseconds(700))  // the listener is up (PostgreSQL), the file's version read (SQLite)
                try await a.store.save(RecordingDetails(id: id, streamID: "s1", visibility: .inviteOnly))
                let deadline = ContinuousClock.now + .seconds(5)
                var seen: RecordingDetails?
                while ContinuousClock.now < deadline {
                    seen = try await b.details(id: id)
                    if seen != nil { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                XCTAssertEqual(seen?.visibility, .inviteOnly, "\(engine): the other node forgot what it had read")
                try await a.store.markDeleted(id: id, stream: "s1")
                var gone = false
                while ContinuousClock.now < deadline + .seconds(5), !gone {
                    gone = try await b.details(id: id)?.deletedAt != nil
                    if !gone { try await Task.sleep(for: .milliseconds(50)) }
                }
                XCTAssertTrue(gone, "\(engine): the deletion reached the other node")
            } catch {
                heard.cancel()
                await dbA.close()
                await dbB.close()
                throw error
            }
            heard.cancel()
            _ = await heard.value
            await dbA.close()
            await dbB.close()
        }
    }

    // MARK: Trim

    func manifest(_ durations: [Double], first: Int = 10) -> RecordingManifest {
        var m = RecordingManifest(stream: "s1", epoch: epoch, firstSequence: first, startedAt: Date())
        func segments() -> [RecordingManifest.Segment] {
            durations.enumerated().map { RecordingManifest.Segment(sequence: first + $0.offset, duration: $0.element, discontinuity: false,
                                                                   initVersion: 0, bytes: 100) }
        }
        m.renditions = [RecordingManifest.Rendition(name: "source", codecs: "avc1", inits: [0], segments: segments()),
                        RecordingManifest.Rendition(name: "240p", codecs: "avc1", inits: [0], segments: segments())]
        m.state = .ready
        m.endedAt = Date()
        return m
    }

    func testATrimSnapsToTheKeyframesAroundIt() throws {
        let m = manifest([2, 2, 2, 2, 1.5])  // 9.5 s: boundaries 0, 2, 4, 6, 8, 9.5
        XCTAssertNil(try m.trim(start: nil, end: nil))
        XCTAssertNil(try m.trim(start: 0, end: 9.5), "keeping everything is no trim")
        XCTAssertNil(try m.trim(start: 1.9, end: 9), "snapped out to the whole")
        let t = try XCTUnwrap(m.trim(start: 3, end: 6.5))
        XCTAssertEqual(t, RecordingTrim(firstSequence: 11, lastSequence: 13, start: 2, end: 8), "start back to a keyframe, end on to a segment's end")
        XCTAssertEqual(try m.trim(start: 4, end: 6), RecordingTrim(firstSequence: 12, lastSequence: 12, start: 4, end: 6), "boundaries stay")
        XCTAssertEqual(try m.trim(start: 2, end: nil)?.lastSequence, 14)
        XCTAssertEqual(try m.trim(start: nil, end: 2.0001)?.lastSequence, 10, "a thousandth of slack for rounded figures")
        // The effective trim snaps to itself: kept as it is, served the same.
        XCTAssertEqual(try m.trim(start: t.start, end: t.end), t)

        let trimmed = m.trimmed(t)
        XCTAssertEqual(trimmed.renditions.map { $0.segments.map(\.sequence) }, [[11, 12, 13], [11, 12, 13]], "every rendition")
        XCTAssertEqual(trimmed.duration, 6)
        let playlist = try XCTUnwrap(trimmed.mediaPlaylist(rendition: "240p"))
        XCTAssertTrue(playlist.contains("#EXT-X-MEDIA-SEQUENCE:11\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init0.mp4\""), playlist)
        XCTAssertFalse(playlist.contains("seg10.m4s") || playlist.contains("seg14.m4s"), playlist)
        XCTAssertTrue(playlist.hasSuffix("#EXT-X-ENDLIST\n"))
        XCTAssertEqual(m.trimmed(nil), m)
    }

    func testATrimOutsideTheRecordingSaysTheValidRange() {
        let m = manifest([2, 2, 2])
        for (start, end) in [(-1.0, 4.0), (0, 6.5), (4, 4), (5, 3), (6, nil), (.nan, 3), (0, .infinity)] as [(Double?, Double?)] {
            XCTAssertThrowsError(try m.trim(start: start, end: end), "\(String(describing: start))-\(String(describing: end))") { error in
                XCTAssertTrue("\(error)".contains("the valid range is 0 to 6 seconds"), "\(error)")
            }
        }
        XCTAssertThrowsError(try manifest([]).trim(start: 1, end: 2)) { XCTAssertEqual($0 as? RecordingTrimError, .empty) }
    }

    func testATrimmedDownloadIsAFileOfItsOwn() {
        XCTAssertEqual(RecordingDownloads.fileName(trim: nil), "download.mp4")
        XCTAssertEqual(RecordingDownloads.fileName(trim: RecordingTrim(firstSequence: 11, lastSequence: 13, start: 2, end: 8)), "download-11-13.mp4")
        let m = manifest([2, 2, 2])
        let runs = RecordingDownloads.runs(of: RecordingDownloads.rendition(of: m.trimmed(try? m.trim(start: 2, end: 4)))!, folder: "/r")
        XCTAssertEqual(runs, [["/r/init0.mp4", "/r/seg11.m4s"]])
    }

    // MARK: Deleting a copy

    func testDeletingACopyRemovesItsFolderItsStateAndItsRow() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("recdel-" + UUID().uuidString).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = try await open(.sqlite(path: TestDatabases.tempFile()))
        let store = RecordingStore(database: db)
        let recorder = Recorder(directory: root, nodeID: "a", store: store, logger: logger)
        let reports = Task { try await recorder.run() }
        do {
            let initSegment = RecordedInit(stream: "s1", epoch: epoch, rendition: "source", version: 0, bytes: [0, 0, 0, 8],
                                           codecs: "avc1.64001f", width: 640, height: 360)
            recorder.take(.initSegment(initSegment))
            for n in 0..<3 {
                recorder.take(.segment(RecordedSegment(stream: "s1", epoch: epoch, rendition: "source", sequence: n, duration: 2,
                                                       discontinuity: false, initVersion: 0, programDateTime: Date(), bytes: [UInt8](repeating: 1, count: 50))))
            }
            recorder.take(.ended(stream: "s1", epoch: epoch))
            await recorder.drain()
            let id = "s1-abcdef01-0"
            try await waitUntil("row", "the copy reported") { recorder.manifest(id: id)?.state == .ready }
            let deadline = ContinuousClock.now + .seconds(5)
            while try await store.recording(id: id) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await assertEqual(try await store.recording(id: id)?.nodes, ["a"])
            XCTAssertEqual(recorder.heldRecordings(), [id])
            XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/s1/" + id + "/source/seg1.m4s"))

            try await assertTrue(try await recorder.deleteCopy(id: id))
            XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/s1/" + id))
            XCTAssertNil(recorder.manifest(id: id), "nothing of it in memory")
            XCTAssertNil(recorder.current(stream: "s1"))
            XCTAssertEqual(recorder.heldRecordings(), [])
            while try await store.recording(id: id) != nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await assertNil(try await store.recording(id: id), "this node's row is gone")
            try await assertFalse(try await recorder.deleteCopy(id: id), "a second time: nothing held")
            try await assertFalse(try await recorder.deleteCopy(id: "../etc"), "not a recording's id")
        } catch {
            reports.cancel()
            await db.close()
            throw error
        }
        reports.cancel()
        await db.close()
    }

    func testACopyWhoseRecordingWasDeletedGoesAtTheNextSweep() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("recsweep-" + UUID().uuidString).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = try await open(.sqlite(path: TestDatabases.tempFile()))
        do {
            // A node that was away: its copy is on disk, the tombstone was written meanwhile.
            let recorder = Recorder(directory: root, nodeID: "b", store: nil, logger: logger)
            for (stream, id) in [("s1", "s1-abcdef01-0"), ("s1", "s1-abcdef01-90"), ("s2", "s2-abcdef01-0")] {
                try FileManager.default.createDirectory(atPath: root + "/\(stream)/\(id)/source", withIntermediateDirectories: true)
                try Data([1]).write(to: URL(fileURLWithPath: root + "/\(stream)/\(id)/source/seg0.m4s"))
            }
            try FileManager.default.createDirectory(atPath: root + "/s1/not-a-recording", withIntermediateDirectories: true)
            let catalog = RecordingCatalog(store: RecordingDetailsStore(database: db), logger: logger)
            try await catalog.store.markDeleted(id: "s1-abcdef01-90", stream: "s1")
            try await catalog.store.markDeleted(id: "s2-abcdef01-0", stream: "s2")
            let deletions = RecordingDeletions(recorder: recorder, catalog: catalog, logger: logger)
            await assertEqual(await deletions.sweep(), 2)
            XCTAssertEqual(recorder.heldRecordings(), ["s1-abcdef01-0"])
            XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/s1/not-a-recording"), "only recordings' folders are touched")
            await assertEqual(await deletions.sweep(), 0)
        } catch {
            await db.close()
            throw error
        }
        await db.close()
    }
}

/// XCTest's assertions on what an async call answers.
func assertEqual<T: Equatable>(_ value: @autoclosure () async throws -> T, _ expected: T, _ message: String = "",
                               file: StaticString = #filePath, line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertEqual(v, expected, message, file: file, line: line)
}

func assertNil<T>(_ value: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath,
                  line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertNil(v, message, file: file, line: line)
}

func assertNotNil<T>(_ value: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath,
                     line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertNotNil(v, message, file: file, line: line)
}

func assertTrue(_ value: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath,
                line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertTrue(v, message, file: file, line: line)
}

func assertFalse(_ value: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath,
                 line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertFalse(v, message, file: file, line: line)
}
