// Test media made with the ffmpeg command line from lavfi sources (nothing downloaded),
// shared by the test targets that need real media.
import Foundation

/// Makes test media once per process and keeps it in a temporary folder.
package enum MediaFixtures {
    package static let folder: URL = {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("streamtube-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }()

    /// Makes an FLV with ffmpeg's lavfi sources (nothing downloaded).
    package static func flv(name: String, seconds: Double, size: String = "320x240", rate: Int = 30, gop: Int = 30,
                    bframes: Int = 0, audio: Bool = true, videoCodec: [String]? = nil,
                    audioCodec: [String]? = nil) throws -> [UInt8] {
        let out = folder.appendingPathComponent(name + ".flv")
        if let data = try? Data(contentsOf: out) { return [UInt8](data) }
        var args = ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=\(size):rate=\(rate)"]
        if audio { args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] }
        args += ["-t", "\(seconds)"]
        args += videoCodec ?? ["-c:v", "libx264", "-preset", "veryfast", "-g", "\(gop)", "-bf", "\(bframes)", "-pix_fmt", "yuv420p"]
        if audio { args += audioCodec ?? ["-c:a", "aac", "-b:a", "96k"] }
        args += ["-f", "flv", out.path]
        try run("/usr/bin/ffmpeg", args)
        return [UInt8](try Data(contentsOf: out))
    }

    @discardableResult
    package static func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        let err = Pipe()
        p.standardError = err
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "tool", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(args): \(String(decoding: errData, as: UTF8.self))"])
        }
        return String(decoding: out, as: UTF8.self) + String(decoding: errData, as: UTF8.self)
    }
}
