import Foundation
import MediaTestSupport
import XCTest
@testable import Origin
import Transcode

/// A broadcaster on OBS's defaults sends a keyframe every 250 frames (8.3 s at 30 fps). The
/// ladder's renditions still start a segment every segment target, aligned across the rungs;
/// the source rendition, which keeps the broadcaster's keyframes, leaves the master playlist
/// (unless the stream keeps it), and the health says what to change in OBS.
final class LongGOPTests: XCTestCase {
    static let ladder = TranscodeSettings(rungs: [
        LadderRung(name: "240p", height: 240, videoBitrate: 400_000, maxBitrate: 440_000),
        LadderRung(name: "180p", height: 180, videoBitrate: 250_000, maxBitrate: 275_000),
    ], preset: "ultrafast", maxQueuedFrames: 10_000, shedSpeedThreshold: 0)

    /// A live stream with the ladder, fed a source with keyframes every `gop` frames, ended
    /// and drained.
    func stream(gop: Int, seconds: Double, keepSource: Bool = false) async throws -> LiveStream {
        let flv = try MediaFixtures.flv(name: "gop-\(gop)-\(Int(seconds))s", seconds: seconds, size: "426x240", gop: gop,
                                        videoCodec: ["-c:v", "libx264", "-preset", "veryfast", "-g", "\(gop)", "-keyint_min", "\(gop)",
                                                     "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p"])
        let live = LiveStream(id: "gop\(gop)", ladder: Self.ladder, transcoders: .ffmpeg, keepSource: keepSource)
        live.beginPublishing()
        for tag in try FLVFile(flv).tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
        // The health as it stands while publishing (the advice is about what is being sent).
        healthWhilePublishing = live.health
        live.endPublishing()
        func drained() -> Bool { Self.ladder.rungs.allSatisfy { live.mediaPlaylist(rendition: $0.name)?.hasSuffix("#EXT-X-ENDLIST\n") == true } }
        for _ in 0..<60_000 where !drained() { try await Task.sleep(for: .milliseconds(1)) }
        XCTAssertTrue(drained(), "the ladder drained and ended")
        return live
    }
    var healthWhilePublishing: StreamHealth?

    static func durations(_ playlist: String) -> [Double] {
        playlist.split(separator: "\n").filter { $0.hasPrefix("#EXTINF:") }.map { Double($0.dropFirst(8).dropLast())! }
    }

    func testRungsStartASegmentEverySegmentTargetWhateverTheSourcesGOP() async throws {
        for gop in [250, 600] {
            let live = try await stream(gop: gop, seconds: 9)
            let frame = 1.0 / 30
            XCTAssertEqual(live.renditions.map(\.name), ["240p", "180p"], "gop \(gop): the source is left out of the master playlist")
            var boundaries: [[Double]] = []
            for rung in Self.ladder.rungs.map(\.name) {
                let playlist = try XCTUnwrap(live.mediaPlaylist(rendition: rung))
                let d = Self.durations(playlist)
                XCTAssertGreaterThanOrEqual(d.count, 4, "gop \(gop) \(rung): \(playlist)")
                for x in d.dropLast() { XCTAssertEqual(x, 2.0, accuracy: frame + 0.001, "gop \(gop) \(rung): \(d)") }
                boundaries.append(d)
                // Each segment's first part starts with the forced keyframe.
                let lines = playlist.split(separator: "\n").map(String.init)
                for (i, line) in lines.enumerated() where line.hasPrefix("#EXTINF") || line.hasPrefix("#EXT-X-PROGRAM-DATE-TIME") {
                    if line.hasPrefix("#EXT-X-PROGRAM-DATE-TIME"), i + 1 < lines.count, lines[i + 1].hasPrefix("#EXT-X-PART:") {
                        XCTAssertTrue(lines[i + 1].hasSuffix("INDEPENDENT=YES"), "gop \(gop) \(rung): \(lines[i + 1])")
                    }
                }
                // The rung decodes cleanly from its init segment and segments.
                var file = try XCTUnwrap(live.initSegment(rendition: rung, version: 0))
                for n in 0..<d.count { file += try XCTUnwrap(live.segment(rendition: rung, sequence: n), "\(rung) seg\(n)") }
                let url = MediaFixtures.folder.appendingPathComponent("gop-\(gop)-\(rung).mp4")
                try Data(file).write(to: url)
                let errors = try MediaFixtures.run("/usr/bin/ffmpeg", ["-hide_banner", "-v", "error", "-i", url.path, "-f", "null", "-"])
                XCTAssertEqual(errors.trimmingCharacters(in: .whitespacesAndNewlines), "", "gop \(gop) \(rung)")
            }
            XCTAssertEqual(boundaries[0], boundaries[1], "the rungs' segments line up")
            // The source keeps the broadcaster's keyframes: one long segment (or none complete).
            let source = Self.durations(live.mediaPlaylist(rendition: "source") ?? "")
            XCTAssertTrue(source.dropLast().allSatisfy { $0 > 4 }, "gop \(gop): \(source)")
            let health = try XCTUnwrap(healthWhilePublishing)
            XCTAssertFalse(live.health.sourceInMaster)
            if gop == 250 {
                XCTAssertTrue(health.advice.contains { $0.contains("set Keyframe Interval to 2 s") && $0.contains("OBS") }, "\(health.advice)")
            }
        }
    }

    func testASourceWithShortKeyframeIntervalsStaysAndAStreamMayKeepALongOne() async throws {
        let short = try await stream(gop: 60, seconds: 5)
        XCTAssertEqual(short.renditions.map(\.name), ["source", "240p", "180p"])
        XCTAssertTrue(short.health.sourceInMaster)
        XCTAssertFalse((healthWhilePublishing?.advice ?? []).contains { $0.contains("Keyframe") })
        let kept = try await stream(gop: 250, seconds: 9, keepSource: true)
        XCTAssertEqual(kept.renditions.first?.name, "source", "the stream asks to keep it")
    }

    func testWithoutALadderTheSourceStaysAndTheHealthSaysWhy() throws {
        let flv = try MediaFixtures.flv(name: "gop-250-9s-noladder", seconds: 9, size: "426x240", gop: 250,
                                        videoCodec: ["-c:v", "libx264", "-preset", "veryfast", "-g", "250", "-keyint_min", "250",
                                                     "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p"])
        let live = LiveStream(id: "noladder")
        live.beginPublishing()
        for tag in try FLVFile(flv).tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
        let health = live.health
        XCTAssertEqual(live.renditions.map(\.name), ["source"])
        XCTAssertTrue(health.sourceInMaster)
        XCTAssertTrue(health.advice.contains { $0.contains("Without a ladder") && $0.contains("8.3 s") }, "\(health.advice)")
    }
}
