// Tests for AVCDecoderConfiguration and H264SequenceParameterSet against real SPSs written by
// ffmpeg/libx264, with ffprobe as the oracle for size, profile and level.

import Foundation
import XCTest
@testable import Origin

final class H264ConfigurationTests: XCTestCase {
    struct Case {
        var size: (Int, Int)
        var rate: String
        var profile: String
        var pixelFormat: String
        var extra: [String] = []
        /// testsrc2 rounds sizes to even numbers; testsrc keeps odd ones.
        var source = "testsrc2"
        var expectedProfileIDC: UInt8
        var expectedRate: Double
    }

    /// Encodes one frame to FLV, returns the avcC from its sequence header and ffprobe's view of the stream.
    func encode(_ c: Case) throws -> (AVCDecoderConfiguration, [String: Any]) {
        let file = TempFiles.url("flv")
        defer { try? FileManager.default.removeItem(at: file) }
        try Tools.run("ffmpeg", ["-hide_banner", "-v", "error", "-y",
                                 "-f", "lavfi", "-i", "\(c.source)=size=\(c.size.0)x\(c.size.1):rate=\(c.rate)",
                                 "-frames:v", "1", "-c:v", "libx264", "-profile:v", c.profile, "-pix_fmt", c.pixelFormat]
                      + c.extra + ["-threads", "1", "-f", "flv", file.path])
        let media = try FLVMedia(flv: [UInt8](try Data(contentsOf: file)))
        let record = try XCTUnwrap(media.avcRecord, "no AVC sequence header in FLV")
        let probe = try Tools.probe(file.path, ["-show_streams"])
        let stream = try XCTUnwrap((probe["streams"] as? [[String: Any]])?.first)
        return (try AVCDecoderConfiguration(record: record), stream)
    }

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws -> AVCDecoderConfiguration {
        let (config, stream) = try encode(c)
        XCTAssertEqual(config.width, c.size.0, "width", file: file, line: line)
        XCTAssertEqual(config.height, c.size.1, "height", file: file, line: line)
        XCTAssertEqual(config.width, stream["width"] as? Int, "width vs ffprobe", file: file, line: line)
        XCTAssertEqual(config.height, stream["height"] as? Int, "height vs ffprobe", file: file, line: line)
        XCTAssertEqual(config.profileIndication, c.expectedProfileIDC, "profile_idc", file: file, line: line)
        XCTAssertEqual(Int(config.levelIndication), stream["level"] as? Int, "level vs ffprobe", file: file, line: line)
        XCTAssertEqual(config.nalLengthSize, 4, file: file, line: line)
        XCTAssertEqual(config.sps.count, 1, file: file, line: line)
        XCTAssertEqual(config.pps.count, 1, file: file, line: line)
        XCTAssertEqual(config.sps.first.map { $0[0] & 0x1F }, 7, "SPS NAL type", file: file, line: line)
        XCTAssertEqual(config.pps.first.map { $0[0] & 0x1F }, 8, "PPS NAL type", file: file, line: line)
        let rate = try XCTUnwrap(config.frameRate, "x264 writes VUI timing info", file: file, line: line)
        XCTAssertEqual(rate, c.expectedRate, accuracy: 0.001, file: file, line: line)
        let expectedCodec = String(format: "avc1.%02x%02x%02x", config.record[1], config.record[2], config.record[3])
        XCTAssertEqual(config.codecString, expectedCodec, file: file, line: line)
        return config
    }

    func testBaseline320x240() throws {
        let config = try check(Case(size: (320, 240), rate: "30", profile: "baseline", pixelFormat: "yuv420p",
                                    expectedProfileIDC: 66, expectedRate: 30))
        XCTAssertTrue(config.codecString.hasPrefix("avc1.42"), config.codecString)
        // x264 baseline sets constraint_set0 and constraint_set1 (constrained baseline).
        XCTAssertEqual(config.profileCompatibility & 0xC0, 0xC0)
    }

    func testMain1280x720At25() throws {
        let config = try check(Case(size: (1280, 720), rate: "25", profile: "main", pixelFormat: "yuv420p",
                                    expectedProfileIDC: 77, expectedRate: 25))
        XCTAssertTrue(config.codecString.hasPrefix("avc1.4d"), config.codecString)
    }

    func testHigh1920x1080NeedsCroppingAtNTSCRate() throws {
        let config = try check(Case(size: (1920, 1080), rate: "30000/1001", profile: "high", pixelFormat: "yuv420p",
                                    expectedProfileIDC: 100, expectedRate: 30000.0 / 1001.0))
        XCTAssertTrue(config.codecString.hasPrefix("avc1.64"), config.codecString)
        let sps = try H264SequenceParameterSet(nalUnit: config.sps[0])
        XCTAssertTrue(sps.frameMBsOnly)
        XCTAssertEqual(sps.chromaFormatIDC, 1)
    }

    func testHighOddSize642x362() throws {
        _ = try check(Case(size: (642, 362), rate: "30", profile: "high", pixelFormat: "yuv420p",
                           expectedProfileIDC: 100, expectedRate: 30))
    }

    func testHigh444OddSizeCropsInLumaUnits() throws {
        let config = try check(Case(size: (641, 361), rate: "30", profile: "high444", pixelFormat: "yuv444p",
                                    source: "testsrc", expectedProfileIDC: 244, expectedRate: 30))
        XCTAssertEqual(try H264SequenceParameterSet(nalUnit: config.sps[0]).chromaFormatIDC, 3)
    }

    func testHigh422() throws {
        let config = try check(Case(size: (640, 362), rate: "30", profile: "high422", pixelFormat: "yuv422p",
                                    expectedProfileIDC: 122, expectedRate: 30))
        XCTAssertEqual(try H264SequenceParameterSet(nalUnit: config.sps[0]).chromaFormatIDC, 2)
    }

    func testHigh10BitDepth() throws {
        let config = try check(Case(size: (1280, 720), rate: "30", profile: "high10", pixelFormat: "yuv420p10le",
                                    expectedProfileIDC: 110, expectedRate: 30))
        XCTAssertEqual(try H264SequenceParameterSet(nalUnit: config.sps[0]).bitDepthLuma, 10)
    }

    func testMonochromeChromaFormatZero() throws {
        let config = try check(Case(size: (322, 242), rate: "30", profile: "high", pixelFormat: "gray",
                                    expectedProfileIDC: 100, expectedRate: 30))
        XCTAssertEqual(try H264SequenceParameterSet(nalUnit: config.sps[0]).chromaFormatIDC, 0)
    }

    func testScalingListsAreSkipped() throws {
        // cqm=jvt makes x264 write seq_scaling_matrix_present_flag and explicit lists in the SPS.
        _ = try check(Case(size: (1280, 720), rate: "30", profile: "high", pixelFormat: "yuv420p",
                           extra: ["-x264-params", "cqm=jvt"], expectedProfileIDC: 100, expectedRate: 30))
    }

    func testInterlacedFieldCoding() throws {
        let config = try check(Case(size: (1920, 1080), rate: "30", profile: "high", pixelFormat: "yuv420p",
                                    extra: ["-flags", "+ildct+ilme", "-x264-params", "interlaced=1"],
                                    expectedProfileIDC: 100, expectedRate: 30))
        XCTAssertFalse(try H264SequenceParameterSet(nalUnit: config.sps[0]).frameMBsOnly)
    }

    // MARK: - Fixed records, errors, fuzzing

    /// avcC written by ffmpeg/libx264 for 320x240 baseline at 30 fps.
    static let baselineRecord: [UInt8] = hexBytes(
        "0142c00dffe100186742c00dd90141fb0110000003001000000303c0f142a48001000568cb83cb20")

    func testFixedRecord() throws {
        let config = try AVCDecoderConfiguration(record: Self.baselineRecord)
        XCTAssertEqual(config.codecString, "avc1.42c00d")
        XCTAssertEqual(config.width, 320)
        XCTAssertEqual(config.height, 240)
        XCTAssertEqual(config.frameRate, 30)
        XCTAssertEqual(config.record, Self.baselineRecord)
        XCTAssertEqual(config.sps, [Array(Self.baselineRecord[8..<32])])
        XCTAssertEqual(config.pps, [Array(Self.baselineRecord[35...])])
    }

    func testCodecStringIsLowercaseHex() throws {
        var record = Self.baselineRecord
        record[1] = 0x64; record[2] = 0x00; record[3] = 0x1F   // header fields only; the SPS decides the size
        XCTAssertEqual(try AVCDecoderConfiguration(record: record).codecString, "avc1.64001f")
    }

    func testEmulationPreventionBytesAreRemoved() {
        XCTAssertEqual(H264SequenceParameterSet.rbsp(from: [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x03]),
                       [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03])
    }

    func testEveryTruncationIsATypedError() {
        for length in 0..<Self.baselineRecord.count {
            XCTAssertThrowsError(try AVCDecoderConfiguration(record: Array(Self.baselineRecord.prefix(length)))) { error in
                guard case .truncated = error as? CMAFParseError else {
                    return XCTFail("prefix \(length): expected .truncated, got \(error)")
                }
            }
        }
        for length in 0..<4 {
            XCTAssertThrowsError(try H264SequenceParameterSet(nalUnit: Array(Self.baselineRecord[8..<32].prefix(length))))
        }
    }

    func testGarbageIsRejectedWithAReason() {
        func expectInvalid(_ record: [UInt8], _ what: String, line: UInt = #line) {
            XCTAssertThrowsError(try AVCDecoderConfiguration(record: record), line: line) { error in
                guard case .invalidValue(let field, _) = error as? CMAFParseError else {
                    return XCTFail("expected .invalidValue, got \(error)", line: line)
                }
                XCTAssertTrue(field.contains(what), "\(field) should mention \(what)", line: line)
                XCTAssertFalse(String(describing: error).isEmpty, line: line)
            }
        }
        var record = Self.baselineRecord
        record[0] = 2
        expectInvalid(record, "configurationVersion")
        record = Self.baselineRecord; record[4] = 0xFE
        expectInvalid(record, "NAL length size")
        record = Self.baselineRecord; record[5] = 0xE0
        expectInvalid(record, "numOfSequenceParameterSets")
        record = Self.baselineRecord; record[8] = 0x68                      // a PPS where the SPS should be
        expectInvalid(record, "nal_unit_type")
        record = Self.baselineRecord; record[32] = 0
        expectInvalid(record, "numOfPictureParameterSets")
        // An SPS whose width exp-Golomb code is absurdly long.
        record = Self.baselineRecord
        for i in 13..<30 { record[i] = 0 }
        XCTAssertThrowsError(try AVCDecoderConfiguration(record: record))
    }

    func testSeededFuzzNeverCrashes() {
        var random = SeededRNG(seed: 0x5EED_CAF0)
        var accepted = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                if round % 4 == 0, !bytes.isEmpty { bytes[0] = 1 }             // get past the version check
            } else {
                // Mutate a valid record: flip bits, then maybe truncate.
                bytes = Self.baselineRecord
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0...7, using: &random)
                }
                if Bool.random(using: &random) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random))) }
            }
            if let config = try? AVCDecoderConfiguration(record: bytes) {
                accepted += 1
                XCTAssertGreaterThan(config.width, 0)
                XCTAssertGreaterThan(config.height, 0)
                XCTAssertLessThanOrEqual(config.width, 8192)
                XCTAssertFalse(config.sps.isEmpty)
                XCTAssertTrue([1, 2, 4].contains(config.nalLengthSize))
            }
            // The SPS parser alone, always past the NAL type check, on random or mutated payloads.
            let spsPayload = round % 2 == 0 ? bytes : Array(bytes.dropFirst(9))
            if let sps = try? H264SequenceParameterSet(nalUnit: [0x67] + spsPayload) {
                XCTAssertGreaterThan(sps.width, 0)
                XCTAssertGreaterThan(sps.height, 0)
            }
        }
        XCTAssertGreaterThan(accepted, 0, "some mutations (e.g. in the level byte) keep the record valid")
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
