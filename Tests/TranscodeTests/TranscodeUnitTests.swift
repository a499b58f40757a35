import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// The pure parts: ladder sizing, settings, avcC and NAL framing, the shed policy.
final class TranscodeUnitTests: XCTestCase {
    func testRungSizeFollowsSourceAspectAndNeverUpscales() {
        let r720 = LadderRung(name: "720p", height: 720, videoBitrate: 1, maxBitrate: 1)
        let r360 = LadderRung(name: "360p", height: 360, videoBitrate: 1, maxBitrate: 1)
        XCTAssertTrue(r720.outputSize(sourceWidth: 1920, sourceHeight: 1080)! == (1280, 720))
        XCTAssertNil(r720.outputSize(sourceWidth: 640, sourceHeight: 360))
        XCTAssertTrue(r360.outputSize(sourceWidth: 640, sourceHeight: 360)! == (640, 360))
        XCTAssertTrue(r360.outputSize(sourceWidth: 640, sourceHeight: 480)! == (480, 360))
        // 480 x 21:9 = 1120; odd results round to even.
        XCTAssertTrue(LadderRung(name: "x", height: 480, videoBitrate: 1, maxBitrate: 1).outputSize(sourceWidth: 2560, sourceHeight: 1080)! == (1138, 480))
        XCTAssertTrue(LadderRung(name: "x", height: 301, videoBitrate: 1, maxBitrate: 1).outputSize(sourceWidth: 1280, sourceHeight: 720)! == (534, 300))
        XCTAssertNil(r360.outputSize(sourceWidth: 0, sourceHeight: 0))
    }

    func testDefaultSettingsAndValidation() throws {
        let d = TranscodeSettings.default
        XCTAssertEqual(d.rungs.map(\.height), [720, 480, 360])
        XCTAssertEqual(d.rungs.map(\.videoBitrate), [3_000_000, 1_400_000, 800_000])
        XCTAssertEqual(d.preset, "veryfast")
        XCTAssertEqual(d.threads, 1)
        XCTAssertEqual(d.maxQueuedFrames, 60)
        XCTAssertNoThrow(try d.validate())
        var bad = d
        bad.rungs.append(d.rungs[0])
        XCTAssertThrowsError(try bad.validate())
        bad = d
        bad.rungs[1].maxBitrate = 1
        XCTAssertThrowsError(try bad.validate())
        bad = d
        bad.maxQueuedFrames = 0
        XCTAssertThrowsError(try bad.validate())

        // Round trip, and old documents without the shedding knobs still decode.
        let json = try JSONEncoder().encode(d)
        XCTAssertEqual(try JSONDecoder().decode(TranscodeSettings.self, from: json), d)
        let minimal = #"{"rungs":[{"name":"360p","height":360,"videoBitrate":800000,"maxBitrate":880000}]}"#
        let decoded = try JSONDecoder().decode(TranscodeSettings.self, from: Data(minimal.utf8))
        XCTAssertEqual(decoded.preset, "veryfast")
        XCTAssertEqual(decoded.maxQueuedFrames, 60)
        XCTAssertEqual(decoded.shedSpeedThreshold, 1.0)
    }

    func testAVCConfigurationRoundTripAndFraming() throws {
        let sps: [UInt8] = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]
        let pps: [UInt8] = [0x68, 0xeb, 0xe3, 0xcb]
        let annexB: [UInt8] = [0, 0, 0, 1] + sps + [0, 0, 1] + pps + [0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0]
        let units = NALUnits.splitAnnexB(annexB)
        XCTAssertEqual(units.map(Array.init), [sps, pps, [0x65, 0x88, 0x84]])
        let config = try AVCCRecord(parameterSetsIn: units)
        XCTAssertEqual(config.profileIndication, 0x64)
        XCTAssertEqual(config.levelIndication, 0x1f)
        let parsed = try AVCCRecord(parsing: config.bytes)
        XCTAssertEqual(parsed, config)

        let avcc = NALUnits.lengthPrefixed(units)
        XCTAssertEqual(NALUnits.splitLengthPrefixed(avcc)?.map(Array.init), units.map(Array.init))
        XCTAssertNil(NALUnits.splitLengthPrefixed(Array(avcc.dropLast())))
        XCTAssertNil(NALUnits.splitLengthPrefixed([0, 0, 0, 0]))
        XCTAssertEqual(NALUnits.splitLengthPrefixed([])?.count, 0)
        XCTAssertThrowsError(try AVCCRecord(parsing: [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 9, 0x67]))
        XCTAssertThrowsError(try AVCCRecord(parsing: []))
    }

    func testShedPolicyWindowsAndCoolDown() {
        var policy = ShedPolicy(speedThreshold: 1.0, windowSeconds: 1.0)
        // 30 fps at 2x real time: never sheds.
        var t: Int64 = 0
        for _ in 0..<90 {
            XCTAssertNil(policy.frameProcessed(mediaMs: t, busySeconds: 1.0 / 60))
            t += 33
        }
        XCTAssertEqual(policy.lastWindowSpeed ?? 0, 2.0, accuracy: 0.1)
        // At 0.5x: the first complete window sheds.
        var reasons: [ShedPolicy.Reason] = []
        for _ in 0..<40 {
            if let r = policy.frameProcessed(mediaMs: t, busySeconds: 1.0 / 15) { reasons.append(r); policy.didShed(mediaMs: t) }
            t += 33
        }
        XCTAssertEqual(reasons.count, 1)
        guard case .slow(let speed) = reasons.first else { return XCTFail() }
        XCTAssertEqual(speed, 0.5, accuracy: 0.05)
        // Right after a shed a queue overflow waits for the cool-down; a window later it sheds.
        XCTAssertNil(policy.queueOverflowed(mediaMs: t))
        XCTAssertEqual(policy.queueOverflowed(mediaMs: t + 1000), .queueFull)
        // A timestamp jump does not count as media time.
        var fresh = ShedPolicy(speedThreshold: 1.0, windowSeconds: 1.0)
        XCTAssertNil(fresh.frameProcessed(mediaMs: 0, busySeconds: 0.01))
        XCTAssertNil(fresh.frameProcessed(mediaMs: 60_000, busySeconds: 0.01))
        XCTAssertNil(fresh.lastWindowSpeed)
        // Threshold 0 never sheds for speed.
        var off = ShedPolicy(speedThreshold: 0, windowSeconds: 0.1)
        for i in 0..<20 { XCTAssertNil(off.frameProcessed(mediaMs: Int64(i) * 33, busySeconds: 10)) }
    }
}
