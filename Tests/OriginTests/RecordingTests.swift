import Foundation
import Synchronization
import MediaTestSupport
import XCTest
@testable import Origin

/// What a stream hands its recorder, on the origin and on its standby, and the VOD playlists a
/// recording's manifest makes.
final class RecordingTests: XCTestCase {
    final class Collected: Sendable {
        let objects = Mutex<[RecordedObject]>([])
        var sink: @Sendable (RecordedObject) -> Void { { [self] o in objects.withLock { $0.append(o) } } }

        var segments: [RecordedSegment] {
            objects.withLock { $0.compactMap { if case .segment(let s) = $0 { s } else { nil } } }
        }
        var inits: [RecordedInit] {
            objects.withLock { $0.compactMap { if case .initSegment(let i) = $0 { i } else { nil } } }
        }
        var endings: Int { objects.withLock { $0.filter { if case .ended = $0 { true } else { false } }.count } }

        /// A manifest as the node's recorder would keep it.
        func manifest() -> RecordingManifest? {
            guard let first = segments.first else { return nil }
            var m = RecordingManifest(stream: first.stream, epoch: first.epoch, firstSequence: first.recordingStart ?? first.sequence, startedAt: first.programDateTime)
            for i in inits { m.noteInit(i) }
            for s in segments { m.noteSegment(s) }
            if endings > 0 { m.state = .ready }
            return m
        }
    }

    /// The helpers of `ReplicationTests`, for a stream and its standby.
    enum replication {
        static func tags() throws -> [FLVFile.Tag] { try FLVFile(try MediaFixtures.flv(name: "cut-6s", seconds: 6)).tags }

        /// An AVC keyframe's NAL units (not its sequence header).
        static func isKeyframe(_ t: FLVFile.Tag) -> Bool { t.type == 9 && t.body.count > 1 && t.body[0] >> 4 == 1 && t.body[1] == 1 }

        static func feed(_ live: LiveStream, _ tags: ArraySlice<FLVFile.Tag>, shift: UInt32 = 0) throws {
            for tag in tags {
                if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp + shift, byteCount: tag.body.count) }
                if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp + shift, byteCount: tag.body.count) }
            }
        }

        /// The codec headers a relay sends first (before any media).
        static func headers(_ all: [FLVFile.Tag]) -> ArraySlice<FLVFile.Tag> { all.prefix { !isKeyframe($0) && $0.timestamp == 0 } }

        typealias KillCase = (name: String, replicatedUpTo: Int, killedAt: Int, replayFrom: Int)

        /// Keyframes every second, 2 s segments: the origin dies just after the keyframe at 4 s (the
        /// relay's replay starts at 3 s) or at 5 s (the replay starts at 4 s), its standby a little behind.
        static func killCases(_ all: [FLVFile.Tag]) throws -> [KillCase] {
            func index(at ms: UInt32) throws -> Int { try XCTUnwrap(all.indices.first { all[$0].timestamp >= ms }) }
            func keyframe(at ms: UInt32) throws -> Int { try XCTUnwrap(all.indices.first { isKeyframe(all[$0]) && all[$0].timestamp >= ms }) }
            return [
                ("standby without the end of the GOP at 3 s", try index(at: 3_400), try keyframe(at: 4_000) + 3, try keyframe(at: 3_000)),
                ("standby with the segment ended by the keyframe at 4 s", try keyframe(at: 4_000) + 1, try keyframe(at: 4_000) + 3, try keyframe(at: 3_000)),
                ("standby with a part of the GOP at 4 s", try index(at: 4_700), try index(at: 4_900), try keyframe(at: 3_000)),
                ("standby without the end of the GOP at 4 s", try index(at: 4_400), try keyframe(at: 5_000) + 3, try keyframe(at: 4_000)),
            ]
        }

        static func publishingPair(_ id: String) throws -> (origin: LiveStream, standby: LiveStream, wire: ReplicationTests.Wire) {
            let origin = LiveStream(id: id), standby = LiveStream(id: id)
            let wire = ReplicationTests.Wire()
            wire.connect(origin)
            try wire.attach(origin, standby)
            origin.beginPublishing()
            return (origin, standby, wire)
        }

        /// A standby attached to its origin (not publishing yet), what each records collected.
        static func recording(_ origin: LiveStream, _ standby: LiveStream) throws -> (ReplicationTests.Wire, Collected, Collected) {
            let wire = ReplicationTests.Wire()
            wire.connect(origin)
            try wire.attach(origin, standby)
            let atOrigin = Collected(), atStandby = Collected()
            origin.record(to: atOrigin.sink)
            standby.record(to: atStandby.sink)
            return (wire, atOrigin, atStandby)
        }
    }

    func testTheOriginAndItsStandbyRecordTheSameSegmentsAndBothEnd() throws {
        let all = try replication.tags()
        let (origin, standby, wire) = try replication.publishingPair("rec1")
        let atOrigin = Collected(), atStandby = Collected()
        origin.record(to: atOrigin.sink)
        standby.record(to: atStandby.sink)
        var delivered = 0
        for chunk in stride(from: 0, to: all.count, by: 50) {
            try replication.feed(origin, all[chunk..<min(chunk + 50, all.count)])
            try wire.deliver(to: standby, from: &delivered)
        }
        XCTAssertEqual(atOrigin.endings, 0, "still live")
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertEqual(atOrigin.endings, 1)
        XCTAssertEqual(atStandby.endings, 1, "the origin said its renditions ended")

        let segments = atOrigin.segments
        XCTAssertGreaterThanOrEqual(segments.count, 3)
        XCTAssertEqual(segments.map(\.sequence), Array(0..<segments.count), "every segment once, in order")
        XCTAssertEqual(segments.map(\.bytes), segments.map { origin.segment(sequence: $0.sequence) ?? [] })
        XCTAssertEqual(atStandby.segments, segments, "the standby's copy is the origin's")
        XCTAssertEqual(atOrigin.inits.map(\.bytes), [origin.initSegment(version: 0)!])
        XCTAssertEqual(atStandby.inits.map(\.bytes), atOrigin.inits.map(\.bytes))
        XCTAssertTrue(atOrigin.inits[0].codecs.hasPrefix("avc1."))

        let m = try XCTUnwrap(atOrigin.manifest())
        XCTAssertEqual(m.id, "rec1-\(origin.epoch)-0")
        XCTAssertEqual(m.duration, segments.reduce(0) { $0 + $1.duration }, accuracy: 0.001)
        XCTAssertEqual(m.duration, 6, accuracy: 0.5)
        let playlist = try XCTUnwrap(m.mediaPlaylist(rendition: "source"))
        XCTAssertTrue(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"))
        XCTAssertTrue(playlist.hasSuffix("#EXT-X-ENDLIST\n"))
        XCTAssertTrue(playlist.contains("#EXT-X-MAP:URI=\"init0.mp4\"\n"))
        XCTAssertEqual(playlist.components(separatedBy: "\n").filter { $0.hasPrefix("seg") }.count, segments.count)
        XCTAssertFalse(playlist.contains("DISCONTINUITY"))
        XCTAssertTrue(m.masterPlaylist().contains("source/index.m3u8"))
    }

    func testAReplicaWhoseOriginFallsSilentEndsWithItsRecordingAndABatchTakesItUpAgain() throws {
        let all = try replication.tags()
        let (origin, standby, wire) = try replication.publishingPair("rec9")
        let atStandby = Collected()
        standby.record(to: atStandby.sink)
        var delivered = 0
        let half = all.count / 2
        try replication.feed(origin, all[..<half])
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertTrue(standby.isLive(rendition: LiveStream.sourceRendition))
        XCTAssertFalse(standby.endReplica(ifSilentFor: 60), "not silent that long")
        XCTAssertFalse(origin.endReplica(ifSilentFor: 0), "an origin publishing is no replica")
        XCTAssertTrue(standby.endReplica(ifSilentFor: 0), "the origin went elsewhere")
        XCTAssertFalse(standby.isLive(rendition: LiveStream.sourceRendition))
        XCTAssertTrue(standby.mediaPlaylist()!.hasSuffix("#EXT-X-ENDLIST\n"), "its viewers get the end")
        XCTAssertEqual(atStandby.endings, 1, "and its recording ends, the held segment recorded")
        XCTAssertEqual(atStandby.objects.withLock { $0.filter { if case .cutOff = $0 { true } else { false } }.count }, 1,
                       "saying it lacks what came after")
        XCTAssertFalse(standby.endReplica(ifSilentFor: 0), "once")
        // The origin was only slow: what it sends next takes the replica up again.
        try replication.feed(origin, all[half...])
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertTrue(standby.isLive(rendition: LiveStream.sourceRendition))
        XCTAssertEqual(atStandby.segments.map(\.sequence), Array(0..<atStandby.segments.count), "every segment once, in order")
    }

    /// A standby that comes after the origin made its init segment and first segments (a snapshot
    /// carries them) records the same recording from the start of the session.
    func testAStandbyCaughtUpByASnapshotRecordsFromTheSessionStart() throws {
        let all = try replication.tags()
        let origin = LiveStream(id: "rec3")
        let wire = ReplicationTests.Wire()
        wire.connect(origin)
        let atOrigin = Collected(), atStandby = Collected()
        origin.record(to: atOrigin.sink)
        origin.beginPublishing()
        try replication.feed(origin, all[..<(all.count / 2)])
        XCTAssertFalse(atOrigin.segments.isEmpty)
        let standby = LiveStream(id: "rec3")
        standby.record(to: atStandby.sink)
        var delivered = 0
        var covered: UInt64 = 0
        var snap = origin.snapshot { ordinal in
            covered = ordinal
            delivered = wire.batches.withLock { $0.count }
        }
        snap.epoch = wire.epoch
        snap.sequence = UInt64(delivered)
        try standby.applyReplica(ReplicaBatch(decoding: snap.encoded()))
        wire.acknowledge(through: covered)
        try replication.feed(origin, all[(all.count / 2)...])
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertEqual(atStandby.segments, atOrigin.segments)
        XCTAssertEqual(atStandby.inits, atOrigin.inits)
        XCTAssertEqual(atStandby.manifest(), atOrigin.manifest())
        XCTAssertEqual(atStandby.endings, 1)
        XCTAssertEqual(Set(atStandby.segments.map(\.recordingStart)), [0 as Int?], "the origin's recording, named as it names it")
    }

    /// A publisher back within the grace continues the recording (same start, behind a
    /// discontinuity), on the origin and on its standby; after the grace a session starts another.
    func testASessionWithinTheReconnectGraceContinuesTheRecordingOnBothNodes() throws {
        let all = try replication.tags()
        let origin = LiveStream(id: "rec4", recordingGrace: 0.5), standby = LiveStream(id: "rec4")
        let (wire, atOrigin, atStandby) = try replication.recording(origin, standby)
        var delivered = 0
        origin.beginPublishing()
        try replication.feed(origin, all[...])
        origin.endPublishing()
        let first = atOrigin.segments.count
        origin.beginPublishing()
        try replication.feed(origin, all[...], shift: 10_000)
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertGreaterThan(atOrigin.segments.count, first)
        XCTAssertEqual(Set(atOrigin.segments.map(\.recordingStart)), [0 as Int?])
        XCTAssertTrue(atOrigin.segments[first].discontinuity)
        XCTAssertEqual(atStandby.segments, atOrigin.segments, "the standby's copy follows the origin's decision")
        // After the grace: a new recording, starting at the new session's first segment.
        Thread.sleep(forTimeInterval: 0.6)
        let second = atOrigin.segments.count
        origin.beginPublishing()
        try replication.feed(origin, all[...], shift: 20_000)
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        let next = atOrigin.segments[second]
        XCTAssertEqual(next.recordingStart, next.sequence)
        XCTAssertEqual(Set(atOrigin.segments[second...].map(\.recordingStart)), [next.sequence as Int?])
        XCTAssertEqual(atStandby.segments, atOrigin.segments)
    }

    /// A stream not recorded (its setting, asked as a session begins) hands its recorder no
    /// segment, on the origin nor on the standby, until a later session is recorded.
    func testASessionNotRecordedIsRecordedByNeitherNode() throws {
        let all = try replication.tags()
        let recorded = Atomic<Bool>(false)
        let origin = LiveStream(id: "rec5", recordsSessions: { recorded.load(ordering: .relaxed) }), standby = LiveStream(id: "rec5")
        let (wire, atOrigin, atStandby) = try replication.recording(origin, standby)
        var delivered = 0
        origin.beginPublishing()
        try replication.feed(origin, all[...])
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertTrue(origin.hasMedia && standby.hasMedia, "the live stream and its replica go on")
        XCTAssertEqual(atOrigin.segments, [])
        XCTAssertEqual(atStandby.segments, [])
        XCTAssertEqual(atOrigin.endings + atStandby.endings, 0)
        recorded.store(true, ordering: .relaxed)
        origin.beginPublishing()
        try replication.feed(origin, all[...], shift: 10_000)
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertFalse(atOrigin.segments.isEmpty)
        XCTAssertEqual(atStandby.segments, atOrigin.segments)
        XCTAssertEqual(atOrigin.segments.first?.recordingStart, atOrigin.segments.first?.sequence)
    }

    /// The boxes read back from what `CMAFWriter` writes: tracks, codecs, a segment's duration.
    func testTheFragmentReaderReadsTracksAndDurationsBack() throws {
        let all = try replication.tags()
        let live = LiveStream(id: "rec6")
        live.beginPublishing()
        try replication.feed(live, all[...])
        live.endPublishing()
        let tracks = try XCTUnwrap(FragmentReader.tracks(initSegment: try XCTUnwrap(live.initSegment(version: 0))))
        XCTAssertEqual(tracks.map(\.handler), ["vide", "soun"])
        XCTAssertTrue(tracks[0].codecs?.hasPrefix("avc1.") == true)
        XCTAssertEqual(tracks[1].codecs, "mp4a.40.2")
        XCTAssertNotNil(tracks[0].width)
        let status = live.status
        for sequence in (status.firstSequence ?? 0)...(status.lastSequence ?? -1) {
            let bytes = try XCTUnwrap(live.segment(sequence: sequence))
            let duration = try XCTUnwrap(FragmentReader.duration(segment: bytes, tracks: tracks))
            XCTAssertGreaterThan(duration, 0.5)
            XCTAssertLessThan(duration, 4)
        }
        XCTAssertNil(FragmentReader.tracks(initSegment: [0, 0, 0, 8, 0x66, 0x72, 0x65, 0x65]))
        XCTAssertNil(FragmentReader.duration(segment: [1, 2, 3], tracks: tracks))
        for cut in [0, 7, 20, 100] where cut < (live.segment(sequence: 0)?.count ?? 0) {
            _ = FragmentReader.duration(segment: Array(live.segment(sequence: 0)!.prefix(cut)), tracks: tracks)  // never traps
        }
    }

    func testAStandbyTakingOverContinuesTheRecordingAndANewSessionAfterTheEndStartsAnother() throws {
        let all = try replication.tags()
        let (origin, standby, wire) = try replication.publishingPair("rec2")
        let atStandby = Collected()
        standby.record(to: atStandby.sink)
        var delivered = 0
        try replication.feed(origin, all[..<(all.count / 2)])
        try wire.deliver(to: standby, from: &delivered)
        // The origin dies: the standby takes over with a new publisher, behind a discontinuity.
        standby.beginPublishing()
        try replication.feed(standby, all[...], shift: 10_000)
        XCTAssertEqual(atStandby.endings, 0, "a takeover does not end the recording")
        standby.endPublishing()
        XCTAssertEqual(atStandby.endings, 1)
        let m = try XCTUnwrap(atStandby.manifest())
        let playlist = try XCTUnwrap(m.mediaPlaylist(rendition: "source"))
        XCTAssertEqual(playlist.components(separatedBy: "#EXT-X-DISCONTINUITY\n").count, 2, playlist)
        XCTAssertEqual(Set(atStandby.segments.map(\.sequence)).count, atStandby.segments.count, "no segment twice")
        // Publishing again after the end: the next segments start a new recording (their own first sequence).
        let before = atStandby.segments.count
        standby.beginPublishing()
        try replication.feed(standby, all[...], shift: 40_000)
        let next = atStandby.segments[before]
        XCTAssertTrue(next.discontinuity)
        XCTAssertGreaterThan(next.sequence, atStandby.segments[before - 1].sequence)
    }

    /// A graceful handover in the middle of a GOP: the old origin's last segment ends with half a
    /// GOP that the relay sends the new origin again from its keyframe. The standby's recording
    /// keeps the old segment only up to that keyframe, so it is as long as the broadcast.
    func testAHandoverInTheMiddleOfAGOPRecordsTheReplayedFramesOnce() throws {
        let all = try replication.tags()
        let broadcast = try recordedDuration(all)
        let isKeyframe = replication.isKeyframe
        // The keyframe at 3 s starts the second GOP of a 2 s segment; the origin stops half a GOP later.
        let k = try XCTUnwrap(all.indices.first { isKeyframe(all[$0]) && all[$0].timestamp >= 3_000 })
        let stop = try XCTUnwrap(all.indices.first { all[$0].timestamp >= all[k].timestamp + 500 })
        let (origin, standby, wire) = try replication.publishingPair("rec-handover")
        let atStandby = Collected()
        standby.record(to: atStandby.sink)
        var delivered = 0
        try replication.feed(origin, all[..<stop])
        try wire.deliver(to: standby, from: &delivered)
        let before = wire.batches.withLock { $0.count }
        origin.endPublishing()
        // The handover's batches say the stream goes on (the node's Replicator marks them so).
        wire.batches.withLock { list in for i in before..<list.count { for r in list[i].renditions.indices { list[i].renditions[r].live = true } } }
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertEqual(atStandby.endings, 0)
        standby.beginPublishing()
        // The relay's replay: the codec headers, its GOP in progress, then the rest.
        try replication.feed(standby, replication.headers(all))
        try replication.feed(standby, all[k...])
        standby.endPublishing()

        let m = try XCTUnwrap(atStandby.manifest())
        XCTAssertEqual(m.duration, broadcast, accuracy: 0.05, "nothing recorded twice, nothing lost")
        let segments = atStandby.segments
        let resumed = try XCTUnwrap(segments.first { $0.discontinuity })
        let cutSegment = try XCTUnwrap(segments.last { $0.sequence < resumed.sequence })
        XCTAssertEqual(cutSegment.duration, 1, accuracy: 0.05, "the segment keeps its first GOP only")
        XCTAssertEqual(Set(segments.map(\.sequence)).count, segments.count)
    }

    /// An origin killed (no handover) a moment after a keyframe, its standby a little behind. The
    /// relay replays the GOP before the one in progress and that one; whatever the standby had, its
    /// recording holds the broadcast once: the end of the previous GOP the standby never got is
    /// recorded from the replay (the hole a one-GOP replay left), and a replayed GOP in a segment
    /// recorded already is dropped.
    func testAKilledOriginsStandbyRecordsTheTwoGOPReplayOnce() throws {
        let all = try replication.tags()
        let broadcast = try recordedDuration(all)
        let headers = replication.headers(all)
        for c in try replication.killCases(all) {
            let (origin, standby, wire) = try replication.publishingPair("rec-kill")
            let atStandby = Collected()
            standby.record(to: atStandby.sink)
            var delivered = 0
            try replication.feed(origin, all[..<c.replicatedUpTo])
            try wire.deliver(to: standby, from: &delivered)
            // What the origin packaged after that never reaches the standby: SIGKILL.
            try replication.feed(origin, all[c.replicatedUpTo..<c.killedAt])
            standby.beginPublishing()
            try replication.feed(standby, headers)
            try replication.feed(standby, all[c.replayFrom...])
            standby.endPublishing()

            let m = try XCTUnwrap(atStandby.manifest(), c.name)
            XCTAssertEqual(m.duration, broadcast, accuracy: 0.05, "\(c.name): nothing recorded twice, nothing lost")
            let segments = atStandby.segments
            XCTAssertEqual(Set(segments.map(\.sequence)).count, segments.count, c.name)
            XCTAssertEqual(segments.filter(\.discontinuity).count, 1, c.name)
        }
    }

    /// The new origin's own standby (the node after it in the ring) gets the stream from a snapshot
    /// the new origin sends once it publishes — before its session's first keyframe or after — and
    /// then batches. The new origin cuts the recording of the segment its relay's replay repeats; the
    /// standby's copy of the recording must be cut alike: the broadcast once, segment for segment the
    /// new origin's copy (it held the replayed GOP twice before the cut went with the replica).
    func testTheNewOriginsStandbyRecordsTheReplayOnceLikeTheNewOrigin() throws {
        let all = try replication.tags()
        let broadcast = try recordedDuration(all)
        let isKeyframe = replication.isKeyframe
        let headers = replication.headers(all)
        for c in try replication.killCases(all) {
            for snapshotAfterReplayStarts in [false, true] {
                let name = "\(c.name), snapshot \(snapshotAfterReplayStarts ? "after" : "before") the replay starts"
                let (origin, standby, wire) = try replication.publishingPair("rec-next")
                let atStandby = Collected()
                standby.record(to: atStandby.sink)
                var delivered = 0
                try replication.feed(origin, all[..<c.replicatedUpTo])
                try wire.deliver(to: standby, from: &delivered)
                try replication.feed(origin, all[c.replicatedUpTo..<c.killedAt])  // SIGKILL: never replicated
                // The standby publishes (the relay reconnected to it); its own standby is the third node.
                let next = LiveStream(id: "rec-next"), atNext = Collected()
                next.record(to: atNext.sink)
                let onward = ReplicationTests.Wire(epoch: 9)
                standby.beginPublishing()
                try replication.feed(standby, headers)
                let replay = all[c.replayFrom...]
                let firstGOP = replay.index(after: replay.startIndex) ..< replay.endIndex
                let secondKeyframe = try XCTUnwrap(firstGOP.first { isKeyframe(all[$0]) })
                if snapshotAfterReplayStarts {
                    try replication.feed(standby, all[c.replayFrom..<secondKeyframe])
                    onward.connect(standby)
                    try onward.attach(standby, next)
                    try replication.feed(standby, all[secondKeyframe...])
                } else {
                    onward.connect(standby)
                    try onward.attach(standby, next)
                    try replication.feed(standby, replay)
                }
                standby.endPublishing()
                var onwardDelivered = 0
                try onward.deliver(to: next, from: &onwardDelivered)

                let m = try XCTUnwrap(atNext.manifest(), name)
                XCTAssertEqual(m.duration, broadcast, accuracy: 0.05, "\(name): nothing recorded twice, nothing lost")
                XCTAssertEqual(atNext.endings, 1, name)
                let key = { (s: RecordedSegment) in "\(s.rendition)/\(s.sequence): \(s.bytes.count) bytes" }
                let fromStandby = atStandby.segments.map(key).sorted(), fromNext = atNext.segments.map(key).sorted()
                XCTAssertEqual(Set(fromNext).count, fromNext.count, name)
                // The snapshot held the whole recording so far (6 s): the same copy on both nodes.
                XCTAssertEqual(fromNext, fromStandby, name)
            }
        }
    }

    /// How long the recording of `tags` published in one session on one node is.
    func recordedDuration(_ tags: [FLVFile.Tag]) throws -> Double {
        let whole = LiveStream(id: "whole")
        let atWhole = Collected()
        whole.record(to: atWhole.sink)
        whole.beginPublishing()
        try replication.feed(whole, tags[...])
        whole.endPublishing()
        return try XCTUnwrap(atWhole.manifest()).duration
    }

    func testRecordingIDsAndPlaylistsOfBrokenRecordings() throws {
        let epoch = StreamEpoch(0x1f2a3b4c)
        XCTAssertEqual(RecordingManifest.id(stream: "ab-c_d", epoch: epoch, firstSequence: 12), "ab-c_d-1f2a3b4c-12")
        let parsed = try XCTUnwrap(RecordingManifest.parse(id: "ab-c_d-1f2a3b4c-12"))
        XCTAssertEqual(parsed.stream, "ab-c_d")
        XCTAssertEqual(parsed.epoch, epoch)
        XCTAssertEqual(parsed.firstSequence, 12)
        for bad in ["", "abc", "abc-1f2a3b4c", "abc-1F2A3B4C-1", "abc-1f2a3b4c-01", "-1f2a3b4c-1", "abc-1f2a3b4c-", "abc-1f2a3b4c-1x"] {
            XCTAssertNil(RecordingManifest.parse(id: bad), bad)
        }
        var m = RecordingManifest(stream: "s", epoch: epoch, firstSequence: 3, startedAt: Date(timeIntervalSince1970: 0))
        m.noteInit(RecordedInit(stream: "s", epoch: epoch, rendition: "360p", version: 0, bytes: [1], codecs: "avc1.64001e,mp4a.40.2",
                                width: 640, height: 360))
        m.noteInit(RecordedInit(stream: "s", epoch: epoch, rendition: "360p", version: 1, bytes: [1], codecs: "avc1.64001e,mp4a.40.2",
                                width: 640, height: 360))
        func seg(_ n: Int, _ d: Double, init v: Int = 0, discontinuity: Bool = false) -> RecordedSegment {
            RecordedSegment(stream: "s", epoch: epoch, rendition: "360p", sequence: n, duration: d, discontinuity: discontinuity,
                            initVersion: v, programDateTime: Date(), bytes: [UInt8](repeating: 0, count: 1000))
        }
        // 5 lost (a hole), 7 a new publisher session with a new init; 8 named an init never written.
        for s in [seg(4, 2.5), seg(3, 2), seg(6, 2), seg(7, 1.5, init: 1, discontinuity: true), seg(8, 2, init: 9)] { m.noteSegment(s) }
        XCTAssertEqual(m.mediaPlaylist(rendition: "360p"), """
            #EXTM3U
            #EXT-X-VERSION:7
            #EXT-X-TARGETDURATION:3
            #EXT-X-PLAYLIST-TYPE:EVENT
            #EXT-X-MEDIA-SEQUENCE:3
            #EXT-X-INDEPENDENT-SEGMENTS
            #EXT-X-MAP:URI="init0.mp4"
            #EXTINF:2.00000,
            seg3.m4s
            #EXTINF:2.50000,
            seg4.m4s
            #EXT-X-DISCONTINUITY
            #EXT-X-MAP:URI="init0.mp4"
            #EXTINF:2.00000,
            seg6.m4s
            #EXT-X-DISCONTINUITY
            #EXT-X-MAP:URI="init1.mp4"
            #EXTINF:1.50000,
            seg7.m4s

            """)
        m.fail("segment 5 of 360p could not be written: No space left on device")
        m.fail("a later reason")
        XCTAssertEqual(m.state, .incomplete)
        XCTAssertEqual(m.reason, "segment 5 of 360p could not be written: No space left on device")
        let vod = try XCTUnwrap(m.mediaPlaylist(rendition: "360p"))
        XCTAssertTrue(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && vod.hasSuffix("seg7.m4s\n#EXT-X-ENDLIST\n"))
        XCTAssertNil(m.mediaPlaylist(rendition: "720p"))
        XCTAssertEqual(m.masterPlaylist(), """
            #EXTM3U
            #EXT-X-VERSION:7
            #EXT-X-INDEPENDENT-SEGMENTS
            #EXT-X-STREAM-INF:BANDWIDTH=5333,AVERAGE-BANDWIDTH=4000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360
            360p/index.m3u8

            """)
        // The manifest survives its JSON (as the recorder stores it).
        let data = try JSONEncoder().encode(m)
        XCTAssertEqual(try JSONDecoder().decode(RecordingManifest.self, from: data), m)
    }
}
