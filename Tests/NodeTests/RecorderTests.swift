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
        func remove(_ folder: String) throws { files.withLock { $0 = $0.filter { !$0.key.hasPrefix(folder + "/") } } }
        func list(_ folder: String) -> [String] {
            Array(Set(names.filter { $0.hasPrefix(folder + "/") }.map { String($0.dropFirst(folder.count + 1).prefix { $0 != "/" }) }))
        }
        var names: [String] { files.withLock { $0.keys.sorted() } }
    }

    func initSegment(_ rendition: String = "source") -> RecordedObject {
        .initSegment(RecordedInit(stream: "s1", epoch: epoch, rendition: rendition, version: 0, bytes: [0, 0, 0, 8],
                                  codecs: "avc1.64001f,mp4a.40.2", width: 1280, height: 720))
    }

    func segment(_ n: Int, _ rendition: String = "source", size: Int = 100, discontinuity: Bool = false, start: Int? = nil,
                 bytes: [UInt8]? = nil, initVersion: Int = 0) -> RecordedObject {
        .segment(RecordedSegment(stream: "s1", epoch: epoch, rendition: rendition, sequence: n, duration: 2, discontinuity: discontinuity,
                                 initVersion: initVersion, programDateTime: Date(), bytes: bytes ?? [UInt8](repeating: UInt8(n), count: size),
                                 recordingStart: start ?? 0))
    }

    /// A real init segment (one 320x240 H.264 track at 90 kHz, one AAC track) and fragments of it:
    /// what the crash rebuild reads durations back from.
    static let avcRecord: [UInt8] = [
        0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb,
        0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
        0x01, 0x00, 0x05, 0x68, 0xcb, 0x83, 0xcb, 0x20
    ]

    func realInit(version: Int = 0) throws -> RecordedObject {
        let tracks = [CMAFTrack(id: 1, timescale: 90_000, format: .avc(try AVCDecoderConfiguration(record: Self.avcRecord))),
                      CMAFTrack(id: 2, timescale: 48_000, format: .aac(try AudioSpecificConfig(bytes: [0x11, 0x90])))]
        return .initSegment(RecordedInit(stream: "s1", epoch: epoch, rendition: "source", version: version,
                                         bytes: CMAFWriter.initSegment(tracks: tracks), codecs: "avc1.42c00d,mp4a.40.2", width: 320, height: 240))
    }

    /// A segment of `frames` video frames of 3000 ticks (1/30 s), in two fragments (parts), and audio beside them.
    func realSegment(_ n: Int, frames: Int = 60) -> [UInt8] {
        let half = frames / 2
        var out: [UInt8] = []
        for part in 0..<2 {
            let start = UInt64((n * frames + part * half) * 3000)
            let video: [CMAFSample] = (0..<half).map { i in CMAFSample(duration: 3000, isSync: i == 0, data: [1, 2, 3]) }
            let audio: [CMAFSample] = (0..<10).map { _ in CMAFSample(duration: 1024, isSync: true, data: [9]) }
            out += CMAFWriter.fragment(sequenceNumber: UInt32(n * 2 + part), runs: [
                CMAFTrackRun(trackID: 1, baseDecodeTime: start, samples: video),
                CMAFTrackRun(trackID: 2, baseDecodeTime: 0, samples: audio),
            ])
        }
        return out
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
        // A new session after the end is a new recording (no reconnect grace here).
        recorder.take(segment(2, discontinuity: true, start: 2))
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

    // MARK: Reconnect grace, ids, crash rebuild, retention

    func testAPublisherBackWithinTheGraceContinuesTheRecordingAndLaterStartsANewOne() async throws {
        let files = Files()
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, reconnectGrace: 0.5, logger: logger)
        for o in [initSegment(), segment(0), segment(1), .ended(stream: "s1", epoch: epoch)] { recorder.take(o) }
        await recorder.drain()
        XCTAssertEqual(recorder.current(stream: "s1")?.state, .recording, "within the grace it stays recording")
        XCTAssertNil(recorder.current(stream: "s1")?.endedAt)
        // The publisher is back: its origin says the session goes into the same recording (start 0).
        recorder.take(segment(2, discontinuity: true, start: 0))
        recorder.take(segment(3, start: 0))
        recorder.take(.ended(stream: "s1", epoch: epoch))
        await recorder.drain()
        var m = try XCTUnwrap(recorder.current(stream: "s1"))
        XCTAssertEqual(m.id, "s1-abcdef01-0")
        XCTAssertEqual(m.rendition("source")?.segments.map(\.sequence), [0, 1, 2, 3])
        XCTAssertTrue(m.mediaPlaylist(rendition: "source")?.contains("seg1.m4s\n#EXT-X-DISCONTINUITY\n") == true)
        XCTAssertEqual(m.state, .recording)
        // The grace passes: the recording ends, ready, at the time the stream ended.
        try await Task.sleep(for: .milliseconds(800))
        await recorder.drain()
        m = try XCTUnwrap(recorder.manifest(id: "s1-abcdef01-0"))
        XCTAssertEqual(m.state, .ready)
        XCTAssertNotNil(m.endedAt)
        XCTAssertEqual(try XCTUnwrap(m.endedAt).timeIntervalSinceNow, -0.8, accuracy: 0.4)
        // A later session is a new recording.
        recorder.take(segment(4, discontinuity: true, start: 4))
        await recorder.drain()
        XCTAssertEqual(recorder.current(stream: "s1")?.id, "s1-abcdef01-4")
    }

    func testANewRecordingEndsTheOneStillWaitingOutItsGrace() async throws {
        let files = Files()
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, reconnectGrace: 60, logger: logger)
        for o in [initSegment(), segment(0), .ended(stream: "s1", epoch: epoch), segment(5, discontinuity: true, start: 5)] { recorder.take(o) }
        await recorder.drain()
        XCTAssertEqual(recorder.manifest(id: "s1-abcdef01-0")?.state, .ready)
        XCTAssertEqual(recorder.current(stream: "s1")?.id, "s1-abcdef01-5")
    }

    func testTheRecordingIdIsTheOriginsWhateverSegmentArrivesFirst() async throws {
        // A standby that gets the recording's segments late and out of order names it as its origin does.
        let files = Files()
        let standby = Recorder(directory: "/rec", nodeID: "n2", files: files, store: nil, logger: logger)
        for o in [initSegment(), segment(7, start: 3), segment(5, start: 3), segment(6, start: 3)] { standby.take(o) }
        await standby.drain()
        let m = try XCTUnwrap(standby.current(stream: "s1"))
        XCTAssertEqual(m.id, "s1-abcdef01-3")
        XCTAssertEqual(m.rendition("source")?.segments.map(\.sequence), [5, 6, 7])
        // A late segment of an older recording is not taken into this one.
        standby.take(segment(1, start: 0))
        await standby.drain()
        XCTAssertEqual(standby.current(stream: "s1")?.id, "s1-abcdef01-3")
        XCTAssertNil(standby.manifest(id: "s1-abcdef01-0"))
    }

    func testACopyLackingSegmentsEndsIncompleteSayingWhichButSkippedOnesAreNotLacking() async throws {
        func ended(_ objects: [RecordedObject]) async throws -> RecordingManifest {
            let recorder = Recorder(directory: "/rec", nodeID: "n2", files: Files(), store: nil, logger: logger)
            for o in [initSegment()] + objects + [.ended(stream: "s1", epoch: epoch)] { recorder.take(o) }
            await recorder.drain()
            return try XCTUnwrap(recorder.current(stream: "s1"))
        }
        // A hole in the middle: the origin stopped replicating here while a new owner took over.
        var m = try await ended([segment(0), segment(1), segment(4), segment(5)])
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "source segments 2-3 never reached this node")
        // A standby that came late lacks the start.
        m = try await ended([segment(6, start: 3), segment(7, start: 3)])
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "source segments 3-5 never reached this node")
        // Late and out of order, but whole.
        m = try await ended([segment(5, start: 3), segment(3, start: 3), segment(4, start: 3)])
        XCTAssertEqual(m.state, .ready)
        // A segment the stream left out on purpose (its frames open the next session) is no hole;
        // one of another life of the stream (epoch) does not count.
        m = try await ended([segment(0), segment(1), .skipped(stream: "s1", epoch: epoch, rendition: "source", sequence: 2),
                             segment(3, discontinuity: true)])
        XCTAssertEqual(m.state, .ready, m.reason ?? "")
        m = try await ended([segment(0), .skipped(stream: "s1", epoch: StreamEpoch(7), rendition: "source", sequence: 1), segment(2)])
        XCTAssertEqual(m.reason, "source segments 1-1 never reached this node")
        // A replica whose origin went elsewhere: incomplete, whatever it holds.
        m = try await ended([segment(0), segment(1), .cutOff(stream: "s1", epoch: epoch)])
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "its origin stopped replicating to this node before the recording ended")
        // Only the source counts (a rung may be shed for a while).
        m = try await ended([initSegment("360p"), segment(0), segment(1), segment(0, "360p"), segment(2), segment(2, "360p")])
        XCTAssertEqual(m.state, .ready)
    }

    func testACrashedRecordingIsRebuiltFromItsFiles() async throws {
        let files = Files()
        let before = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        before.take(try realInit())
        // More segments than the manifest is saved for: the last ones are only on disk.
        let count = Recorder.saveEvery + 5
        for n in 0..<count { before.take(segment(n, start: 0, bytes: realSegment(n))) }
        await before.drain()
        let json = "/rec/s1/s1-abcdef01-0/recording.json"
        let saved = try JSONDecoder().decode(SavedManifest.self, from: Data(try XCTUnwrap(files.read(json))))
        XCTAssertLessThan(saved.renditions[0].segments.count, count, "the manifest on disk lacks the last segments")
        // The node dies (SIGKILL); the next run finds every segment on disk.
        let after = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        await after.drain()
        let m = try XCTUnwrap(after.manifest(id: "s1-abcdef01-0"))
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.rendition("source")?.segments.map(\.sequence), Array(0..<count))
        for s in m.rendition("source")?.segments ?? [] { XCTAssertEqual(s.duration, 2, accuracy: 0.001, "from the boxes: 60 frames of 1/30 s") }
        XCTAssertEqual(m.duration, Double(count) * 2, accuracy: 0.01)
        let playlist = try XCTUnwrap(m.mediaPlaylist(rendition: "source"))
        XCTAssertEqual(playlist.components(separatedBy: "#EXTINF").count - 1, count)
        XCTAssertFalse(playlist.contains("#EXT-X-DISCONTINUITY"))
        XCTAssertTrue(playlist.hasSuffix("seg\(count - 1).m4s\n#EXT-X-ENDLIST\n"))
        // A rendition the manifest never named (its first segments came after the last save) is found too.
        files.files.withLock { f in
            f["/rec/s1/s1-abcdef01-0/240p/init0.mp4"] = f["/rec/s1/s1-abcdef01-0/source/init0.mp4"]
            f["/rec/s1/s1-abcdef01-0/240p/seg3.m4s"] = self.realSegment(3, frames: 30)
            f["/rec/s1/s1-abcdef01-0/240p/seg4.m4s"] = [0, 0, 0, 1]  // not a segment: left out
        }
        var rec = m
        rec.renditions.removeAll { $0.name == "240p" }
        XCTAssertEqual(after.rebuild(&rec), 1)
        let rung = try XCTUnwrap(rec.rendition("240p"))
        XCTAssertEqual(rung.codecs, "avc1.42c00d,mp4a.40.2")
        XCTAssertEqual(rung.width, 320)
        XCTAssertEqual(rung.segments.map(\.sequence), [3])
        XCTAssertEqual(rung.segments.first?.duration ?? 0, 1, accuracy: 0.001)
        XCTAssertEqual(rec.renditions.first?.name, "source")
    }

    struct SavedManifest: Decodable {
        struct Rendition: Decodable { var segments: [RecordingManifest.Segment] }
        var renditions: [Rendition]
    }

    func testRetentionRemovesTheOldestCopiesButNeverTheOneBeingRecorded() async throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let day = 86_400.0
        func copy(_ id: String, _ stream: String, daysAgo: Double, bytes: Int, open: Bool = false) -> RetentionSweep.Copy {
            RetentionSweep.Copy(id: id, stream: stream, startedAt: now.addingTimeInterval(-daysAgo * day), bytes: bytes, beingRecorded: open)
        }
        let copies = [copy("a-old", "a", daysAgo: 10, bytes: 100), copy("a-mid", "a", daysAgo: 5, bytes: 100),
                      copy("a-new", "a", daysAgo: 1, bytes: 100), copy("a-live", "a", daysAgo: 20, bytes: 100, open: true),
                      copy("b-1", "b", daysAgo: 30, bytes: 1000), copy("b-2", "b", daysAgo: 2, bytes: 1000),
                      copy("op", "op", daysAgo: 40, bytes: 10)]
        let rules: [String: (id: String, rule: ChannelRecording)] = [
            "a": ("alice", ChannelRecording(keepDays: 7)), "b": ("bob", ChannelRecording(keepBytes: 1500))]
        var out = RetentionSweep.removals(copies: copies, channel: { rules[$0] }, maxBytes: nil, now: now)
        XCTAssertEqual(out.map(\.copy.id), ["a-old", "b-1"])
        XCTAssertEqual(out.map(\.reason), ["age", "channel-bytes"])
        // The node budget then takes the oldest of what is left, whatever its channel; never one being recorded.
        out = RetentionSweep.removals(copies: copies, channel: { rules[$0] }, maxBytes: 1250, now: now)
        XCTAssertEqual(out.map(\.copy.id), ["a-old", "b-1", "op", "a-mid"])
        XCTAssertEqual(out.last?.reason, "node-budget")
        out = RetentionSweep.removals(copies: copies, channel: { _ in nil }, maxBytes: 0, now: now)
        XCTAssertFalse(out.contains { $0.copy.id == "a-live" })
        XCTAssertEqual(out.count, copies.count - 1)
    }

    func testTheSweeperDeletesCopiesPastTheNodeBudget() async throws {
        let files = Files()
        let recorder = Recorder(directory: "/rec", nodeID: "n1", files: files, store: nil, logger: logger)
        for o in [initSegment(), segment(0, size: 500), segment(1, size: 500), .ended(stream: "s1", epoch: epoch),
                  segment(2, size: 500, discontinuity: true, start: 2), segment(3, size: 500, start: 2)] { recorder.take(o) }
        await recorder.drain()
        let sweeper = RecordingSweeper(recorder: recorder, maxBytes: 1200, channel: { _ in nil }, logger: logger)
        let removed = await sweeper.sweep()
        XCTAssertEqual(removed.map(\.copy.id), ["s1-abcdef01-0"])
        XCTAssertNil(recorder.manifest(id: "s1-abcdef01-0"))
        XCTAssertFalse(files.names.contains { $0.hasPrefix("/rec/s1/s1-abcdef01-0/") }, "its folder is gone")
        XCTAssertNotNil(recorder.manifest(id: "s1-abcdef01-2"), "the one being recorded stays, over budget or not")
        let again = await sweeper.sweep()
        XCTAssertEqual(again, [])
    }
}

/// The recorder's files on a real disk: whole files under their names (written beside and
/// renamed), replaced whole, nothing left beside them; a failure said in the system's words.
final class DiskRecordingFilesTests: XCTestCase {
    func testFilesAreWrittenWholeAndFailuresSaidInWords() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("disk-files-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let files = DiskRecordingFiles()
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0) }
        try files.write(big, to: root + "/s1/r1/source/seg1.m4s")
        XCTAssertEqual(files.read(root + "/s1/r1/source/seg1.m4s"), big)
        try files.write([1, 2, 3], to: root + "/s1/r1/source/seg1.m4s")
        XCTAssertEqual(files.read(root + "/s1/r1/source/seg1.m4s"), [1, 2, 3], "replaced whole")
        XCTAssertEqual(files.list(root + "/s1/r1/source"), ["seg1.m4s"], "no temporary file left")
        let mode = try FileManager.default.attributesOfItem(atPath: root + "/s1/r1/source/seg1.m4s")[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        // A folder asked for where a file is, a file where a folder is: the write fails, in words.
        XCTAssertThrowsError(try files.write([1], to: root + "/s1/r1/source/seg1.m4s/x")) { e in
            XCTAssertTrue(Recorder.describe(e).contains("A file with the same name already exists"), Recorder.describe(e))
        }
        XCTAssertThrowsError(try files.write([1], to: root + "/s1/r1/source")) { e in
            XCTAssertEqual(Recorder.describe(e), "Is a directory", "\(e)")
        }
        XCTAssertEqual(files.list(root + "/s1/r1"), ["source"], "nothing left beside")
        XCTAssertEqual(Recorder.describe(POSIXError(.ENOSPC)), "No space left on device")
    }
}
