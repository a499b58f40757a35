import Foundation
import Synchronization
import MediaTestSupport
import XCTest
@testable import Origin

/// An origin's stream replicated to a standby through the wire codec, the way the node's
/// sender numbers batches; then the standby takes over.
final class ReplicationTests: XCTestCase {
    /// Collects an origin's batches and numbers them like the node's sender does; what it
    /// delivers is acknowledged to the origin, as the sender does when the standby answers.
    final class Wire: Sendable {
        let batches = Mutex<[ReplicaBatch]>([])
        let epoch: UInt64
        private struct Weak { weak var origin: LiveStream? }
        private let origin = Mutex(Weak())
        init(epoch: UInt64 = 7) { self.epoch = epoch }

        /// Takes what `origin` makes from now on.
        func connect(_ origin: LiveStream) {
            self.origin.withLock { $0.origin = origin }
            origin.replicate(to: { self.sink($0) })
        }

        /// The standby answered: the origin may show players everything up to `ordinal`.
        func acknowledge(through ordinal: UInt64) {
            origin.withLock { $0.origin }?.showReplicated(through: ordinal)
        }

        func sink(_ b: ReplicaBatch) {
            batches.withLock { list in
                var b = b
                b.epoch = epoch
                b.sequence = UInt64(list.count + 1)
                list.append(b)
            }
        }

        /// Starts the standby the way the node's sender does: with a snapshot (sequence 0).
        func attach(_ origin: LiveStream, _ standby: LiveStream) throws {
            var covered: UInt64 = 0
            var snap = origin.snapshot { ordinal in
                covered = ordinal
                batches.withLock { $0 = [] }
            }
            snap.epoch = epoch
            snap.sequence = 0
            try standby.applyReplica(ReplicaBatch(decoding: snap.encoded()))
            acknowledge(through: covered)
        }

        /// Delivers every batch not yet delivered, through the codec.
        func deliver(to standby: LiveStream, from index: inout Int) throws {
            let all = batches.withLock { $0 }
            while index < all.count {
                try standby.applyReplica(ReplicaBatch(decoding: all[index].encoded()))
                acknowledge(through: all[index].ordinal)
                index += 1
            }
        }
    }

    func tags(_ seconds: Double = 6) throws -> [FLVFile.Tag] {
        try FLVFile(try MediaFixtures.flv(name: "cut-\(Int(seconds))s", seconds: seconds)).tags
    }

    func feed(_ live: LiveStream, _ tags: ArraySlice<FLVFile.Tag>, shift: UInt32 = 0) throws {
        for tag in tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp + shift, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp + shift, byteCount: tag.body.count) }
        }
    }

    func segmentNumbers(_ playlist: String) -> [Int] {
        playlist.split(separator: "\n").compactMap { line in
            line.hasPrefix("seg") ? Int(line.dropFirst(3).dropLast(13)) : nil
        }
    }

    /// An origin publishing, replicating through a `Wire` to a standby that got its first snapshot.
    func publishingPair(_ id: String) throws -> (origin: LiveStream, standby: LiveStream, wire: Wire) {
        let origin = LiveStream(id: id)
        let standby = LiveStream(id: id)
        let wire = Wire()
        wire.connect(origin)
        try wire.attach(origin, standby)
        origin.beginPublishing()
        return (origin, standby, wire)
    }

    func testTheStandbyServesWhatTheOriginMadeAsItGoes() throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r1")
        var delivered = 0
        // Deliver after every few tags: the standby's view equals the origin's at each step.
        for chunk in stride(from: 0, to: all.count, by: 40) {
            try feed(origin, all[chunk..<min(chunk + 40, all.count)])
            try wire.deliver(to: standby, from: &delivered)
            XCTAssertEqual(standby.mediaPlaylist(), origin.mediaPlaylist(), "after \(chunk) tags")
        }
        XCTAssertTrue(standby.isReplica)
        XCTAssertFalse(standby.mediaPlaylist()!.contains("ENDLIST"), "the origin is still publishing")
        let playlist = origin.mediaPlaylist()!
        for n in segmentNumbers(playlist) {
            XCTAssertEqual(standby.segment(sequence: n), origin.segment(sequence: n))
            XCTAssertNotNil(standby.segment(sequence: n))
        }
        XCTAssertEqual(standby.initSegment(version: 0), origin.initSegment(version: 0))
        XCTAssertEqual(standby.renditions, origin.renditions)
        // The origin's publisher stops: the standby's playlist ends too.
        origin.endPublishing()
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertEqual(standby.mediaPlaylist(), origin.mediaPlaylist())
        XCTAssertTrue(standby.mediaPlaylist()!.hasSuffix("#EXT-X-ENDLIST\n"))
    }

    /// Replicate before announce: an origin shows players (playlists, parts, segments, blocking
    /// requests, the playlist's end) only what its standby acknowledged holding, so after every
    /// batch delivered the origin's playlist is the standby's, and nothing it listed can be lost.
    func testTheOriginShowsPlayersOnlyWhatItsStandbyHolds() async throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r7")
        var delivered = 0
        var compared = 0
        for chunk in stride(from: 0, to: all.count, by: 40) {
            let shownBefore = origin.mediaPlaylist()
            try feed(origin, all[chunk..<min(chunk + 40, all.count)])
            XCTAssertEqual(origin.mediaPlaylist(), shownBefore, "nothing new shown before the standby holds it (after \(chunk) tags)")
            // One batch at a time: the origin's view is the standby's after each.
            let batches = wire.batches.withLock { $0 }
            while delivered < batches.count {
                try standby.applyReplica(ReplicaBatch(decoding: batches[delivered].encoded()))
                wire.acknowledge(through: batches[delivered].ordinal)
                delivered += 1
                XCTAssertEqual(origin.mediaPlaylist(), standby.mediaPlaylist(), "batch \(delivered)")
                compared += 1
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 12)
        XCTAssertNotNil(origin.mediaPlaylist())

        // A part made and not yet held by the standby: not served, and a blocking request for it
        // waits for the acknowledgement.
        try feed(origin, all[...], shift: 6_100)
        let pending = try XCTUnwrap(wire.batches.withLock { $0.last }?.ordinal)
        let next = try XCTUnwrap(nextPart(after: origin.mediaPlaylist()!))
        XCTAssertNil(origin.part(sequence: next.sequence, index: next.index), "made, not shown")
        let answered = Mutex(false)
        let waiting = Task {
            let found = await origin.wait(for: .part(sequence: next.sequence, index: next.index), timeout: .seconds(10))
            answered.withLock { $0 = true }
            return found
        }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertFalse(answered.withLock { $0 }, "the blocking request waits for the standby")
        wire.acknowledge(through: pending)
        let found = await waiting.value
        XCTAssertTrue(found)
        XCTAssertNotNil(origin.part(sequence: next.sequence, index: next.index))

        // The standby stops answering while the broadcast goes on: what the stream made 0.25 s and more
        // before its newest media is shown without the acknowledgement; the newest waits.
        try feed(origin, all[..<120], shift: 12_200)
        let shownBefore = origin.mediaPlaylist()
        try await Task.sleep(for: .milliseconds(300))
        try feed(origin, all[120...], shift: 12_200)
        XCTAssertEqual(origin.mediaPlaylist(), shownBefore)
        XCTAssertGreaterThan(origin.showUnreplicated(after: 0.25), 0)
        XCTAssertNotEqual(origin.mediaPlaylist(), shownBefore)
        XCTAssertEqual(origin.showUnreplicated(after: 0.25), 0, "the last 0.25 s made waits")

        // The end of the stream is shown once the standby holds it too.
        origin.endPublishing()
        XCTAssertFalse(origin.mediaPlaylist()!.contains("#EXT-X-ENDLIST"))
        XCTAssertTrue(origin.isLive(rendition: LiveStream.sourceRendition), "its players still get more")
        // Nothing came in after what waits, nor after the end (this node may be the one cut off, its
        // publisher's connection half-open, the session ended for it): they wait on, however long.
        XCTAssertEqual(origin.showUnreplicated(after: 0.25), 0)
        origin.showUnreplicated(after: 0)
        XCTAssertFalse(origin.mediaPlaylist()!.contains("#EXT-X-ENDLIST"))
        XCTAssertTrue(origin.isLive(rendition: LiveStream.sourceRendition))
        XCTAssertEqual(origin.showUnreplicated(after: 0.25, patience: 60), 0)
        // Past the patience (no standby ever answers: a node left on its own), the end is shown.
        XCTAssertGreaterThan(origin.showUnreplicated(after: 0.25, patience: 0), 0)
        XCTAssertTrue(origin.mediaPlaylist()!.hasSuffix("#EXT-X-ENDLIST\n"))
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertFalse(origin.isLive(rendition: LiveStream.sourceRendition))
        XCTAssertEqual(origin.mediaPlaylist(), standby.mediaPlaylist())
    }

    /// An origin with no sink shows everything as it is made; taking the sink away shows what waited.
    func testWithoutAStandbyEverythingIsShownAtOnce() throws {
        let all = try tags()
        let alone = LiveStream(id: "r8")
        alone.beginPublishing()
        try feed(alone, all[...])
        let whole = try XCTUnwrap(alone.mediaPlaylist())
        let (origin, _, _) = try publishingPair("r8")
        try feed(origin, all[...])
        XCTAssertNil(origin.mediaPlaylist(), "nothing acknowledged")
        origin.replicate(to: nil)
        XCTAssertEqual(segmentNumbers(origin.mediaPlaylist() ?? ""), segmentNumbers(whole))
        XCTAssertEqual(nextPart(after: origin.mediaPlaylist()!)?.index, nextPart(after: whole)?.index)
    }

    /// A stream made afresh on a node (no replica: its origin died with none on this side, or
    /// restarted) numbers its media from the clock, ten a second since the stream was created, so
    /// a player's playlist goes on upwards from an earlier life's; later sessions and replicas
    /// keep the numbering they have.
    func testANewLifeWithoutTheLastOnesStateNumbersOnFromTheClock() throws {
        let created = Date(timeIntervalSince1970: 1_000_000)
        XCTAssertEqual(LiveStream.firstSequence(createdAt: created, now: created.addingTimeInterval(90.05)), 900)
        XCTAssertEqual(LiveStream.firstSequence(createdAt: created, now: created.addingTimeInterval(-5)), 0, "a clock behind")
        let all = try tags()
        // The first life, from 30 s after the stream was created; it runs 6 s (3 segments).
        let first = LiveStream(id: "r9", firstSequence: { LiveStream.firstSequence(createdAt: created, now: created.addingTimeInterval(30)) })
        first.beginPublishing()
        try feed(first, all[...])
        first.endPublishing()
        let firstNumbers = segmentNumbers(first.mediaPlaylist()!)
        XCTAssertEqual(firstNumbers.first, 300)
        // Its next session on the same node goes on from its numbers, not the clock's.
        first.beginPublishing()
        try feed(first, all[...], shift: 6_100)
        XCTAssertEqual(segmentNumbers(first.mediaPlaylist()!).last.map { $0 > firstNumbers.last! }, true)
        let before = segmentNumbers(first.mediaPlaylist()!).last!
        // A new life elsewhere, as soon as the first one stopped: above everything the first made.
        let next = LiveStream(id: "r9", firstSequence: { LiveStream.firstSequence(createdAt: created, now: created.addingTimeInterval(42)) })
        next.beginPublishing()
        try feed(next, all[...])
        XCTAssertGreaterThan(segmentNumbers(next.mediaPlaylist()!).first!, before)
        // A standby takes the origin's numbering from its replica, whatever its clock says.
        let (origin, standby, wire) = try publishingPair("r10")
        try feed(origin, all[...])
        var delivered = 0
        try wire.deliver(to: standby, from: &delivered)
        let far = LiveStream(id: "r10", firstSequence: { 1_000_000 })
        try far.applyReplica(origin.snapshot())
        far.beginPublishing()
        try feed(far, all[...], shift: 6_100)
        XCTAssertLessThan(segmentNumbers(far.mediaPlaylist()!).last!, 100)
    }

    /// A session given up (its relay's connection silent or broken) makes nothing more: no last
    /// part, no end of the segment in progress, for its standby or its players. A new session here
    /// ends that segment with the parts it had and tells the standby.
    func testASessionGivenUpLeavesItsSegmentUnfinishedUntilTheNextSession() throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r12")
        try feed(origin, all[..<(all.count / 2)])
        var delivered = 0
        try wire.deliver(to: standby, from: &delivered)
        let before = wire.batches.withLock { $0.count }
        let unfinished = try XCTUnwrap(nextPart(after: origin.mediaPlaylist()!)).sequence
        origin.endPublishing(abandon: true)
        XCTAssertEqual(wire.batches.withLock { $0.count }, before, "nothing more sent to the standby")
        let ended = try XCTUnwrap(origin.mediaPlaylist())
        XCTAssertTrue(ended.hasSuffix("#EXT-X-ENDLIST\n"))
        XCTAssertFalse(segmentNumbers(ended).contains(unfinished), "the segment in progress is not ended")
        XCTAssertFalse(origin.isPublishing)
        // The relay comes back here: the unfinished segment ends with the parts it had, then the new session.
        origin.beginPublishing()
        try feed(origin, all.filter { $0.type == 9 && $0.body.count > 1 && $0.body[1] == 0 }[...])  // the codec headers again
        try feed(origin, all[(all.count / 2)...], shift: 100)
        try wire.deliver(to: standby, from: &delivered)
        let playlist = try XCTUnwrap(origin.mediaPlaylist())
        XCTAssertTrue(segmentNumbers(playlist).contains(unfinished))
        XCTAssertTrue(playlist.contains("#EXT-X-DISCONTINUITY"))
        XCTAssertEqual(standby.segment(sequence: unfinished), origin.segment(sequence: unfinished))
        XCTAssertEqual(standby.mediaPlaylist(), playlist)
    }

    /// The part a playlist's preload hint names.
    func nextPart(after playlist: String) -> (sequence: Int, index: Int)? {
        guard let line = playlist.split(separator: "\n").first(where: { $0.hasPrefix("#EXT-X-PRELOAD-HINT") }),
              let uri = line.split(separator: "\"").dropFirst().first, uri.hasPrefix("part") else { return nil }
        let numbers = uri.dropFirst(4).prefix { $0 != "-" }.split(separator: ".").compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// A stream that starts again from nothing (its origin restarted, no replica) reuses
    /// sequence numbers but not names: the epoch in them is new, and the old names find nothing.
    func testAStreamStartedAgainWithoutAReplicaNamesItsObjectsAnew() throws {
        let all = try tags()
        let first = LiveStream(id: "r6")
        first.beginPublishing()
        try feed(first, all[...])
        let again = LiveStream(id: "r6")
        again.beginPublishing()
        try feed(again, all[...])
        XCTAssertNotEqual(first.epoch, again.epoch)
        XCTAssertEqual(segmentNumbers(first.mediaPlaylist()!), segmentNumbers(again.mediaPlaylist()!), "the same numbers")
        let old = first.mediaPlaylist()!.split(separator: "\n").filter { $0.hasPrefix("seg") }
        XCTAssertFalse(old.isEmpty)
        for name in old { XCTAssertFalse(again.mediaPlaylist()!.contains(name), "\(name) is not reused") }
        XCTAssertNotNil(again.segment(sequence: 0, epoch: again.epoch))
        XCTAssertNil(again.segment(sequence: 0, epoch: first.epoch), "an old name finds nothing")
        XCTAssertNil(again.initSegment(version: 0, epoch: first.epoch))
        XCTAssertNil(again.part(sequence: 0, index: 0, epoch: first.epoch))
        XCTAssertNotNil(again.part(sequence: 0, index: 0, epoch: again.epoch))
    }

    func testASnapshotCatchesANewStandbyUpAndBatchesFollowIt() throws {
        let all = try tags()
        let origin = LiveStream(id: "r2")
        let wire = Wire()
        wire.connect(origin)
        origin.beginPublishing()
        try feed(origin, all[..<(all.count / 2)])
        // A standby that saw nothing: a snapshot, then the batches after it.
        let standby = LiveStream(id: "r2")
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
        XCTAssertEqual(standby.mediaPlaylist(), origin.mediaPlaylist())
        try feed(origin, all[(all.count / 2)...])
        try wire.deliver(to: standby, from: &delivered)
        XCTAssertEqual(standby.mediaPlaylist(), origin.mediaPlaylist())
        XCTAssertEqual(standby.status.lastSequence, origin.status.lastSequence)
    }

    func testABatchOutOfSequenceOrToAPublishingNodeIsRefused() throws {
        let all = try tags()
        let origin = LiveStream(id: "r3")
        let wire = Wire()
        wire.connect(origin)
        origin.beginPublishing()
        try feed(origin, all[..<200])
        let batches = wire.batches.withLock { $0 }
        XCTAssertGreaterThan(batches.count, 3)
        let standby = LiveStream(id: "r3")
        // Nothing applied yet: an incremental batch needs a snapshot first.
        XCTAssertThrowsError(try standby.applyReplica(batches[2])) { XCTAssertEqual($0 as? ReplicaError, .outOfSequence(expected: nil, got: 3)) }
        // A snapshot of another life of the stream (another stream epoch): its batches do not follow.
        var other = LiveStream(id: "r3").snapshot()
        other.epoch = wire.epoch
        try standby.applyReplica(other)
        XCTAssertThrowsError(try standby.applyReplica(batches[0])) { XCTAssertEqual($0 as? ReplicaError, .outOfSequence(expected: nil, got: 1)) }
        var empty = LiveStream(id: "r3", epoch: origin.epoch).snapshot()
        empty.epoch = wire.epoch
        try standby.applyReplica(empty)
        try standby.applyReplica(batches[0])
        XCTAssertThrowsError(try standby.applyReplica(batches[0])) { e in
            XCTAssertEqual(e as? ReplicaError, .outOfSequence(expected: 2, got: 1))
        }
        // Publishing here makes this node the origin: replicas are refused.
        let here = LiveStream(id: "r3")
        here.beginPublishing()
        XCTAssertThrowsError(try here.applyReplica(origin.snapshot())) { XCTAssertEqual($0 as? ReplicaError, .publishingHere) }
    }

    /// An origin cut off (or paused) while its standby took the stream over, back afterwards: its
    /// snapshot is older than the state the standby went on from, and refused even once the
    /// standby stopped publishing (it handed the stream back); a new life's snapshot is not.
    func testAStaleOriginsSnapshotIsRefusedByTheNodeThatWentOn() throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r11")
        try feed(origin, all[..<200])
        var delivered = 0
        try wire.deliver(to: standby, from: &delivered)
        try feed(origin, all[200...])  // cut off: never delivered
        standby.beginPublishing()  // took the stream over
        try feed(standby, all[...], shift: 6_100)
        standby.endPublishing()
        let stale = origin.snapshot()
        XCTAssertThrowsError(try standby.applyReplica(stale)) { e in
            XCTAssertEqual(e as? ReplicaError, .staleSnapshot(sessions: 1, here: 2))
            XCTAssertTrue("\(e)".hasPrefix(ReplicaError.staleText))
        }
        // The old origin's session ends (its relay silent); the node that went on hands the stream
        // back: the old origin takes that state in place of its own.
        origin.endPublishing()
        try origin.applyReplica(standby.snapshot())
        XCTAssertEqual(origin.mediaPlaylist(), standby.mediaPlaylist())
        // A new life of the stream (another epoch), however few its sessions, is taken.
        let reborn = LiveStream(id: "r11")
        reborn.beginPublishing()
        try feed(reborn, all[...])
        try standby.applyReplica(reborn.snapshot())
        XCTAssertEqual(standby.epoch, reborn.epoch)
    }

    func testTheStandbyTakesOverWithGrowingSequenceNumbersAndADiscontinuity() throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r4")
        // The origin dies mid-segment: 3.3 s in.
        let cut = all.firstIndex { $0.timestamp > 3300 }!
        try feed(origin, all[..<cut])
        var delivered = 0
        try wire.deliver(to: standby, from: &delivered)
        let before = origin.mediaPlaylist()!
        let announced = segmentNumbers(before)
        let lastAnnounced = try XCTUnwrap(announced.last)
        let growing = lastAnnounced + 1
        XCTAssertNotNil(standby.part(sequence: growing, index: 0), "the growing segment's parts were replicated")
        // The standby becomes the origin; the relay replays from the last keyframe on.
        standby.beginPublishing()
        XCTAssertFalse(standby.isReplica)
        let headers = all.filter { ($0.type == 9 || $0.type == 8) && $0.body.count > 1 && $0.body[1] == 0 }
        XCTAssertEqual(headers.count, 2)
        let keyframe = all[..<cut].lastIndex { $0.type == 9 && $0.body.first.map { $0 >> 4 == 1 } == true }!
        try feed(standby, headers[...])
        try feed(standby, all[keyframe...])
        standby.endPublishing()
        let after = standby.mediaPlaylist()!
        let numbers = segmentNumbers(after)
        XCTAssertEqual(numbers, Array(numbers.first!...numbers.last!), "sequence numbers only grow, by one")
        XCTAssertTrue(numbers.contains(growing), "the segment the origin left unfinished is completed")
        XCTAssertGreaterThan(numbers.last!, growing)
        // The discontinuity sits between the old origin's media and the new.
        let lines = after.split(separator: "\n").map(String.init)
        let discontinuity = try XCTUnwrap(lines.firstIndex(of: "#EXT-X-DISCONTINUITY"))
        let firstAfter = lines[discontinuity...].first { $0.hasPrefix("seg") }!
        XCTAssertEqual(firstAfter, "seg\(growing + 1)-\(origin.epoch).m4s", "the standby keeps the origin's epoch in its names")
        // Everything the origin announced is still served, byte for byte.
        for n in announced { XCTAssertEqual(standby.segment(sequence: n), origin.segment(sequence: n), "seg\(n)") }
        // The media timeline goes on from where the old origin stopped.
        XCTAssertGreaterThan(standby.status.lastSequence!, origin.status.lastSequence!)
    }

    /// The origin dies just as a segment began (its keyframe in, no part yet): the standby
    /// has the segment begun and empty; after the takeover no number is skipped.
    func testATakeoverRightAfterASegmentBeganSkipsNoNumber() throws {
        let all = try tags()
        let (origin, standby, wire) = try publishingPair("r6")
        let boundary = all.firstIndex { $0.type == 9 && $0.timestamp >= 4000 && $0.body.first.map { $0 >> 4 == 1 } == true }!
        try feed(origin, all[...boundary])
        var delivered = 0
        try wire.deliver(to: standby, from: &delivered)
        standby.beginPublishing()
        let headers = all.filter { ($0.type == 9 || $0.type == 8) && $0.body.count > 1 && $0.body[1] == 0 }
        try feed(standby, headers[...])
        try feed(standby, all[boundary...])
        standby.endPublishing()
        let numbers = segmentNumbers(standby.mediaPlaylist()!)
        XCTAssertEqual(numbers, Array(0...numbers.last!), standby.mediaPlaylist()!)
        XCTAssertEqual(numbers, [0, 1, 2], "two segments from the old origin, one from the new")
    }

    func testMalformedBatchesAreErrorsNotCrashes() throws {
        let all = try tags()
        let origin = LiveStream(id: "r5")
        origin.beginPublishing()
        try feed(origin, all[..<150])
        let bytes = origin.snapshot().encoded()
        XCTAssertEqual(try ReplicaBatch(decoding: bytes), origin.snapshot())
        for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            XCTAssertThrowsError(try ReplicaBatch(decoding: Array(bytes[..<n])), "prefix \(n)")
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var b = bytes
            for _ in 0..<4 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? ReplicaBatch(decoding: b)  // must not trap
        }
        XCTAssertThrowsError(try ReplicaBatch(decoding: Array("hello".utf8)))
    }
}
