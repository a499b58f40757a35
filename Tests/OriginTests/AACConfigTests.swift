// Tests for AudioSpecificConfig against the sequence headers ffmpeg's AAC encoder writes to FLV,
// hand-made configurations for the rarer fields, and garbage.

import Foundation
import XCTest
@testable import Origin

final class AACConfigTests: XCTestCase {
    func encoded(sampleRate: Int, channels: Int) throws -> (AudioSpecificConfig, [String: Any]) {
        let file = TempFiles.url("flv")
        defer { try? FileManager.default.removeItem(at: file) }
        try Tools.run("ffmpeg", ["-hide_banner", "-v", "error", "-y",
                                 "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=\(sampleRate)",
                                 "-t", "0.2", "-ac", "\(channels)", "-c:a", "aac", "-threads", "1", "-f", "flv", file.path])
        let media = try FLVMedia(flv: [UInt8](try Data(contentsOf: file)))
        let bytes = try XCTUnwrap(media.aacConfig, "no AAC sequence header in FLV")
        let stream = try XCTUnwrap((try Tools.probe(file.path, ["-show_streams"])["streams"] as? [[String: Any]])?.first)
        return (try AudioSpecificConfig(bytes: bytes), stream)
    }

    func testFFmpegEncodedConfigs() throws {
        for rate in [44100, 48000] {
            for channels in [1, 2] {
                let (config, stream) = try encoded(sampleRate: rate, channels: channels)
                XCTAssertEqual(config.objectType, 2, "\(rate) Hz \(channels) ch")
                XCTAssertEqual(config.sampleRate, rate)
                XCTAssertEqual(config.channelCount, channels)
                XCTAssertEqual(String(config.sampleRate), stream["sample_rate"] as? String)
                XCTAssertEqual(config.channelCount, stream["channels"] as? Int)
                XCTAssertEqual(config.codecString, "mp4a.40.2")
                XCTAssertEqual(config.samplesPerFrame, 1024)
            }
        }
    }

    func testKnownConfigs() throws {
        let lc44Stereo = try AudioSpecificConfig(bytes: [0x12, 0x10])
        XCTAssertEqual([lc44Stereo.objectType, lc44Stereo.sampleRate, lc44Stereo.channelCount], [2, 44100, 2])
        let lc48Mono = try AudioSpecificConfig(bytes: [0x11, 0x88])
        XCTAssertEqual([lc48Mono.objectType, lc48Mono.sampleRate, lc48Mono.channelCount], [2, 48000, 1])
        let he = try AudioSpecificConfig(bytes: [0x2B, 0x92, 0x08, 0x00])
        XCTAssertEqual(he.codecString, "mp4a.40.5")
        XCTAssertEqual(he.sampleRate, 22050)
        XCTAssertEqual(he.channelCount, 2)
        let surround = try AudioSpecificConfig(bytes: [0x11, 0xB8])            // LC, 48 kHz, config 7
        XCTAssertEqual(surround.channelCount, 8)
    }

    func testEscapedObjectTypeAndExplicitFrequency() throws {
        // audioObjectType 31 + 6-bit ext 10 (= 42, USAC), frequency index 15 + 24 bits 37800, channel config 2.
        var bits = ""
        bits += "11111" + "001010" + "1111" + String(37800, radix: 2).leftPadded(to: 24) + "0010"
        while bits.count % 8 != 0 { bits += "0" }
        let bytes = stride(from: 0, to: bits.count, by: 8).map { i -> UInt8 in
            let start = bits.index(bits.startIndex, offsetBy: i)
            return UInt8(bits[start..<bits.index(start, offsetBy: 8)], radix: 2)!
        }
        let config = try AudioSpecificConfig(bytes: bytes)
        XCTAssertEqual(config.objectType, 42)
        XCTAssertEqual(config.sampleRate, 37800)
        XCTAssertEqual(config.channelCount, 2)
        XCTAssertEqual(config.codecString, "mp4a.40.42")
        XCTAssertEqual(config.bytes, bytes)
    }

    func testErrors() {
        func expect(_ bytes: [UInt8], line: UInt = #line, _ matches: (CMAFParseError) -> Bool) {
            XCTAssertThrowsError(try AudioSpecificConfig(bytes: bytes), line: line) { error in
                guard let parseError = error as? CMAFParseError, matches(parseError) else {
                    return XCTFail("unexpected error \(error)", line: line)
                }
            }
        }
        expect([]) { if case .truncated = $0 { true } else { false } }
        expect([0x12]) { if case .truncated = $0 { true } else { false } }
        expect([0x16, 0x90]) { if case .invalidValue("AAC samplingFrequencyIndex", 13) = $0 { true } else { false } }
        expect([0x12, 0x00]) { if case .unsupported = $0 { true } else { false } }          // channel config 0 (PCE)
        expect([0x12, 0x78]) { if case .invalidValue("AAC channelConfiguration", 15) = $0 { true } else { false } }
        expect([0x02, 0x10]) { if case .invalidValue("audioObjectType", 0) = $0 { true } else { false } }
        expect([0x17, 0x80]) { if case .truncated = $0 { true } else { false } }             // explicit frequency cut off
    }

    func testSeededFuzzNeverCrashes() {
        var random = SeededRNG(seed: 44_100)
        var accepted = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...8, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if let config = try? AudioSpecificConfig(bytes: bytes) {
                accepted += 1
                XCTAssertGreaterThan(config.sampleRate, 0)
                XCTAssertTrue((1...8).contains(config.channelCount))
                XCTAssertTrue(config.codecString.hasPrefix("mp4a.40."))
            }
        }
        XCTAssertGreaterThan(accepted, 1000)
    }
}

extension String {
    func leftPadded(to length: Int) -> String { String(repeating: "0", count: max(0, length - count)) + self }
}
