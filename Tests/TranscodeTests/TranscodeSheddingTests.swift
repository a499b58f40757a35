import CFFmpeg
import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// Falling behind real time sheds the highest rung first, and never the last one.
final class TranscodeSheddingTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        av_log_set_level(AV_LOG_QUIET)
    }

    private let ladder = [
        LadderRung(name: "240p", height: 240, videoBitrate: 500_000, maxBitrate: 600_000),
        LadderRung(name: "120p", height: 120, videoBitrate: 150_000, maxBitrate: 200_000),
        LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
    ]

    /// A speed threshold no machine meets (the test hook): 240p goes after the first window,
    /// 180p after the next, 120p stays. Shed rungs stop and the others carry on unharmed.
    func testSlowEncodingShedsHighestRungFirst() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let settings = TranscodeSettings(rungs: ladder, maxQueuedFrames: 1000,
                                         shedSpeedThreshold: 1_000_000, speedWindowSeconds: 0.5)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 320, sourceHeight: 240, output: collector.sink)
        for unit in source.units {
            XCTAssertTrue(transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe))
        }
        transcoder.finish()

        XCTAssertEqual(collector.shed.map(\.rung), ["240p", "180p"])
        XCTAssertTrue(collector.shed.allSatisfy { $0.reason.contains("real time") }, "\(collector.shed)")
        XCTAssertEqual(transcoder.stats.shedRungs, ["240p", "180p"])
        XCTAssertEqual(transcoder.stats.rungs.filter(\.isShed).map(\.name), ["240p", "180p"])
        // Nothing of a rung after its shed; the lowest rung is complete.
        for rung in ["240p", "180p"] {
            let shedAt = try XCTUnwrap(collector.shedIndex(rung))
            XCTAssertFalse(collector.outputs[shedAt...].contains { if case .frame(let f) = $0 { return f.rung == rung } else { return false } })
            XCTAssertGreaterThan(collector.frames(rung).count, 0)
            XCTAssertLessThan(collector.frames(rung).count, source.units.count)
        }
        XCTAssertLessThan(collector.shedIndex("240p")!, collector.shedIndex("180p")!)
        try assertRung(collector, "120p", width: 160, height: 120, frameCount: source.units.count,
                       keyframeIndices: source.keyframeIndices)
    }

    /// Overflowing a small queue sheds the top rung at once (reason: queue full), and
    /// submit keeps returning at once.
    func testQueueOverflowShedsHighestRung() throws {
        let source = try TranscodeTestMedia.source(width: 640, height: 360, seconds: 2)
        let settings = TranscodeSettings(
            rungs: [
                LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000),
                LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
            ],
            preset: "veryslow", maxQueuedFrames: 2, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 640, sourceHeight: 360, output: collector.sink)
        var refused = 0
        for unit in source.units where !transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) {
            refused += 1
        }
        transcoder.finish()
        XCTAssertGreaterThan(refused, 0)
        XCTAssertEqual(collector.shed.map(\.rung), ["360p"])
        XCTAssertTrue(collector.shed.first?.reason.contains("queue full") ?? false)
        XCTAssertEqual(transcoder.stats.shedRungs, ["360p"])
        XCTAssertFalse(transcoder.stats.rungs.last?.isShed ?? true)
        XCTAssertGreaterThan(collector.frames("180p").count, 0)
    }

    /// No test hook: x264 "placebo" at 640x360 is far slower than real time here. Fed at
    /// real time (2 s), the measured speed (or the queue filling) sheds 360p; 180p stays.
    func testPlaceboAtRealTimeShedsTopRung() throws {
        let source = try TranscodeTestMedia.source(width: 640, height: 360, seconds: 2)
        let settings = TranscodeSettings(
            rungs: [
                LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000),
                LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
            ],
            preset: "placebo", speedWindowSeconds: 0.5)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 640, sourceHeight: 360, output: collector.sink)
        let start = DispatchTime.now().uptimeNanoseconds
        for unit in source.units {
            let due = start + UInt64(unit.dts - source.units[0].dts) * 1_000_000
            let now = DispatchTime.now().uptimeNanoseconds
            if due > now { usleep(UInt32((due - now) / 1000)) }
            transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe)
        }
        transcoder.finish()
        XCTAssertEqual(collector.shed.map(\.rung), ["360p"], "\(collector.shed)")
        XCTAssertEqual(transcoder.stats.shedRungs, ["360p"])
        XCTAssertGreaterThan(collector.frames("180p").count, 0)
    }
}
