import Foundation
import MediaTestSupport
import Synchronization
import XCTest
@testable import Origin
import Transcode

/// A recording's CMAF files, made by a live stream here, remuxed into one MP4: `moov` first,
/// video and audio starting together, as long as the segments, decoding cleanly; a second run
/// whose time starts again follows the first.
final class RecordingRemuxerTests: XCTestCase {
    /// One live session's init segment and segments, written as the recorder writes them.
    func record(_ id: String, into folder: URL, seconds length: Double = 4) throws -> (runFiles: [String], seconds: Double) {
        let tags = try FLVFile(try MediaFixtures.flv(name: "remux-\(Int(length))s", seconds: length)).tags
        let objects = Mutex<[RecordedObject]>([])
        let live = LiveStream(id: id)
        live.record(to: { o in objects.withLock { $0.append(o) } })
        live.beginPublishing()
        for tag in tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
        live.endPublishing()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var files: [String] = []
        var seconds = 0.0
        for o in objects.withLock({ $0 }) {
            switch o {
            case .initSegment(let i) where i.rendition == LiveStream.sourceRendition:
                let path = folder.appendingPathComponent(RecordingManifest.initName(version: i.version)).path
                try Data(i.bytes).write(to: URL(fileURLWithPath: path))
                if files.isEmpty { files.append(path) }
            case .segment(let s) where s.rendition == LiveStream.sourceRendition:
                let path = folder.appendingPathComponent(RecordingManifest.segmentName(sequence: s.sequence)).path
                try Data(s.bytes).write(to: URL(fileURLWithPath: path))
                files.append(path)
                seconds += s.duration
            default: break
            }
        }
        XCTAssertGreaterThan(files.count, 2, "an init segment and segments")
        return (files, seconds)
    }

    func topLevelBoxes(_ bytes: [UInt8]) -> [String] {
        var boxes: [String] = []
        var at = 0
        while at + 8 <= bytes.count {
            var size = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            if size == 1 { size = bytes[at + 8..<at + 16].reduce(0) { $0 << 8 | Int($1) } }
            if size == 0 { size = bytes.count - at }
            guard size >= 8 else { break }
            boxes.append(String(decoding: bytes[at + 4..<at + 8], as: UTF8.self))
            at += size
        }
        return boxes
    }

    func check(_ path: String, seconds: Double) throws {
        let boxes = topLevelBoxes([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        let moov = try XCTUnwrap(boxes.firstIndex(of: "moov"), "\(boxes)")
        let mdat = try XCTUnwrap(boxes.firstIndex(of: "mdat"), "\(boxes)")
        XCTAssertLessThan(moov, mdat, "faststart: \(boxes)")
        XCTAssertFalse(boxes.contains("moof"), "one MP4, not fragments: \(boxes)")
        let probe = try MediaFixtures.run("/usr/bin/ffprobe", ["-v", "error", "-show_entries", "format=format_name,duration:stream=codec_type,start_time",
                                                               "-of", "default=nw=1", path])
        let lines = probe.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("format_name=mov,mp4") }, probe)
        XCTAssertEqual(lines.filter { $0.hasPrefix("codec_type=") }.sorted(), ["codec_type=audio", "codec_type=video"], probe)
        let duration = try XCTUnwrap(lines.first { $0.hasPrefix("duration=") }.flatMap { Double($0.dropFirst(9)) }, probe)
        XCTAssertEqual(duration, seconds, accuracy: 0.5, probe)
        let starts = lines.filter { $0.hasPrefix("start_time=") }.compactMap { Double($0.dropFirst(11)) }
        XCTAssertEqual(starts.count, 2, probe)
        XCTAssertLessThan(abs(starts[0] - starts[1]), 0.1, probe)
        // `-v error` prints nothing for a clean decode; `run` throws on a failed one.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        p.arguments = ["-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertEqual(text, "", "decodes with no error")
    }

    func testOneRecordingBecomesOneFaststartMP4InSync() throws {
        let folder = MediaFixtures.folder.appendingPathComponent("remux-one")
        let (files, seconds) = try record("remux1", into: folder)
        let out = folder.appendingPathComponent("download.mp4").path
        try RecordingRemuxer.remux(runs: [files], to: out)
        try check(out, seconds: seconds)
    }

    func testARunWhoseTimeStartsAgainFollowsThePreviousOne() throws {
        let a = try record("remux2", into: MediaFixtures.folder.appendingPathComponent("remux-a"))
        let b = try record("remux2", into: MediaFixtures.folder.appendingPathComponent("remux-b"))
        let out = MediaFixtures.folder.appendingPathComponent("remux-two.mp4").path
        try RecordingRemuxer.remux(runs: [a.runFiles, b.runFiles], to: out)
        try check(out, seconds: a.seconds + b.seconds)
    }

    /// A recording's run after a discontinuity may start later than the one before ended: the
    /// segment a new origin left out (its relay replayed that GOP, recorded after the discontinuity),
    /// a broadcaster back within the grace. The playlist plays on with no pause; the MP4 too.
    func testARunWhoseTimeJumpsAheadFollowsThePreviousOneWithNoGap() throws {
        let (files, _) = try record("remux3", into: MediaFixtures.folder.appendingPathComponent("remux-gap"), seconds: 6)
        XCTAssertEqual(files.count, 4, "an init segment and three 2 s segments")
        let first = Array(files.prefix(2)), last = [files[0], files[3]]  // 0-2 s, then 4-6 s
        let out = MediaFixtures.folder.appendingPathComponent("remux-gap.mp4").path
        try RecordingRemuxer.remux(runs: [first, last], to: out)
        try check(out, seconds: 4)
    }

    func testNoMediaIsAnError() {
        let out = MediaFixtures.folder.appendingPathComponent("remux-none.mp4").path
        XCTAssertThrowsError(try RecordingRemuxer.remux(runs: [["/nonexistent/init0.mp4"]], to: out))
    }
}
