// transcode-bench: CPU cost of StreamTranscoder against the ffmpeg command line making the
// same ladder from the same input. Not a test: run it by hand (`swift run -c release
// transcode-bench [seconds] [--paced]`) and read the figures.
//
// Input: lavfi testsrc2 1280x720 30 fps, libx264 main at 4 Mbit/s, keyframe every 2 s, in
// FLV (made once, kept in the temporary directory). Ours: the default ladder (720p 3000k,
// 480p 1400k, 360p 800k), veryfast, zerolatency, 1 thread per rung, fed as fast as it goes.
// ffmpeg: one decode, split + scale, three libx264 with the same options, `-f null`.
import CFFmpeg
import Foundation
import Origin
import Transcode

struct AccessUnit { var data: [UInt8]; var dts: Int64; var pts: Int64; var isKeyframe: Bool }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("transcode-bench: \(message)\n".utf8))
    exit(1)
}

func cpuSeconds(_ who: __rusage_who) -> Double {
    var usage = rusage()
    getrusage(who.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

@discardableResult
func run(_ executable: String, _ arguments: [String]) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    do { try process.run() } catch { fail("cannot run \(executable): \(error)") }
    process.waitUntilExit()
    return process.terminationStatus
}

/// The AVC sequence header and access units of an FLV file.
func readFLV(_ bytes: [UInt8]) -> (avcC: [UInt8], units: [AccessUnit]) {
    guard bytes.count > 13, bytes[0] == 0x46, bytes[1] == 0x4c, bytes[2] == 0x56 else { fail("not FLV") }
    var offset = (Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])) + 4
    var avcC: [UInt8] = []
    var units: [AccessUnit] = []
    while offset + 11 <= bytes.count {
        let type = bytes[offset] & 0x1f
        let size = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        let ts = Int64(bytes[offset + 7]) << 24 | Int64(bytes[offset + 4]) << 16 | Int64(bytes[offset + 5]) << 8 | Int64(bytes[offset + 6])
        let body = offset + 11
        guard body + size <= bytes.count else { break }
        if type == 9, size >= 5, bytes[body] & 0x0f == 7 {
            var cts = Int32(bytes[body + 2]) << 16 | Int32(bytes[body + 3]) << 8 | Int32(bytes[body + 4])
            if cts & 0x80_0000 != 0 { cts -= 0x100_0000 }
            let payload = Array(bytes[(body + 5)..<(body + size)])
            if bytes[body + 1] == 0 { avcC = payload }
            if bytes[body + 1] == 1 && !payload.isEmpty {
                units.append(AccessUnit(data: payload, dts: ts, pts: ts + Int64(cts), isKeyframe: bytes[body] >> 4 == 1))
            }
        }
        offset = body + size + 4
    }
    return (avcC, units)
}

let arguments = CommandLine.arguments.dropFirst()
let seconds = arguments.first.flatMap(Int.init) ?? 20
let paced = arguments.contains("--paced")
let settings = TranscodeSettings.default

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("streamtube-transcode-bench")
try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
let input = directory.appendingPathComponent("testsrc2-1280x720-30fps-\(seconds)s-main-4M.flv")
if !FileManager.default.fileExists(atPath: input.path) {
    print("making \(input.path)")
    let status = run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "\(seconds)",
        "-c:v", "libx264", "-profile:v", "main", "-preset", "veryfast",
        "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "60", "-pix_fmt", "yuv420p", input.path])
    guard status == 0 else { fail("ffmpeg could not make the input") }
}
guard let fileData = FileManager.default.contents(atPath: input.path) else { fail("cannot read \(input.path)") }
let (avcC, units) = readFLV(Array(fileData))
guard let first = units.first, let last = units.last else { fail("no video in \(input.path)") }
let mediaSeconds = Double(last.dts - first.dts) / 1000 + 1.0 / 30
print("input: \(input.lastPathComponent), \(units.count) frames, \(String(format: "%.2f", mediaSeconds)) s, \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
print("ladder: " + settings.rungs.map { "\($0.name) \($0.videoBitrate / 1000)k" }.joined(separator: ", ") +
      ", preset \(settings.preset), tune zerolatency, threads \(settings.threads)/rung")

// --- ours -------------------------------------------------------------------------------
av_log_set_level(AV_LOG_ERROR)
final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var frames: [String: Int] = [:]
    var bytes: [String: Int] = [:]
    var shed: [String] = []
}
let counter = Counter()
var oursSettings = settings
if !paced {
    oursSettings.maxQueuedFrames = units.count + 1  // fed as fast as possible: measure cost, not shedding
    oursSettings.shedSpeedThreshold = 0
}
let cpu0 = cpuSeconds(RUSAGE_SELF)
let wall0 = now()
let transcoder: StreamTranscoder
do {
    transcoder = try StreamTranscoder(settings: oursSettings, sourceAVCC: avcC, sourceWidth: 1280, sourceHeight: 720) { output in
        counter.lock.lock()
        defer { counter.lock.unlock() }
        switch output {
        case .frame(let f): counter.frames[f.rung, default: 0] += 1; counter.bytes[f.rung, default: 0] += f.data.count
        case .shed(let rung, _): counter.shed.append(rung)
        case .config: break
        }
    }
} catch { fail("\(error)") }
var refused = 0
for unit in units {
    if paced {
        let due = wall0 + Double(unit.dts - first.dts) / 1000
        let wait = due - now()
        if wait > 0 { usleep(UInt32(wait * 1e6)) }
    }
    if !transcoder.submit(data: unit.data, dts: unit.dts, pts: unit.pts, isKeyframe: unit.isKeyframe) { refused += 1 }
}
transcoder.finish()
let oursWall = now() - wall0
let oursCPU = cpuSeconds(RUSAGE_SELF) - cpu0
let stats = transcoder.stats
for rung in stats.rungs {
    let kbps = Double(counter.bytes[rung.name, default: 0]) * 8 / mediaSeconds / 1000
    print("  ours \(rung.name) \(rung.width)x\(rung.height): \(rung.framesOut) frames, \(Int(kbps)) kbit/s\(rung.isShed ? " (shed)" : "")")
}
if paced { print("  paced at real time: \(refused) refused, shed \(stats.shedRungs)") }

// --- ffmpeg ------------------------------------------------------------------------------
var ffArgs = ["-hide_banner", "-loglevel", "error", "-nostats", "-threads", "1", "-i", input.path]
let heights = settings.rungs.map(\.height)
let splits = heights.indices.map { "[s\($0)]" }.joined()
let filter = "[0:v]split=\(heights.count)\(splits);" +
    heights.enumerated().map { "[s\($0.offset)]scale=-2:\($0.element):flags=bicubic[v\($0.offset)]" }.joined(separator: ";")
ffArgs += ["-filter_complex", filter]
for (index, rung) in settings.rungs.enumerated() {
    ffArgs += ["-map", "[v\(index)]", "-c:v", "libx264", "-preset", settings.preset, "-tune", "zerolatency",
               "-threads", "\(settings.threads)", "-b:v", "\(rung.videoBitrate)", "-maxrate", "\(rung.maxBitrate)",
               "-bufsize", "\(rung.maxBitrate)", "-x264-params", "scenecut=0:keyint=infinite:min-keyint=1",
               "-force_key_frames", "source", "-f", "null", "-"]
}
let child0 = cpuSeconds(RUSAGE_CHILDREN)
let ffWall0 = now()
guard run("/usr/bin/ffmpeg", ffArgs) == 0 else { fail("ffmpeg ladder failed: ffmpeg \(ffArgs.joined(separator: " "))") }
let ffWall = now() - ffWall0
let ffCPU = cpuSeconds(RUSAGE_CHILDREN) - child0

func f(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }
print("")
print("                      CPU s   CPU s/media s   wall s   real-time factor")
print("ours (StreamTranscoder) \(f(oursCPU, 2))   \(f(oursCPU / mediaSeconds))          \(f(oursWall, 2))   \(f(mediaSeconds / oursWall, 2))x")
print("ffmpeg CLI              \(f(ffCPU, 2))   \(f(ffCPU / mediaSeconds))          \(f(ffWall, 2))   \(f(mediaSeconds / ffWall, 2))x")
print("ratio ours/ffmpeg (CPU): \(f(oursCPU / ffCPU))")
print("ours encoder speed (media s / busy wall s): \(f(stats.encoderSpeed, 2))x")
print("ffmpeg command: ffmpeg " + ffArgs.map { $0.contains(" ") || $0.contains(";") || $0.contains("[") ? "'\($0)'" : $0 }.joined(separator: " "))
