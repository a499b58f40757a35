import Foundation
import MediaTestSupport
import XCTest
@testable import Origin


final class LivePackagerTests: XCTestCase {
    func package(_ flv: [UInt8], settings: PackagingSettings = .default) throws -> [PackagerOutput] {
        var p = LivePackager(settings: settings)
        var out: [PackagerOutput] = []
        for tag in try FLVFile(flv).tags {
            if tag.type == 9 { out += try p.push(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp) }
            if tag.type == 8 { out += try p.push(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp) }
        }
        out += p.finish()
        return out
    }

    func parts(_ out: [PackagerOutput]) -> [PackagedPart] {
        out.compactMap { if case .part(let p) = $0 { return p } else { return nil } }
    }

    func testCutsPartsAndSegmentsAtKeyframes() throws {
        let out = try package(MediaFixtures.flv(name: "cut-4s", seconds: 4))
        guard case .initSegment(0, let initBytes, let tracks) = out.first else { return XCTFail("init segment first") }
        XCTAssertEqual(Array(initBytes[4..<8]), Array("ftyp".utf8))
        XCTAssertEqual(tracks.count, 2)
        let ps = parts(out)
        XCTAssertTrue(ps.allSatisfy { $0.duration <= 0.5 + 1e-9 }, "\(ps.map(\.duration))")
        let segments = Dictionary(grouping: ps, by: \.segment)
        XCTAssertEqual(segments.keys.sorted(), [0, 1])
        for (_, seg) in segments {
            XCTAssertTrue(seg.first!.independent)
            XCTAssertEqual(seg.map(\.index), Array(0..<seg.count))
            XCTAssertEqual(seg.reduce(0) { $0 + $1.duration }, 2.0, accuracy: 0.04)
        }
        // Keyframes every second force a part boundary there: 1 s = two parts of 0.5 s.
        XCTAssertEqual(ps.filter(\.independent).count, 4)
        XCTAssertEqual(ps.reduce(0) { $0 + $1.duration }, 4.0, accuracy: 0.04)
        let ended = out.compactMap { if case .segmentEnded(let s) = $0 { return s } else { return nil } }
        XCTAssertEqual(ended, [0, 1])
    }

    /// The packaged fMP4 decodes with ffmpeg, every frame, B-frames in the right order.
    func testOutputDecodesWithFFmpeg() throws {
        let out = try package(MediaFixtures.flv(name: "bframes-3s", seconds: 3, gop: 45, bframes: 2))
        var file: [UInt8] = []
        for o in out {
            if case .initSegment(_, let b, _) = o { file += b }
            if case .part(let p) = o { file += p.bytes }
        }
        let path = MediaFixtures.folder.appendingPathComponent("bframes.mp4")
        try Data(file).write(to: path)
        let probe = try MediaFixtures.run("/usr/bin/ffprobe", ["-v", "error", "-count_frames", "-show_entries",
            "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", path.path])
        let lines = probe.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("h264,320,240,90"), probe)
        XCTAssertTrue(lines.contains { $0.hasPrefix("aac,") }, probe)
        let errors = try MediaFixtures.run("/usr/bin/ffmpeg", ["-v", "error", "-i", path.path, "-f", "null", "-"])
        XCTAssertEqual(errors.trimmingCharacters(in: .whitespacesAndNewlines), "")
    }

    func testAudioOnlyStream() throws {
        let out = try package(MediaFixtures.flv(name: "audio-only", seconds: 3, audio: true, videoCodec: ["-vn"]))
        let ps = parts(out)
        XCTAssertFalse(ps.isEmpty)
        XCTAssertTrue(ps.allSatisfy { $0.duration <= 0.5 + 1e-9 && $0.independent })
        XCTAssertEqual(ps.reduce(0) { $0 + $1.duration }, 3.0, accuracy: 0.1)
    }

    func testUnsupportedCodecsAreRefused() throws {
        let flv = try MediaFixtures.flv(name: "sorenson", seconds: 1, audio: false, videoCodec: ["-c:v", "flv"])
        var p = LivePackager()
        let tag = try FLVFile(flv).tags.first { $0.type == 9 }!
        XCTAssertThrowsError(try p.push(video: FLVVideoTag.parse(tag.body), timestamp: 0)) { e in
            XCTAssertEqual(e as? PackagingError, .unsupportedVideoCodec(2))
            XCTAssertTrue("\(e)".contains("H.264"))
        }
    }

    func testTimestampsGoingBackKeepTheOutputContinuous() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        var p = LivePackager()
        var out: [PackagerOutput] = []
        for (n, tag) in tags.enumerated() {
            // Halfway through, the broadcaster's clock jumps back one second.
            let ts = n > tags.count / 2 ? tag.timestamp &- 1000 : tag.timestamp
            if tag.type == 9 { out += try p.push(video: FLVVideoTag.parse(tag.body), timestamp: ts) }
            if tag.type == 8 { out += try p.push(audio: FLVAudioTag.parse(tag.body), timestamp: ts) }
        }
        out += p.finish()
        let ps = parts(out)
        for (a, b) in zip(ps, ps.dropFirst()) {
            XCTAssertEqual(b.startTime, a.startTime + a.duration, accuracy: 0.04, "timeline stays continuous")
        }
        XCTAssertTrue(out.contains { if case .segmentStarted(_, true, _) = $0 { return true } else { return false } },
                      "the jump is marked as a discontinuity")
    }

    func testBadSettingsAreRefused() {
        XCTAssertThrowsError(try PackagingSettings(partTarget: 0.01).validate())
        XCTAssertThrowsError(try PackagingSettings(partTarget: 1, segmentTarget: 0.5).validate())
        XCTAssertThrowsError(try PackagingSettings(windowSegments: 1).validate())
        XCTAssertNoThrow(try PackagingSettings.default.validate())
    }
}

final class LiveStreamTests: XCTestCase {
    func feed(_ live: LiveStream, _ tags: ArraySlice<FLVFile.Tag>) throws {
        for tag in tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
    }

    /// Waits until `count` viewers are blocked on the stream: the event the tests need before
    /// they change the stream under those viewers. Yields, never sleeps a fixed time.
    func waitUntilBlocked(_ live: LiveStream, count: Int = 1, file: StaticString = #filePath, line: UInt = #line) async {
        // Gives up (and fails) only after a minute: a bound for a hang, not a timing assumption.
        for _ in 0..<60_000 where live.waiterCount < count { try? await Task.sleep(for: .milliseconds(1)) }
        XCTAssertEqual(live.waiterCount, count, file: file, line: line)
    }

    func testBlockingWaitReturnsWhenThePartArrives() async throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let live = LiveStream(id: "s1")
        XCTAssertEqual(live.status.state, .offline)
        live.beginPublishing()
        // Up to 2.6 s: segment 0 is complete, segment 1 has a part or two.
        let half = tags.firstIndex { $0.timestamp > 2600 }!
        try feed(live, tags[..<half])
        XCTAssertEqual(live.status.state, .live)
        XCTAssertNotNil(live.mediaPlaylist())
        let early = await live.wait(for: .part(sequence: 1, index: 2), timeout: .milliseconds(100))
        XCTAssertFalse(early, "times out")
        XCTAssertEqual(live.waiterCount, 0)
        async let waited = live.wait(for: .part(sequence: 1, index: 2), timeout: .seconds(60))
        await waitUntilBlocked(live)
        try feed(live, tags[half...])
        let got = await waited
        XCTAssertTrue(got)
        XCTAssertTrue(live.part(sequence: 1, index: 2) != nil)
        XCTAssertTrue(live.mediaPlaylist()!.contains("part1.2-\(live.epoch).m4s"))
    }

    func testEndingAnswersEveryWaiterAndEndsThePlaylist() async throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let live = LiveStream(id: "s2")
        live.beginPublishing()
        try feed(live, tags[...])
        async let waited = live.wait(for: .segment(sequence: 5), timeout: .seconds(60))
        await waitUntilBlocked(live)
        live.endPublishing()
        let got = await waited
        XCTAssertFalse(got)
        let pl = live.mediaPlaylist()!
        XCTAssertTrue(pl.hasSuffix("#EXT-X-ENDLIST\n"))
        XCTAssertEqual(live.status.state, .ended)
        XCTAssertTrue(live.segment(sequence: 1) != nil)
        XCTAssertTrue(live.isWithinReach(.segment(sequence: 3)))
        XCTAssertFalse(live.isWithinReach(.segment(sequence: 9)))
    }

    /// A viewer waiting for the very last part gets it when the publisher stops and the
    /// packager flushes it (the flush must answer that waiter, not leak it).
    func testTheFlushedLastPartAnswersItsWaiter() async throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let live = LiveStream(id: "s5")
        live.beginPublishing()
        try feed(live, tags[...])
        async let waited = live.wait(for: .part(sequence: 1, index: 3), timeout: .seconds(60))
        await waitUntilBlocked(live)
        live.endPublishing()
        let got = await waited
        XCTAssertTrue(got)
        XCTAssertEqual(live.waiterCount, 0)
    }

    func testPartPastTheEndOfASegmentMeansTheNextSegment() async throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let live = LiveStream(id: "s3")
        live.beginPublishing()
        try feed(live, tags[...])
        live.endPublishing()
        // "Part n of segment 0", n one past its last part, is part 0 of segment 1, which exists;
        // one past the last part of segment 1 would be segment 2's first part, which never came.
        let playlist = live.mediaPlaylist()!
        let n0 = playlist.components(separatedBy: "URI=\"part0.").count - 1
        let n1 = playlist.components(separatedBy: "URI=\"part1.").count - 1
        XCTAssertEqual(n0, 4)
        XCTAssertTrue(live.part(sequence: 0, index: n0) == nil)
        let past0 = await live.wait(for: .part(sequence: 0, index: n0), timeout: .seconds(1))
        XCTAssertTrue(past0)
        let past1 = await live.wait(for: .part(sequence: 1, index: n1), timeout: .seconds(1))
        XCTAssertFalse(past1)
    }

    func testASecondSessionContinuesWithADiscontinuity() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let live = LiveStream(id: "s4")
        live.beginPublishing()
        try feed(live, tags[...])
        live.endPublishing()
        live.beginPublishing()
        try feed(live, tags[...])
        live.endPublishing()
        let pl = live.mediaPlaylist()!
        XCTAssertEqual(pl.components(separatedBy: "#EXT-X-DISCONTINUITY\n").count - 1, 1, pl)
        XCTAssertTrue(pl.contains(#"#EXT-X-MAP:URI="init1-\#(live.epoch).mp4""#))
        XCTAssertTrue(pl.contains("seg3-\(live.epoch).m4s"))
        XCTAssertEqual(live.status.sessions, 2)
    }
}

/// An empty AVC sequence header (ffmpeg's tee muxer sends one) is not fatal: the parameter
/// sets carried in band by the first keyframe make the configuration.
final class InBandParameterSetTests: XCTestCase {
    func testEmptyHeaderThenInBandSPSAndPPS() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        var p = LivePackager()
        var out: [PackagerOutput] = []
        var avcC: AVCDecoderConfiguration?
        for tag in tags where tag.type == 9 {
            let parsed = try FLVVideoTag.parse(tag.body)
            switch parsed.packet {
            case .avcSequenceHeader(let record):
                avcC = try AVCDecoderConfiguration(record: record)
                out += try p.push(video: FLVVideoTag(frameType: 1, codecID: 7, packet: .avcSequenceHeader([])), timestamp: 0)
            case .avcNALUs(let data, let cts) where parsed.isKeyframe:
                // Put the parameter sets in band, as encoders without global headers do.
                var inband: [UInt8] = []
                for nal in [avcC!.sps[0], avcC!.pps[0]] {
                    inband += [UInt8(nal.count >> 24), UInt8((nal.count >> 16) & 0xFF), UInt8((nal.count >> 8) & 0xFF), UInt8(nal.count & 0xFF)] + nal
                }
                out += try p.push(video: FLVVideoTag(frameType: 1, codecID: 7, packet: .avcNALUs(inband + data, compositionTime: cts)), timestamp: tag.timestamp)
            default:
                out += try p.push(video: parsed, timestamp: tag.timestamp)
            }
        }
        out += p.finish()
        guard case .initSegment(_, _, let tracks) = out.first, case .avc(let config) = tracks.first?.format else {
            return XCTFail("an init segment from the in-band parameter sets")
        }
        XCTAssertEqual(config.width, 320)
        XCTAssertEqual(config.height, 240)
        XCTAssertEqual(config.sps, avcC!.sps)
        XCTAssertGreaterThan(out.filter { if case .part = $0 { return true } else { return false } }.count, 6)
    }
}

/// Corrupt NAL units in the passthrough: the broken frame and the frames after it are
/// skipped to the next keyframe; what comes out still decodes.
final class CorruptFrameTests: XCTestCase {
    func testABrokenFrameSkipsToTheNextKeyframe() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        var p = LivePackager()
        var out: [PackagerOutput] = []
        var videoFrames = 0
        var broken = false
        for tag in tags where tag.type == 9 {
            var parsed = try FLVVideoTag.parse(tag.body)
            if case .avcNALUs(var data, let cts) = parsed.packet {
                videoFrames += 1
                if videoFrames == 40 {  // inside the second GOP (keyframes every 30 frames)
                    data[0] = 0xFF  // a NAL length far past the end
                    parsed.packet = .avcNALUs(data, compositionTime: cts)
                    broken = true
                }
            }
            out += try p.push(video: parsed, timestamp: tag.timestamp)
        }
        out += p.finish()
        XCTAssertTrue(broken)
        // Frames 40…60 (0-based 39…59) are dropped: the broken one and the rest of its GOP.
        XCTAssertEqual(p.droppedCorruptFrames, 21)
        var file: [UInt8] = []
        for o in out {
            if case .initSegment(_, let b, _) = o { file += b }
            if case .part(let part) = o { file += part.bytes }
        }
        let path = MediaFixtures.folder.appendingPathComponent("corrupt-skipped.mp4")
        try Data(file).write(to: path)
        let errors = try MediaFixtures.run("/usr/bin/ffmpeg", ["-v", "error", "-i", path.path, "-f", "null", "-"])
        XCTAssertEqual(errors.trimmingCharacters(in: .whitespacesAndNewlines), "")
        XCTAssertFalse(LivePackager.isWellFormed([0, 0, 0, 5, 0x65, 1], lengthSize: 4))
        XCTAssertTrue(LivePackager.isWellFormed([0, 0, 0, 2, 0x65, 1], lengthSize: 4))
        XCTAssertFalse(LivePackager.isWellFormed([0, 0, 0, 2, 0x80, 1], lengthSize: 4), "forbidden bit")
    }
}


/// Audio whose header comes long after the video started (later than the packager waits for
/// it) restarts the media at the next keyframe with an init segment that has both tracks; no
/// fragment ever carries a track its init segment does not declare.
final class LateAudioTests: XCTestCase {
    func testAudioLaterThanTheWaitRestartsWithBothTracks() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        var p = LivePackager()
        var out: [PackagerOutput] = []
        let audioFrom: UInt32 = 1500  // ms: well past the wait
        var headerSent = false
        var header: FLVAudioTag?
        for tag in tags {
            if tag.type == 9 { out += try p.push(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp) }
            guard tag.type == 8 else { continue }
            let audio = try FLVAudioTag.parse(tag.body)
            if case .aacSequenceHeader = audio.packet { header = audio; continue }
            guard tag.timestamp >= audioFrom, let header else { continue }
            if !headerSent { out += try p.push(audio: header, timestamp: tag.timestamp); headerSent = true }
            out += try p.push(audio: audio, timestamp: tag.timestamp)
        }
        out += p.finish()
        let inits = out.compactMap { o -> [CMAFTrack]? in if case .initSegment(_, _, let t) = o { return t } else { return nil } }
        XCTAssertEqual(inits.map { $0.map(\.id) }, [[1], [1, 2]], "video alone, then both from a keyframe")
        var declared: Set<UInt32> = []
        var audioParts = 0
        for o in out {
            switch o {
            case .initSegment(_, _, let t): declared = Set(t.map(\.id))
            case .part(let part):
                let ids = BoxParser.find(part.bytes, ["moof", "traf", "tfhd"]).map { BoxParser.be32(part.bytes, $0.bodyStart + 4) }
                XCTAssertTrue(Set(ids).isSubset(of: declared), "a fragment carries tracks \(ids) its init segment (\(declared)) lacks")
                if ids.contains(2) { audioParts += 1 }
            default: break
            }
        }
        XCTAssertGreaterThan(audioParts, 2)
        XCTAssertEqual(out.filter { if case .segmentStarted(_, true, _) = $0 { return true } else { return false } }.count, 1,
                       "one discontinuity, where the audio came in")
    }
}
