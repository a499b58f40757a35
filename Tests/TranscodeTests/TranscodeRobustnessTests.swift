import CFFmpeg
import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// Bad input and overload: corrupt access units, garbage configuration, a full queue.
final class TranscodeRobustnessTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        av_log_set_level(AV_LOG_QUIET)
    }

    private let oneRung = TranscodeSettings(
        rungs: [LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000)],
        maxQueuedFrames: 1000, shedSpeedThreshold: 0)

    /// Random bytes inside the NAL units of some non-key frames: no crash, the frames before
    /// the damage and every frame from the next keyframe on come out, aligned.
    func testCorruptNonKeyFramesSkipToNextKeyframe() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        XCTAssertEqual(source.keyframeIndices, [0, 9, 30, 45])
        for seed in UInt64(1)...3 {
            var rng = SplitMix64(state: seed)
            var units = source.units
            let damaged = [12, 13, 20]  // decode order, inside the GOP [9, 30)
            for index in damaged {
                XCTAssertFalse(units[index].isKeyframe)
                guard let nals = NALUnits.splitLengthPrefixed(units[index].data) else { return XCTFail("bad source AU") }
                var data: [UInt8] = []
                for nal in nals {
                    var bytes = Array(nal)
                    // Keep the NAL header, scramble a run of the slice data.
                    let from = min(bytes.count - 1, 2 + Int(rng.next() % 8))
                    for i in from..<bytes.count where rng.next() % 3 == 0 { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
                    data += NALUnits.lengthPrefixed([bytes[...]])
                }
                units[index].data = data
            }
            let collector = TranscodeCollector()
            let transcoder = try StreamTranscoder(settings: oneRung, sourceAVCC: source.avcC,
                                                  sourceWidth: 320, sourceHeight: 240, output: collector.sink)
            for unit in units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
            transcoder.finish()

            let outPTS = Set(collector.frames("180p").map(\.pts))
            let fromNextKey = source.units[30...].map(\.pts)
            XCTAssertTrue(Set(fromNextKey).isSubset(of: outPTS), "seed \(seed): frames after the next keyframe come out")
            let beforeDamage = source.units[..<12].map(\.pts).filter { $0 < source.units[12].pts }
            XCTAssertTrue(Set(beforeDamage).isSubset(of: outPTS), "seed \(seed): frames before the damage come out")
            let frames = collector.frames("180p")
            XCTAssertEqual(frames.map(\.pts), frames.map(\.pts).sorted())
            XCTAssertEqual(Set(frames.filter(\.isKeyframe).map(\.pts)), Set(source.units.filter(\.isKeyframe).map(\.pts)))
            // The rung stays a valid stream ffprobe decodes.
            let url = TranscodeTestMedia.directory.appendingPathComponent("corrupt-\(seed).h264")
            try TranscodeTestMedia.writeAnnexB(avcC: collector.config("180p")!.avcC, frames: frames, to: url)
            let probe = try TranscodeTestMedia.probe(url, format: "h264")
            XCTAssertEqual(probe.keyframes.count, frames.count)
        }
    }

    /// Access units whose length prefixes do not add up are skipped to the next keyframe.
    func testTruncatedAccessUnitSkipsToNextKeyframe() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        var units = source.units
        units[3].data = Array(units[3].data.prefix(units[3].data.count / 2))
        units[4].data = [0xff, 0xff, 0xff, 0xff, 1, 2, 3]
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: oneRung, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        for unit in units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        transcoder.finish()
        let outPTS = Set(collector.frames("180p").map(\.pts))
        XCTAssertTrue(Set(source.units[9...].map(\.pts)).isSubset(of: outPTS))
        // Units 3...8 (decode order) are skipped: 6 access units.
        XCTAssertEqual(transcoder.stats.framesSkippedCorrupt, 6)
        // Everything else comes out, the frames decoded before the damage included.
        XCTAssertEqual(collector.frames("180p").count, source.units.count - 6)
        XCTAssertEqual(outPTS, Set(source.units.enumerated().filter { !(3...8).contains($0.offset) }.map(\.element.pts)))
    }

    /// Garbage and empty access units and even a keyframe of noise never crash the node.
    func testNoiseAccessUnitsDoNotCrash() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: oneRung, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        var rng = SplitMix64(state: 42)
        var dts: Int64 = 0
        for i in 0..<40 {
            let n = Int(rng.next() % 2000)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0 && n > 8 {  // well-framed NAL of noise, sometimes with a slice header type
                bytes = NALUnits.lengthPrefixed([([UInt8(i % 4 == 0 ? 0x65 : 0x41)] + bytes)[...]])
            }
            transcoder.submit(data: bytes, dts: dts, pts: dts, isKeyframe: i % 5 == 0)
            dts += 33
        }
        transcoder.submit(data: [], dts: dts, pts: dts, isKeyframe: true)
        // Then the real stream, later in time: it must come out from its first keyframe.
        for unit in source.units {
            transcoder.submit(data: unit.data, dts: unit.dts + 10_000, pts: unit.pts + 10_000, isKeyframe: unit.isKeyframe)
        }
        transcoder.finish()
        let outPTS = Set(collector.frames("180p").map(\.pts))
        XCTAssertTrue(Set(source.units[9...].map { $0.pts + 10_000 }).isSubset(of: outPTS))
    }

    func testUnusableConfigurationThrows() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        XCTAssertThrowsError(try StreamTranscoder(settings: .default, sourceAVCC: [1, 2, 3], sourceWidth: 320, sourceHeight: 240) { _ in }) {
            guard case TranscodeError.invalidDecoderConfiguration = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try StreamTranscoder(settings: .default, sourceAVCC: source.avcC, sourceWidth: 0, sourceHeight: 240) { _ in })
        var bad = TranscodeSettings.default
        bad.preset = "warp"
        XCTAssertThrowsError(try StreamTranscoder(settings: bad, sourceAVCC: source.avcC, sourceWidth: 320, sourceHeight: 240) { _ in }) {
            guard case TranscodeError.invalidSettings = $0 else { return XCTFail("\($0)") }
        }
    }

    /// A full queue refuses instead of blocking; after a refusal only a keyframe is taken
    /// again; what is taken all comes out.
    func testFullQueueDropsInsteadOfBlocking() throws {
        // A stuck encoder never holds up the ingest. The transcoder thread is held (as if
        // the encoder were stuck) and let go only to drain the queue at fixed points: at
        // every source keyframe, and six frames into every GOP. So what is accepted is the
        // same on any machine: the 3-frame queue takes the first three frames of each GOP;
        // after that drop, a drained queue still refuses frames until the next keyframe.
        let source = try TranscodeTestMedia.source(width: 640, height: 360, seconds: 2)
        let settings = TranscodeSettings(
            rungs: [LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000)],
            preset: "ultrafast", maxQueuedFrames: 3, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 640, sourceHeight: 360, output: collector.sink)
        let keys = source.keyframeIndices
        XCTAssertGreaterThan(keys.count, 2)
        let drainPoints = Set(keys.filter { $0 > 0 } + keys.map { $0 + 6 })
        final class Outcome: @unchecked Sendable { var accepted: [Int] = []; var refused: [Int] = [] }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let units = source.units
        transcoder.holdWork()
        // On another thread, so that a submit that waited for the held encoder fails the
        // test instead of hanging it.
        Thread {
            for (index, unit) in units.enumerated() {
                if drainPoints.contains(index) {
                    transcoder.resumeWork()
                    transcoder.waitUntilIdle()
                    transcoder.holdWork()
                }
                if transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) {
                    outcome.accepted.append(index)
                } else {
                    outcome.refused.append(index)
                }
            }
            transcoder.resumeWork()
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + 300) == .success else {
            return XCTFail("submit blocked while the encoder was held")
        }
        var expected: [Int] = []
        for (g, k) in keys.enumerated() {
            let end = g + 1 < keys.count ? keys[g + 1] : units.count
            expected += Array(k..<min(k + 3, end))
        }
        XCTAssertEqual(outcome.accepted, expected, "the first three frames of every GOP")
        XCTAssertEqual(outcome.refused, units.indices.filter { !expected.contains($0) })
        XCTAssertTrue(outcome.refused.contains { keys.contains($0 - 6) }, "a drained queue still refused a non-keyframe")
        transcoder.finish()
        let stats = transcoder.stats
        XCTAssertEqual(stats.framesDropped, outcome.refused.count)
        XCTAssertEqual(stats.framesIn, outcome.accepted.count)
        // Everything accepted decodes (it starts at keyframes) and comes out, aligned.
        let accepted = outcome.accepted.map { units[$0] }
        let frames = collector.frames("360p")
        XCTAssertEqual(Set(frames.map(\.pts)), Set(accepted.map(\.pts)))
        XCTAssertEqual(Set(frames.filter(\.isKeyframe).map(\.pts)), Set(accepted.filter(\.isKeyframe).map(\.pts)))
        XCTAssertEqual(stats.framesSkippedCorrupt, 0)
        XCTAssertEqual(stats.shedRungs, [], "the last rung is never shed")
    }

    func testFinishTwiceSubmitAfterFinishAndDropWithoutFinish() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: oneRung, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        for unit in source.units.prefix(10) { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        transcoder.finish()
        transcoder.finish()
        XCTAssertFalse(transcoder.submit(data: source.units[10].data, dts: 400, pts: 400, isKeyframe: false))
        XCTAssertEqual(collector.frames("180p").count, 10)

        // Released without finish: the thread is stopped by deinit, nothing hangs.
        let other = TranscodeCollector()
        do {
            let t = try StreamTranscoder(settings: oneRung, sourceAVCC: source.avcC,
                                         sourceWidth: 320, sourceHeight: 240, output: other.sink)
            for unit in source.units.prefix(10) { t.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        }
        XCTAssertEqual(other.frames("180p").count, 10)

        // A source shorter than every rung: nothing to make, nothing to decode, no error.
        let none = TranscodeCollector()
        let tall = TranscodeSettings(rungs: [LadderRung(name: "1080p", height: 1080, videoBitrate: 6_000_000, maxBitrate: 6_600_000)])
        let idle = try StreamTranscoder(settings: tall, sourceAVCC: source.avcC, sourceWidth: 320, sourceHeight: 240, output: none.sink)
        for unit in source.units { idle.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
        idle.finish()
        XCTAssertTrue(none.outputs.isEmpty)
        XCTAssertEqual(idle.stats.rungs, [])
    }
}
