// Test support for the CMAF packaging tests: runs the real ffmpeg/ffprobe, reads the FLV
// files ffmpeg writes (the same tags an RTMP ingest carries), walks ISO BMFF boxes, and a
// seedable random source for fuzzing.

import Foundation
import XCTest
@testable import Origin

enum ToolError: Error, CustomStringConvertible {
    case notFound(String)
    case failed(String, Int32, String)
    var description: String {
        switch self {
        case .notFound(let tool): return "\(tool) not found on PATH; apt-get install -y ffmpeg"
        case .failed(let tool, let status, let stderr): return "\(tool) exited \(status): \(stderr)"
        }
    }
}

struct ToolResult {
    var status: Int32
    var stdout: Data
    var stderr: String
}

/// Runs ffmpeg and ffprobe from PATH; output goes through files so large outputs cannot deadlock.
enum Tools {
    static func path(of tool: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ToolError.notFound(tool)
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String], check: Bool = true) throws -> ToolResult {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmaf-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try path(of: tool))
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
        process.waitUntilExit()
        try outHandle.close(); try errHandle.close()
        let result = ToolResult(status: process.terminationStatus,
                                stdout: try Data(contentsOf: out),
                                stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
        if check && result.status != 0 { throw ToolError.failed(tool, result.status, result.stderr) }
        return result
    }

    /// Encodes lavfi sources with ffmpeg into an FLV file and returns its bytes.
    static func encodeFLV(_ arguments: [String]) throws -> [UInt8] {
        let file = TempFiles.url("flv")
        defer { try? FileManager.default.removeItem(at: file) }
        try run("ffmpeg", ["-hide_banner", "-v", "error", "-y"] + arguments + ["-threads", "1", "-f", "flv", file.path])
        return [UInt8](try Data(contentsOf: file))
    }

    /// `ffprobe -of json` with the given show options, parsed.
    static func probe(_ path: String, _ options: [String]) throws -> [String: Any] {
        let result = try run("ffprobe", ["-v", "error", "-of", "json"] + options + [path])
        return try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] ?? [:]
    }
}

enum TempFiles {
    static func url(_ ext: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("cmaf-\(UUID().uuidString).\(ext)")
    }

    static func write(_ bytes: [UInt8], ext: String = "mp4") throws -> URL {
        let url = url(ext)
        try Data(bytes).write(to: url)
        return url
    }
}

// MARK: - FLV

/// One FLV tag as an RTMP ingest would deliver it.
struct FLVTag {
    enum Kind: UInt8 { case audio = 8, video = 9, script = 18 }
    var kind: Kind
    var timestamp: Int          // milliseconds, decode time
    var data: [UInt8]
}

/// The media of an FLV file: sequence headers and access units with their timing.
struct FLVMedia {
    struct VideoFrame { var dts: Int; var cts: Int; var isKey: Bool; var data: [UInt8] }
    struct AudioFrame { var dts: Int; var data: [UInt8] }

    var avcRecord: [UInt8]?
    var aacConfig: [UInt8]?
    var video: [VideoFrame] = []
    var audio: [AudioFrame] = []

    init(flv: [UInt8]) throws {
        for tag in try FLVReader.tags(flv) {
            switch tag.kind {
            case .video:
                guard tag.data.count >= 5, tag.data[0] & 0x0F == 7 else { continue }   // AVC only
                let isKey = tag.data[0] >> 4 == 1
                var cts = Int(tag.data[2]) << 16 | Int(tag.data[3]) << 8 | Int(tag.data[4])
                if cts & 0x80_0000 != 0 { cts -= 0x100_0000 }                          // SI24
                let payload = Array(tag.data[5...])
                switch tag.data[1] {
                case 0: avcRecord = payload
                case 1: video.append(VideoFrame(dts: tag.timestamp, cts: cts, isKey: isKey, data: payload))
                default: break
                }
            case .audio:
                guard tag.data.count >= 2, tag.data[0] >> 4 == 10 else { continue }     // AAC only
                let payload = Array(tag.data[2...])
                if tag.data[1] == 0 { aacConfig = payload } else { audio.append(AudioFrame(dts: tag.timestamp, data: payload)) }
            case .script:
                break
            }
        }
    }
}

enum FLVReader {
    struct Malformed: Error { var reason: String }

    static func tags(_ bytes: [UInt8]) throws -> [FLVTag] {
        guard bytes.count >= 13, Array(bytes[0..<3]) == Array("FLV".utf8) else { throw Malformed(reason: "no FLV header") }
        let headerSize = Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        var offset = headerSize + 4                                                   // + PreviousTagSize0
        var tags: [FLVTag] = []
        while offset + 11 <= bytes.count {
            let type = bytes[offset]
            let size = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let timestamp = Int(bytes[offset + 7]) << 24 | Int(bytes[offset + 4]) << 16 | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6])
            let start = offset + 11
            guard start + size <= bytes.count else { throw Malformed(reason: "tag past end of file") }
            if let kind = FLVTag.Kind(rawValue: type & 0x1F) {
                tags.append(FLVTag(kind: kind, timestamp: timestamp, data: Array(bytes[start..<start + size])))
            }
            offset = start + size + 4
        }
        return tags
    }
}

// MARK: - ISO BMFF walking

struct Box {
    var type: String
    var start: Int              // offset of the size field in the buffer
    var size: Int
    var headerSize: Int
    var bodyStart: Int { start + headerSize }
    var end: Int { start + size }
}

enum BoxParser {
    /// The boxes directly inside `range` of `bytes`.
    static func boxes(_ bytes: [UInt8], in range: Range<Int>? = nil) -> [Box] {
        let range = range ?? 0..<bytes.count
        var offset = range.lowerBound
        var result: [Box] = []
        while offset + 8 <= range.upperBound {
            var size = Int(be32(bytes, offset))
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            var header = 8
            if size == 1 { size = Int(be64(bytes, offset + 8)); header = 16 }
            guard size >= header, offset + size <= range.upperBound else { break }
            result.append(Box(type: type, start: offset, size: size, headerSize: header))
            offset += size
        }
        return result
    }

    /// Follows a path of box types, e.g. ["moov", "trak", "mdia"], through container boxes.
    /// Boxes whose children follow fixed fields (stsd, dref, sample entries) skip those first.
    static func find(_ bytes: [UInt8], _ path: [String], in range: Range<Int>? = nil) -> [Box] {
        guard let first = path.first else { return [] }
        let matches = boxes(bytes, in: range).filter { $0.type == first }
        if path.count == 1 { return matches }
        return matches.flatMap { box in
            find(bytes, Array(path.dropFirst()), in: box.bodyStart + childOffset(box.type)..<box.end)
        }
    }

    static func childOffset(_ type: String) -> Int {
        switch type {
        case "stsd": return 8                // version/flags + entry_count
        case "dref": return 8
        case "avc1": return 78
        case "mp4a": return 28
        default: return 0
        }
    }

    static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    static func be64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4)) }
}

