import Catalog
import Cluster
import Foundation
import Logging
import Synchronization
import XCTest
@testable import Live
@testable import Origin

/// The recorder with a disk that fails: the recording is marked incomplete with the reason and
/// the rest goes on; and the recordings table on both engines.
final class RecorderTests: XCTestCase {
    let logger = Logger(label: "test")
    let epoch = StreamEpoch(0xabcdef01)

    /// Files in memory; writes fail while `failing` says so (a full disk).
    final class Files: RecordingFiles, Sendable {
        let files = Mutex<[String: [UInt8]]>([:])
        let failing = Mutex<(@Sendable (String) -> Bool)?>(nil)
        let delay = Mutex<Double>(0)

        struct DiskFull: Error, LocalizedError { var errorDescription: String? { "No space left on device" } }

        func write(_ bytes: [UInt8], to path: String) throws {
            let d = delay.withLock { $0 }
            if d > 0 { Thread.sleep(forTimeInterval: d) }
            if failing.withLock({ $0 })?(path) == true { throw DiskFull() }
            files.withLock { $0[path] = bytes }
        }

        func read(_ path: String) -> [UInt8]? { files.withLock { $0[path] } }
        func list(_ folder: String) -> [String] {
            Array(Set(names.filter { $0.hasPrefix(folder + "/") }.map { String($0.dropFirst(folder.count + 1).prefix { $0 != "/" }) }))
        }
        var names: [String] { files.withLock { $0.keys.sorted() } }
    }

    func initSegment(_ rendition: String = "source") -> RecordedObject {
        .initSegment(RecordedInit(stream: "s1", epoch: epoch, rendition: rendition, version: 0, bytes: [0, 0, 0, 8],
                                  codecs: "avc1.64001f,mp4a.40.2", width: 1280, height: 720))
    }

    func segment(_ n: Int, _ rendition: String = "source", size: Int = 100, discontinuity: Bool = false) -> RecordedObject {
        .segment(RecordedSegment(stream: "s1", epoch: epoch, rendition: rendition, sequence: n, duration: 2, discontinuity: discontinuity,
                                 initVersion: 0, programDateTime: Date(), bytes: [UInt8](repeating: UInt8(n), count: size)))
    }

    func testSegmentsAreWrittenAndTheRecordingIsReadyWhenTheStreamEnds() async throws {
        let files = Files()
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        for o in [initSegment(), segment(0), segment(1), segment(1), .ended(stream: "s1", epoch: epoch)] { recorder.take(o) }
        await recorder.drain()
        let id = "s1-abcdef01-0"
        XCTAssertEqual(files.names, ["/rec/s1/\(id)/recording.json", "/rec/s1/\(id)/source/init0.mp4",
                                     "/rec/s1/\(id)/source/seg0.m4s", "/rec/s1/\(id)/source/seg1.m4s"])
        let m = try XCTUnwrap(recorder.manifest(id: id))
        XCTAssertEqual(m.state, .ready)
        XCTAssertEqual(m.duration, 4)
        XCTAssertEqual(m.bytes, 200)
        XCTAssertEqual(recorder.file(id: id, rendition: "source", name: "seg1.m4s", in: m), [UInt8](repeating: 1, count: 100))
        // A new session after the end is a new recording.
        recorder.take(segment(2, discontinuity: true))
        await recorder.drain()
        XCTAssertEqual(recorder.current(stream: "s1")?.id, "s1-abcdef01-2")
        XCTAssertEqual(recorder.current(stream: "s1")?.state, .recording)
        XCTAssertEqual(recorder.manifest(id: id)?.state, .ready, "the old one, from its manifest on disk")
    }

    func testARecordingAPreviousRunLeftUnfinishedIsIncompleteAtStart() async throws {
        let files = Files()
        let before = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        for o in [initSegment(), segment(0), segment(1)] { before.take(o) }
        await before.drain()
        XCTAssertEqual(before.manifest(id: "s1-abcdef01-0")?.state, .recording)
        // The node dies; the next run finds the recording unfinished.
        let after = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        await after.drain()
        let m = try XCTUnwrap(after.manifest(id: "s1-abcdef01-0"))
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "the node stopped while it was being recorded")
        XCTAssertEqual(m.rendition("source")?.segments.count, 1, "what the manifest had when it was last stored")
        XCTAssertTrue(m.mediaPlaylist(rendition: "source")?.hasSuffix("#EXT-X-ENDLIST\n") == true)
    }

    func testAFailingDiskMarksTheRecordingIncompleteAndTheRestIsKept() async throws {
        let files = Files()
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        recorder.take(initSegment())
        recorder.take(segment(0))
        await recorder.drain()
        files.failing.withLock { $0 = { $0.hasSuffix("seg1.m4s") } }
        recorder.take(segment(1))
        await recorder.drain()
        files.failing.withLock { $0 = nil }
        recorder.take(segment(2))
        recorder.take(.ended(stream: "s1", epoch: epoch))
        await recorder.drain()
        let m = try XCTUnwrap(recorder.manifest(id: "s1-abcdef01-0"))
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "segment 1 of source could not be written: No space left on device")
        XCTAssertEqual(m.rendition("source")?.segments.map(\.sequence), [0, 2], "what could be kept is kept")
        let playlist = try XCTUnwrap(m.mediaPlaylist(rendition: "source"))
        XCTAssertTrue(playlist.contains("seg0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.00000,\nseg2.m4s\n#EXT-X-ENDLIST"))
    }

    func testASlowDiskNeverHoldsTheStreamUpAndLosesWhatDoesNotFit() async throws {
        let files = Files()
        files.delay.withLock { $0 = 0.2 }
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, maxQueuedBytes: 1000, logger: logger)
        let start = ContinuousClock.now
        recorder.take(initSegment())
        for n in 0..<20 { recorder.take(segment(n, size: 300)) }
        recorder.take(.ended(stream: "s1", epoch: epoch))
        XCTAssertLessThan(ContinuousClock.now - start, .milliseconds(100), "taking never waits for the disk")
        await recorder.drain()
        let m = try XCTUnwrap(recorder.manifest(id: "s1-abcdef01-0"))
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertTrue(m.reason?.contains("the disk could not keep up") == true, m.reason ?? "")
        XCTAssertLessThan(m.rendition("source")?.segments.count ?? 0, 20)
        XCTAssertGreaterThan(m.rendition("source")?.segments.count ?? 0, 0)
    }

    func testTheStoreMergesEachNodesCopyOnBothEngines() async throws {
        let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
        for location in try await TestDatabases.fresh() {
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            do {
                let store = RecordingStore(database: db)
                let t0 = Date(timeIntervalSince1970: 1_800_000_000)
                var origin = RecordingCopy(id: "s1-abcdef01-0", nodeID: "a", streamID: "s1", state: "recording", startedAt: t0,
                                           durationSeconds: 4, bytes: 1000, renditions: ["source"])
                try await store.save(origin)
                var standby = origin
                standby.nodeID = "b"
                try await store.save(standby)
                try await store.save(RecordingCopy(id: "s1-abcdef01-9", nodeID: "a", streamID: "s1", state: "ready",
                                                   startedAt: t0.addingTimeInterval(100), endedAt: t0.addingTimeInterval(110),
                                                   durationSeconds: 10, bytes: 5, renditions: ["source", "360p"]))
                try await store.save(RecordingCopy(id: "other-abcdef01-0", nodeID: "a", streamID: "other", state: "ready",
                                                   startedAt: t0, durationSeconds: 1, bytes: 1, renditions: ["source"]))
                var list = try await store.recordings(stream: "s1")
                XCTAssertEqual(list.map(\.recording.id), ["s1-abcdef01-0", "s1-abcdef01-9"], TestDatabases.engine(location))
                XCTAssertEqual(list[0].recording.state, "recording")
                XCTAssertEqual(list[0].nodes, ["a", "b"])
                XCTAssertEqual(list[1].recording.renditions, ["source", "360p"])
                XCTAssertEqual(list[1].recording.endedAt, t0.addingTimeInterval(110))
                // The origin's disk fills; the standby's copy ends ready: the recording is ready, from b first.
                origin.state = "incomplete"
                origin.reason = "disk full"
                try await store.save(origin)
                standby.state = "ready"
                standby.endedAt = t0.addingTimeInterval(6)
                standby.durationSeconds = 6
                try await store.save(standby)
                list = try await store.recordings(stream: "s1")
                XCTAssertEqual(list[0].recording.state, "ready")
                XCTAssertNil(list[0].recording.reason)
                XCTAssertEqual(list[0].recording.durationSeconds, 6)
                XCTAssertEqual(list[0].nodes, ["b", "a"])
                let one = try await store.recording(id: "s1-abcdef01-0")
                XCTAssertEqual(one?.nodes, ["b", "a"])
                // The merge alone: a copy still being made after another ended (a standby that took a
                // stream over) says `recording`; one that stopped reporting before (a dead origin) does not.
                let t = Date()
                let ended = RecordingCopy(id: "r", nodeID: "a", streamID: "s", state: "ready", startedAt: t, endedAt: t,
                                          durationSeconds: 5, bytes: 1, renditions: [])
                var going = ended
                going.nodeID = "b"
                going.state = "recording"
                going.endedAt = nil
                going.updatedAt = t.addingTimeInterval(1)
                XCTAssertEqual(RecordingSummary(copies: [ended, going], now: t.addingTimeInterval(2)).recording.state, "recording")
                going.updatedAt = t.addingTimeInterval(-1)
                XCTAssertEqual(RecordingSummary(copies: [ended, going], now: t.addingTimeInterval(2)).recording.state, "ready")
                going.updatedAt = t.addingTimeInterval(1)
                XCTAssertEqual(RecordingSummary(copies: [going], now: t.addingTimeInterval(200)).recording.state, "recording",
                               "nothing better to say")
                let none = try await store.recording(id: "nothing")
                XCTAssertNil(none)
            } catch {
                await db.close()
                throw error
            }
            await db.close()
        }
    }
}
