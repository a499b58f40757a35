import Foundation
import MediaTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Origin

/// Real ffmpeg as the server: `ffmpeg -listen 1 -f flv -i rtmp://...` receives what a test
/// TCP client driven by RTMPClientSession publishes, and remuxes it to out.flv.
final class RTMPClientFFmpegTests: XCTestCase {
    enum HarnessError: Error { case socket(String), timeout(String), ffmpeg(String) }

    /// ffmpeg and ffprobe are test dependencies (ops/install-deps --test): without them the test fails.
    private func tool(_ name: String) throws -> String {
        try Tools.path(of: name)
    }

    @discardableResult
    private func run(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw HarnessError.ffmpeg("\(path) \(arguments): \(output)") }
        return output
    }

    /// A free port: bind port 0, read it back, release it for ffmpeg.
    private func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.socket("socket") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw HarnessError.socket("bind") }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// Connects to 127.0.0.1:port, retrying until ffmpeg listens or `deadline` passes.
    private func connectWithRetry(port: UInt16, deadline: Date) throws -> Int32 {
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw HarnessError.socket("socket") }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            if connected { return fd }
            close(fd)
            usleep(100_000)
        }
        throw HarnessError.timeout("ffmpeg never listened on port \(port)")
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError.socket("send: errno \(errno)") }
            offset += n
        }
    }

    private func probe(_ ffprobe: String, _ file: String) throws -> [String] {
        try run(ffprobe, ["-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
                          "-of", "csv=p=0", file])
            .split(separator: "\n").map(String.init).sorted()
    }

    func testPublishesRealFLVToFFmpegListener() throws {
        try publishToFFmpeg(timestampOffset: 0)
    }

    /// Timestamps from 0x01000000 on: every first header on a chunk stream carries an
    /// extended absolute timestamp, and audio after the metadata (timestamp 0, same chunk
    /// stream) an extended delta. ffmpeg must read the same timestamps back.
    func testExtendedTimestampsReachFFmpeg() throws {
        try publishToFFmpeg(timestampOffset: 0x0100_0000)
    }

    private func publishToFFmpeg(timestampOffset: UInt32) throws {
        let ffmpeg = try tool("ffmpeg"), ffprobe = try tool("ffprobe")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rtmp-client-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.flv").path, output = dir.appendingPathComponent("out.flv").path
        try run(ffmpeg, ["-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine", "-t", "3",
                         "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-g", "30", "-c:a", "aac", "-f", "flv", input])
        let flv = try FLVFile(Array(try Data(contentsOf: URL(fileURLWithPath: input))))

        let port = try freePort()
        let log = dir.appendingPathComponent("ffmpeg.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: log)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: ffmpeg)
        server.arguments = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-listen", "1",
                            "-f", "flv", "-i", "rtmp://127.0.0.1:\(port)/live/key", "-c", "copy", "-copyts", "-f", "flv", output]
        server.standardInput = FileHandle.nullDevice
        server.standardOutput = logHandle
        server.standardError = logHandle
        try server.run()
        defer { if server.isRunning { server.terminate() } }

        let deadline = Date().addingTimeInterval(60)
        let fd = try connectWithRetry(port: port, deadline: deadline)
        var closed = false
        defer { if !closed { close(fd) } }

        var session = RTMPClientSession(app: "live", tcURL: "rtmp://127.0.0.1:\(port)/live", streamKey: "key",
                                        randomBytes: { n in (0..<n).map { _ in UInt8.random(in: 0...255) } })
        try sendAll(fd, session.start())
        var buffer = [UInt8](repeating: 0, count: 65536)
        var events: [RTMPClientEvent] = []
        while !session.isPublishing {
            guard Date() < deadline else { throw HarnessError.timeout("no NetStream.Publish.Start; events \(events)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 1000) == 1 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw HarnessError.socket("ffmpeg closed the connection; events \(events)") }
            for event in try session.receive(Array(buffer[0..<n])) {
                if case .send(let bytes) = event { try sendAll(fd, bytes) } else { events.append(event) }
            }
        }
        XCTAssertEqual(events, [.publishing])

        var sentVideo = 0, sentAudio = 0
        for tag in flv.tags {
            switch tag.type {
            case 18:
                let values = try AMF0.decode(tag.body)
                if values.first?.stringValue == "onMetaData", let properties = values.dropFirst().first?.properties {
                    try sendAll(fd, session.sendMetadata(properties))
                }
            case 9:
                try sendAll(fd, session.sendVideo(timestamp: tag.timestamp + timestampOffset, payload: tag.body))
                sentVideo += 1
            case 8:
                try sendAll(fd, session.sendAudio(timestamp: tag.timestamp + timestampOffset, payload: tag.body))
                sentAudio += 1
            default:
                break
            }
            // Answer anything ffmpeg says meanwhile (acknowledgements, pings).
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) == 1 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    for case .send(let bytes) in try session.receive(Array(buffer[0..<n])) { try sendAll(fd, bytes) }
                }
            }
        }
        try sendAll(fd, session.unpublish())
        shutdown(fd, Int32(SHUT_WR))
        while server.isRunning, Date() < deadline { usleep(50_000) }
        close(fd)
        closed = true
        try? logHandle.close()
        let ffmpegLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        XCTAssertFalse(server.isRunning, "ffmpeg did not finish: \(ffmpegLog)")
        XCTAssertEqual(server.terminationStatus, 0, ffmpegLog)

        XCTAssertGreaterThanOrEqual(sentVideo, 89)
        XCTAssertGreaterThanOrEqual(sentAudio, 120)
        let want = try probe(ffprobe, input), got = try probe(ffprobe, output)
        XCTAssertEqual(got, want, "codec,packets of out.flv vs in.flv")
        print("RTMPClientFFmpegTests (offset \(timestampOffset)): sent \(sentVideo) video, \(sentAudio) audio tags; ffprobe out.flv \(got)")
        XCTAssertTrue(got.contains { $0.hasPrefix("h264,") } && got.contains { $0.hasPrefix("aac,") }, "\(got)")

        // -c copy keeps the tag bodies: ffmpeg received exactly what was sent, in order.
        let out = try FLVFile(Array(try Data(contentsOf: URL(fileURLWithPath: output))))
        let sentMedia = flv.tags.filter { $0.type == 8 || $0.type == 9 }
        let gotMedia = out.tags.filter { $0.type == 8 || $0.type == 9 }
        XCTAssertEqual(gotMedia.filter { $0.type == 9 }.map(\.body), sentMedia.filter { $0.type == 9 }.map(\.body))
        XCTAssertEqual(gotMedia.filter { $0.type == 8 }.map(\.body), sentMedia.filter { $0.type == 8 }.map(\.body))
        // -copyts keeps the timestamps ffmpeg read from RTMP, so they must be the ones sent.
        // The first tag of each kind is the sequence header, which ffmpeg's FLV muxer
        // rewrites from the codec configuration at timestamp 0.
        XCTAssertEqual(gotMedia.filter { $0.type == 9 }.dropFirst().map(\.timestamp),
                       sentMedia.filter { $0.type == 9 }.dropFirst().map { $0.timestamp + timestampOffset })
        XCTAssertEqual(gotMedia.filter { $0.type == 8 }.dropFirst().map(\.timestamp),
                       sentMedia.filter { $0.type == 8 }.dropFirst().map { $0.timestamp + timestampOffset })
    }
}
