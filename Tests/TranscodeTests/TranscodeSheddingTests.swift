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
    /// submit keeps returning at once. The transcoder thread is held while the burst goes
    /// in, so the queue fills on any machine.
    func testQueueOverflowShedsHighestRung() throws {
        let source = try TranscodeTestMedia.source(width: 640, height: 360, seconds: 2)
        let settings = TranscodeSettings(
            rungs: [
                LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000),
                LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
            ],
            preset: "ultrafast", maxQueuedFrames: 2, shedSpeedThreshold: 0)
        let collector = TranscodeCollector()
        let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                              sourceWidth: 640, sourceHeight: 360, output: collector.sink)
        var refused = 0
        transcoder.holdWork()
        for unit in source.units where !transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) {
            refused += 1
        }
        transcoder.resumeWork()
        transcoder.finish()
        XCTAssertEqual(refused, source.units.count - 2)
        XCTAssertEqual(collector.shed.map(\.rung), ["360p"])
        XCTAssertTrue(collector.shed.first?.reason.contains("queue full") ?? false)
        XCTAssertEqual(transcoder.stats.shedRungs, ["360p"])
        XCTAssertFalse(transcoder.stats.rungs.last?.isShed ?? true)
        XCTAssertGreaterThan(collector.frames("180p").count, 0)
    }

    /// The encode speed is measured, not assumed: the work clock is injected, so each access
    /// unit costs a known amount of work. At 0.33× real time (100 ms of work per 33 ms frame)
    /// the default threshold (1.0×) sheds 360p after the first window and keeps 180p, the
    /// lowest rung; at 3.3× (10 ms per frame) nothing is shed.
    func testMeasuredSpeedBelowTheThresholdShedsTopRung() throws {
        let source = try TranscodeTestMedia.source(width: 640, height: 360, seconds: 2)
        func run(workPerUnitMs: UInt64) throws -> (TranscodeCollector, TranscodeStats) {
            let settings = TranscodeSettings(
                rungs: [
                    LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000),
                    LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000),
                ],
                preset: "ultrafast", maxQueuedFrames: 1000, speedWindowSeconds: 0.5)
            XCTAssertEqual(settings.shedSpeedThreshold, 1.0)
            // The pipeline reads the clock when a unit starts and when it is done: every
            // second reading is `workPerUnitMs` later.
            final class FakeClock: @unchecked Sendable {
                let lock = NSLock()
                var readings: UInt64 = 0
                let step: UInt64
                init(step: UInt64) { self.step = step }
                func now() -> UInt64 { lock.lock(); defer { lock.unlock() }; readings += 1; return (readings / 2) * step }
            }
            let clock = FakeClock(step: workPerUnitMs * 1_000_000)
            let collector = TranscodeCollector()
            let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC, sourceWidth: 640, sourceHeight: 360,
                                                  trustsSignalledFrameRate: true, workClock: { clock.now() }, output: collector.sink)
            for unit in source.units {
                XCTAssertTrue(transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe))
            }
            transcoder.finish()
            return (collector, transcoder.stats)
        }

        let (slow, slowStats) = try run(workPerUnitMs: 100)
        XCTAssertEqual(slow.shed.map(\.rung), ["360p"], "\(slow.shed)")
        XCTAssertTrue(slow.shed.first?.reason.contains("real time") ?? false, "\(slow.shed)")
        XCTAssertEqual(slowStats.shedRungs, ["360p"])
        XCTAssertEqual(slowStats.encoderSpeed, 1.0 / 3, accuracy: 0.02)
        XCTAssertEqual(slow.frames("180p").count, source.units.count, "the lowest rung is whole")
        XCTAssertLessThan(slow.frames("360p").count, source.units.count)

        let (fast, fastStats) = try run(workPerUnitMs: 10)
        XCTAssertEqual(fast.shed.map(\.rung), [])
        XCTAssertEqual(fastStats.shedRungs, [])
        XCTAssertEqual(fastStats.encoderSpeed, 10.0 / 3, accuracy: 0.2)
        XCTAssertEqual(fast.frames("360p").count, source.units.count)
    }
}
