import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// Test media for the transcoder: H.264 in FLV made by ffmpeg's lavfi `testsrc2`, read back
/// with a tiny FLV tag reader into what an RTMP session would hand over.
enum TranscodeTestMedia {
    struct AccessUnit {
        var data: [UInt8]
        var dts: Int64
        var pts: Int64
        var isKeyframe: Bool
    }

    struct Source {
        var url: URL
        var avcC: [UInt8]
        var width: Int
        var height: Int
        var units: [AccessUnit]
        var keyframeIndices: [Int] { units.indices.filter { units[$0].isKeyframe } }
    }

    static let directory: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("streamtube-transcode-tests")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// H.264 (with B-frames) in FLV, keyframes only at `keyframeTimes` seconds.
    static func source(width: Int, height: Int, seconds: Double = 2, fps: Int = 30,
                       keyframeTimes: [Double] = [0, 0.5, 1.1, 1.7]) throws -> Source {
        let name = "src-\(width)x\(height)-\(seconds)s-\(fps)-\(keyframeTimes.map { "\($0)" }.joined(separator: "_")).flv"
        let url = directory.appendingPathComponent(name)
        if !FileManager.default.fileExists(atPath: url.path) {
            // Made once and kept; written aside and renamed so a parallel run never reads half a file.
            let partial = directory.appendingPathComponent("\(getpid())-\(name)")
            try run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=\(width)x\(height):rate=\(fps)", "-t", "\(seconds)",
                "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "10000", "-sc_threshold", "0",
                "-force_key_frames", keyframeTimes.map { "\($0)" }.joined(separator: ","),
                "-pix_fmt", "yuv420p", "-f", "flv", partial.path])
            if rename(partial.path, url.path) != 0 { try? FileManager.default.removeItem(at: partial) }
        }
        let (avcC, units) = try readFLV(Array(try Data(contentsOf: url)))
        return Source(url: url, avcC: avcC, width: width, height: height, units: units)
    }

    /// The video tags of an FLV file: the AVC sequence header and the access units.
    static func readFLV(_ bytes: [UInt8]) throws -> (avcC: [UInt8], units: [AccessUnit]) {
        guard bytes.count > 13, bytes[0] == 0x46, bytes[1] == 0x4c, bytes[2] == 0x56 else {
            throw TranscodeTestFailure("not an FLV file")
        }
        var offset = Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        offset += 4  // PreviousTagSize0
        var avcC: [UInt8] = []
        var units: [AccessUnit] = []
        while offset + 11 <= bytes.count {
            let type = bytes[offset] & 0x1f
            let size = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let ts = Int64(bytes[offset + 7]) << 24 | Int64(bytes[offset + 4]) << 16 | Int64(bytes[offset + 5]) << 8 | Int64(bytes[offset + 6])
            let body = offset + 11
            guard body + size <= bytes.count else { break }
            if type == 9, size >= 5 {
                let frameType = bytes[body] >> 4
                let codec = bytes[body] & 0x0f
                let packetType = bytes[body + 1]
                var cts = Int32(bytes[body + 2]) << 16 | Int32(bytes[body + 3]) << 8 | Int32(bytes[body + 4])
                if cts & 0x80_0000 != 0 { cts -= 0x100_0000 }
                let payload = Array(bytes[(body + 5)..<(body + size)])
                if codec == 7 && packetType == 0 {
                    avcC = payload
                } else if codec == 7 && packetType == 1 && !payload.isEmpty {
                    units.append(AccessUnit(data: payload, dts: ts, pts: ts + Int64(cts), isKeyframe: frameType == 1))
                }
            }
            offset = body + size + 4
        }
        guard !avcC.isEmpty else { throw TranscodeTestFailure("no AVC sequence header") }
        return (avcC, units)
    }

    /// Writes a rung as a raw Annex-B stream, with SPS/PPS from its avcC before each keyframe.
    static func writeAnnexB(avcC: [UInt8], frames: [EncodedVideoFrame], to url: URL) throws {
        let config = try AVCCRecord(parsing: avcC)
        let parameterSets = NALUnits.annexB((config.sequenceParameterSets + config.pictureParameterSets).map { $0[...] })
        var out: [UInt8] = []
        for (index, frame) in frames.enumerated() {
            if frame.isKeyframe || index == 0 { out += parameterSets }
            guard let units = NALUnits.splitLengthPrefixed(frame.data, lengthSize: 4) else {
                throw TranscodeTestFailure("frame \(index) of \(frame.rung) is not well-formed AVCC")
            }
            out += NALUnits.annexB(units)
        }
        try Data(out).write(to: url)
    }

    struct Probe {
        var codec: String
        var width: Int
        var height: Int
        var keyframes: [Bool]
        var keyframeIndices: [Int] { keyframes.indices.filter { keyframes[$0] } }
    }

    /// ffprobe's view of a file: codec, size and the key flag of every decoded frame.
    static func probe(_ url: URL, format: String? = nil) throws -> Probe {
        var args = ["-v", "error", "-select_streams", "v:0",
                    "-show_entries", "stream=codec_name,width,height:frame=key_frame,pict_type", "-of", "json"]
        if let format { args += ["-f", format] }
        let out = try run("/usr/bin/ffprobe", args + [url.path])
        guard let json = try JSONSerialization.jsonObject(with: out) as? [String: Any],
              let stream = (json["streams"] as? [[String: Any]])?.first,
              let frames = json["frames"] as? [[String: Any]]
        else { throw TranscodeTestFailure("unexpected ffprobe output") }
        return Probe(codec: stream["codec_name"] as? String ?? "",
                     width: stream["width"] as? Int ?? 0,
                     height: stream["height"] as? Int ?? 0,
                     keyframes: frames.map { ($0["key_frame"] as? Int) == 1 })
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TranscodeTestFailure("\(executable) failed: \(String(decoding: err, as: UTF8.self))")
        }
        return out
    }
}

struct TranscodeTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Collects the transcoder's outputs from its thread.
final class TranscodeCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [TranscodeOutput] = []

    var sink: @Sendable (TranscodeOutput) -> Void {
        { [self] output in lock.lock(); items.append(output); lock.unlock() }
    }

    var outputs: [TranscodeOutput] { lock.lock(); defer { lock.unlock() }; return items }

    func config(_ rung: String) -> (avcC: [UInt8], width: Int, height: Int)? {
        for case let .config(name, avcC, width, height) in outputs where name == rung { return (avcC, width, height) }
        return nil
    }

    func frames(_ rung: String) -> [EncodedVideoFrame] {
        outputs.compactMap { if case .frame(let f) = $0, f.rung == rung { return f } else { return nil } }
    }

    var configuredRungs: [String] {
        outputs.compactMap { if case .config(let name, _, _, _) = $0 { return name } else { return nil } }
    }

    var shed: [(rung: String, reason: String)] {
        outputs.compactMap { if case .shed(let r, let why) = $0 { return (r, why) } else { return nil } }
    }

    /// Index in the output sequence of the shed event of `rung`.
    func shedIndex(_ rung: String) -> Int? {
        outputs.firstIndex { if case .shed(let r, _) = $0 { return r == rung } else { return false } }
    }
}

extension XCTestCase {
    /// Writes a rung to Annex B and checks it with ffprobe: h264, the size, one frame per
    /// expected frame and keyframes at the given indices.
    func assertRung(_ collector: TranscodeCollector, _ rung: String, width: Int, height: Int,
                    frameCount: Int, keyframeIndices: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        guard let config = collector.config(rung) else { return XCTFail("no config for \(rung)", file: file, line: line) }
        XCTAssertEqual(config.width, width, file: file, line: line)
        XCTAssertEqual(config.height, height, file: file, line: line)
        let frames = collector.frames(rung)
        XCTAssertEqual(frames.count, frameCount, "encoded frames of \(rung)", file: file, line: line)
        XCTAssertEqual(frames.indices.filter { frames[$0].isKeyframe }, keyframeIndices, "key flags of \(rung)", file: file, line: line)
        let url = TranscodeTestMedia.directory.appendingPathComponent("\(name.filter { $0.isLetter || $0.isNumber })-\(rung).h264")
        try TranscodeTestMedia.writeAnnexB(avcC: config.avcC, frames: frames, to: url)
        let probe = try TranscodeTestMedia.probe(url, format: "h264")
        XCTAssertEqual(probe.codec, "h264", file: file, line: line)
        XCTAssertEqual(probe.width, width, file: file, line: line)
        XCTAssertEqual(probe.height, height, file: file, line: line)
        XCTAssertEqual(probe.keyframes.count, frameCount, "frames ffprobe decodes in \(rung)", file: file, line: line)
        XCTAssertEqual(probe.keyframeIndices, keyframeIndices, "keyframes ffprobe sees in \(rung)", file: file, line: line)
    }
}

/// A deterministic generator (SplitMix64) so a failing corruption or fuzz case replays from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
