import CFFmpeg
import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// Seeded damage of every kind to a real stream: flipped bytes (keyframes too), cut
/// access units, broken length prefixes, duplicated and missing units, timestamps going
/// backwards. The transcoder must not crash, must keep its output well-formed, and must be
/// back in step by the last GOP, which is left intact. TRANSCODE_FUZZ_SEEDS=n runs more,
/// TRANSCODE_FUZZ_FIRST=s starts at seed s (a failing seed replays exactly).
final class TranscodeFuzzTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        av_log_set_level(AV_LOG_QUIET)
    }

    func testSeededDamageNeverCrashesAndRecoversAtTheLastGOP() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let lastKey = source.keyframeIndices.last!
        let seeds = Int(ProcessInfo.processInfo.environment["TRANSCODE_FUZZ_SEEDS"] ?? "") ?? 12
        let settings = TranscodeSettings(
            rungs: [LadderRung(name: "120p", height: 120, videoBitrate: 150_000, maxBitrate: 200_000),
                    LadderRung(name: "180p", height: 180, videoBitrate: 300_000, maxBitrate: 350_000)],
            preset: "ultrafast", maxQueuedFrames: 1000, shedSpeedThreshold: 0)
        let first = UInt64(ProcessInfo.processInfo.environment["TRANSCODE_FUZZ_FIRST"] ?? "") ?? 1
        for seed in first...(first + UInt64(seeds) - 1) {
            var rng = SplitMix64(state: seed)
            var units: [TranscodeTestMedia.AccessUnit] = []
            for (index, original) in source.units.enumerated() {
                var unit = original
                if index < lastKey {
                    switch rng.next() % 10 {
                    case 0:  // flip bytes anywhere, NAL headers and length prefixes included
                        for _ in 0..<(1 + rng.next() % 20) where !unit.data.isEmpty {
                            unit.data[Int(rng.next() % UInt64(unit.data.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                        }
                    case 1:  // cut short
                        unit.data = Array(unit.data.prefix(Int(rng.next() % UInt64(unit.data.count + 1))))
                    case 2:  // lost
                        continue
                    case 3:  // repeated
                        units.append(unit)
                    case 4:  // timestamps go backwards
                        unit.dts -= Int64(rng.next() % 500)
                        unit.pts -= Int64(rng.next() % 500)
                    default:
                        break
                    }
                }
                units.append(unit)
            }
            let collector = TranscodeCollector()
            let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: source.avcC,
                                                  sourceWidth: 320, sourceHeight: 240, output: collector.sink)
            for unit in units { transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) }
            transcoder.finish()

            let tail = Set(source.units[lastKey...].map(\.pts))
            for rung in ["180p", "120p"] {
                let frames = collector.frames(rung)
                XCTAssertTrue(tail.isSubset(of: Set(frames.map(\.pts))), "seed \(seed) \(rung): the intact last GOP comes out")
                XCTAssertTrue(frames.allSatisfy { NALUnits.splitLengthPrefixed($0.data) != nil }, "seed \(seed): well-formed AVCC")
                XCTAssertEqual(frames.first?.isKeyframe, true, "seed \(seed): a rung starts with an IDR")
            }
            XCTAssertEqual(transcoder.stats.shedRungs, [])
        }
    }

    /// A damaged avcC either is refused at init with an error or decodes what it can.
    func testDamagedConfigurationNeverCrashes() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240, seconds: 2, keyframeTimes: [0, 0.3, 1.0, 1.5])
        let settings = TranscodeSettings(
            rungs: [LadderRung(name: "120p", height: 120, videoBitrate: 150_000, maxBitrate: 200_000)],
            preset: "ultrafast", maxQueuedFrames: 1000, shedSpeedThreshold: 0)
        var refused = 0
        for seed in UInt64(1)...40 {
            var rng = SplitMix64(state: seed)
            var avcC = source.avcC
            for _ in 0..<(1 + rng.next() % 4) {
                avcC[Int(rng.next() % UInt64(avcC.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
            if seed % 5 == 0 { avcC = Array(avcC.prefix(Int(rng.next() % UInt64(avcC.count)))) }
            do {
                let transcoder = try StreamTranscoder(settings: settings, sourceAVCC: avcC,
                                                      sourceWidth: 320, sourceHeight: 240) { _ in }
                for unit in source.units.prefix(20) {
                    transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe)
                }
                transcoder.finish()
            } catch {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 0)
    }
}
