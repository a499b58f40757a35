import CFFmpeg
import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// The ladder end to end with real FFmpeg: sizes, frame counts, keyframe alignment, timestamps.
final class TranscodeLadderTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        av_log_set_level(AV_LOG_QUIET)
    }

    /// A 640x360 source under the default 720/480/360 ladder gives only 360p: never upscaled.
    func testDefaultLadderOn360pSourceMakesOnly360pWithSourceKeyframes() throws {
        let source = try TranscodeTestMedia.source(width: 640, height: 360)
        let sourceProbe = try TranscodeTestMedia.probe(source.url)
        XCTAssertEqual(sourceProbe.keyframes.count, source.units.count)
        XCTAssertEqual(sourceProbe.keyframeIndices, source.keyframeIndices)
        XCTAssertEqual(source.keyframeIndices, [0, 15, 33, 51])

        var settings = TranscodeSettings.default
        settings.maxQueuedFrames = source.units.count
        settings.shedSpeedThreshold = 0  // a busy machine must not shed here
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 640, sourceHeight: 360, output: collector.sink)
        for unit in source.units {
            XCTAssertTrue(transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe))
        }
        transcoder.finish()

        XCTAssertEqual(collector.configuredRungs, ["360p"])
        try assertRung(collector, "360p", width: 640, height: 360,
                       frameCount: source.units.count, keyframeIndices: sourceProbe.keyframeIndices)
        // Output pts are the input pts in presentation order; dts equals pts (no B-frames).
        let frames = collector.frames("360p")
        XCTAssertEqual(frames.map(\.pts), source.units.map(\.pts).sorted())
        XCTAssertEqual(frames.map(\.dts), frames.map(\.pts))
        XCTAssertEqual(Set(frames.filter(\.isKeyframe).map(\.pts)), Set(source.units.filter(\.isKeyframe).map(\.pts)))

        let stats = transcoder.stats
        XCTAssertEqual(stats.framesIn, source.units.count)
        XCTAssertEqual(stats.framesDropped, 0)
        XCTAssertEqual(stats.framesDecoded, source.units.count)
        XCTAssertEqual(stats.rungs.map(\.name), ["360p"])
        XCTAssertEqual(stats.rungs.first?.framesOut, source.units.count)
        XCTAssertEqual(stats.shedRungs, [])
        XCTAssertEqual(stats.frameRate, 30)
        XCTAssertGreaterThan(stats.encoderSpeed, 0)
        XCTAssertEqual(stats.mediaSeconds, Double(source.units.last!.dts - source.units.first!.dts) / 1000, accuracy: 0.001)
    }

    /// Several rungs of a 4:3 source: widths from the aspect ratio, all aligned to the source.
    func testThreeRungsOf4by3SourceKeepAspectAndKeyframes() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let settings = TranscodeSettings(
            rungs: [
                LadderRung(name: "120p", height: 120, videoBitrate: 150_000, maxBitrate: 200_000),
                LadderRung(name: "480p", height: 480, videoBitrate: 1_000_000, maxBitrate: 1_100_000),
                LadderRung(name: "240p", height: 240, videoBitrate: 500_000, maxBitrate: 600_000),
                LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
            ],
            maxQueuedFrames: 1000, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        for unit in source.units {
            XCTAssertTrue(transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe))
        }
        transcoder.finish()

        XCTAssertEqual(collector.configuredRungs, ["240p", "180p", "120p"])
        let keys = source.keyframeIndices
        XCTAssertEqual(keys, [0, 9, 30, 45])
        try assertRung(collector, "240p", width: 320, height: 240, frameCount: source.units.count, keyframeIndices: keys)
        try assertRung(collector, "180p", width: 240, height: 180, frameCount: source.units.count, keyframeIndices: keys)
        try assertRung(collector, "120p", width: 160, height: 120, frameCount: source.units.count, keyframeIndices: keys)
        // Each config comes before that rung's first frame.
        for rung in ["240p", "180p", "120p"] {
            let outputs = collector.outputs
            let configAt = outputs.firstIndex { if case .config(let r, _, _, _) = $0 { return r == rung } else { return false } }
            let frameAt = outputs.firstIndex { if case .frame(let f) = $0 { return f.rung == rung } else { return false } }
            XCTAssertNotNil(configAt)
            XCTAssertLessThan(configAt ?? .max, frameAt ?? -1)
        }
        XCTAssertEqual(transcoder.stats.rungs.map(\.name), ["240p", "180p", "120p"])
    }

    /// Stream starting mid-GOP: units before the first keyframe are skipped, the rest aligned.
    /// Two x264 threads (sliced with zerolatency): several slice NAL units per frame.
    func testStartMidGOPWaitsForFirstKeyframe() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let units = Array(source.units.dropFirst(5))  // starts inside the first GOP
        let settings = TranscodeSettings(
            rungs: [LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000)],
            threads: 2, maxQueuedFrames: 1000, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        for unit in units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        transcoder.finish()
        let expected = Array(source.units.dropFirst(9))
        try assertRung(collector, "180p", width: 240, height: 180, frameCount: expected.count,
                       keyframeIndices: [0, 21, 36])
        XCTAssertEqual(collector.frames("180p").map(\.pts), expected.map(\.pts).sorted())
        XCTAssertEqual(transcoder.stats.framesSkippedCorrupt, 4)
        let slices = collector.frames("180p").map { NALUnits.splitLengthPrefixed($0.data)?.filter { [1, 5].contains($0.first! & 0x1f) }.count ?? 0 }
        XCTAssertEqual(slices.max(), 2, "two slices per frame with two sliced threads")
    }

    /// Without frame timing in the SPS the rate comes from the first two frames (25 fps
    /// here); the held first frame still comes out first, as an IDR, and the bitrate holds.
    func testFrameRateFromTimestampsWhenSPSHasNone() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, fps: 25, keyframeTimes: [0, 1.0])
        let settings = TranscodeSettings(
            rungs: [LadderRung(name: "240p", height: 240, videoBitrate: 400_000, maxBitrate: 440_000)],
            maxQueuedFrames: 1000, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC, sourceWidth: 320, sourceHeight: 240,
                                              trustsSignalledFrameRate: false, output: collector.sink)
        for unit in source.units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        transcoder.finish()
        XCTAssertEqual(transcoder.stats.frameRate, 25)
        try assertRung(collector, "240p", width: 320, height: 240, frameCount: source.units.count,
                       keyframeIndices: source.keyframeIndices)
        XCTAssertEqual(collector.frames("240p").map(\.pts), source.units.map(\.pts).sorted())

        XCTAssertEqual(TranscodePipeline.frameRate(forSpacingMs: 33).num, 30)
        XCTAssertEqual(TranscodePipeline.frameRate(forSpacingMs: 34).num, 30000)
        XCTAssertEqual(TranscodePipeline.frameRate(forSpacingMs: 17).num, 60000)
        XCTAssertEqual(TranscodePipeline.frameRate(forSpacingMs: 100).num, 1000)
        XCTAssertEqual(TranscodePipeline.frameRate(forSpacingMs: 0).num, 30)
    }

    /// A wrong announced size (say 1280x720 from stale metadata) does not upscale: the
    /// ladder is planned again from the decoded 320x240 before any encoder opens.
    func testDecodedSizeWinsOverAnnouncedSize() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        var settings = TranscodeSettings.default
        settings.rungs.append(LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000))
        settings.maxQueuedFrames = 1000
        settings.shedSpeedThreshold = 0
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 1280, sourceHeight: 720, output: collector.sink)
        XCTAssertEqual(transcoder.stats.rungs.map(\.name), ["720p", "480p", "360p", "180p"])
        for unit in source.units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        transcoder.finish()
        XCTAssertEqual(collector.configuredRungs, ["180p"])
        XCTAssertEqual(transcoder.stats.rungs.map(\.name), ["180p"])
        try assertRung(collector, "180p", width: 240, height: 180, frameCount: source.units.count,
                       keyframeIndices: source.keyframeIndices)
    }
}
