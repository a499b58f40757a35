import Foundation
import MediaTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Origin

/// Real ffmpeg as the client: a tiny blocking TCP listener in the test drives the session.
final class RTMPFFmpegTests: XCTestCase {
    struct Capture {
        var events: [RTMPServerEvent] = []
        var received: [UInt8] = []
        var ffmpegStatus: Int32 = -1
        var ffmpegLog = ""
    }

    enum HarnessError: Error { case socket(String), timeout(String) }

    /// ffmpeg is a test dependency (ops/install-deps --test): without it the test fails.
    private func ffmpegPath() throws -> String {
        try Tools.path(of: "ffmpeg")
    }

    /// Runs ffmpeg publishing to rtmp://127.0.0.1:PORT/live/testkey with `encodeArgs`,
    /// feeding every received byte to a session and writing back what it returns.
    private func publishWithFFmpeg(_ encodeArgs: [String], timeout: TimeInterval = 60) throws -> Capture {
        let ffmpeg = try ffmpegPath()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw HarnessError.socket("socket") }
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound, listen(listener, 1) == 0 else { throw HarnessError.socket("bind/listen") }
        let port = UInt16(bigEndian: addr.sin_port)

        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("rtmp-ffmpeg-\(port).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? FileManager.default.removeItem(at: logURL) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = ["-nostdin", "-hide_banner", "-loglevel", "warning"] + encodeArgs
            + ["-f", "flv", "rtmp://127.0.0.1:\(port)/live/testkey"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let deadline = Date().addingTimeInterval(timeout)
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 30_000) == 1 else { throw HarnessError.timeout("ffmpeg did not connect") }
        let conn = accept(listener, nil, nil)
        guard conn >= 0 else { throw HarnessError.socket("accept") }
        defer { close(conn) }

        func sendAll(_ bytes: [UInt8]) throws {
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw HarnessError.socket("send: errno \(errno)") }
                offset += n
            }
        }

        var capture = Capture()
        var session = RTMPServerSession(randomBytes: { n in (0..<n).map { _ in UInt8.random(in: 0...255) } })
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            guard Date() < deadline else { throw HarnessError.timeout("session did not end") }
            var rfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            let ready = poll(&rfd, 1, 1000)
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(conn, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }  // ffmpeg closed the connection
            let bytes = Array(buffer[0..<n])
            capture.received += bytes
            let events = try session.receive(bytes)
            capture.events += events
            for event in events {
                switch event {
                case .send(let out): try sendAll(out)
                case .publishRequested: try sendAll(session.acceptPublish())
                default: break
                }
            }
        }
        XCTAssertEqual(session.bytesReceived, UInt64(capture.received.count))
        XCTAssertLessThan(session.bufferedByteCount, 4096 + 18, "nothing left over but part of a chunk")
        while process.isRunning, Date() < deadline { usleep(20_000) }
        capture.ffmpegStatus = process.isRunning ? -1 : process.terminationStatus
        try? log.close()
        capture.ffmpegLog = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        return capture
    }

    func testFFmpegPublishesH264AndAAC() throws {
        let capture = try publishWithFFmpeg([
            "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "3",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-threads", "1", "-c:a", "aac",
        ])
        XCTAssertEqual(capture.ffmpegStatus, 0, capture.ffmpegLog)
        let events = nonSend(capture.events)
        guard case .connected(let app, let tcURL) = events.first else { return XCTFail("first event \(String(describing: events.first))") }
        XCTAssertEqual(app, "live")
        XCTAssertTrue(tcURL?.hasPrefix("rtmp://127.0.0.1:") == true, "\(String(describing: tcURL))")
        XCTAssertEqual(events.dropFirst().first, .publishRequested(app: "live", streamKey: "testkey"))
        XCTAssertEqual(events.last, .unpublished)
        XCTAssertEqual(events.filter { $0 == .unpublished }.count, 1)

        var metadata: [String: AMF0Value]?
        var videoSequenceHeaders: [[UInt8]] = [], audioSequenceHeaders: [[UInt8]] = []
        var videoFrames = 0, keyframes = 0, audioFrames = 0
        var lastVideo: UInt32 = 0, lastAudio: UInt32 = 0
        for event in events {
            switch event {
            case .metadata(let m):
                metadata = m
            case .video(let ts, let payload):
                XCTAssertGreaterThanOrEqual(ts, lastVideo, "video timestamps do not decrease")
                lastVideo = ts
                let tag = try FLVVideoTag.parse(payload)
                XCTAssertEqual(tag.codecID, 7)
                switch tag.packet {
                case .avcSequenceHeader(let record):
                    videoSequenceHeaders.append(record)
                case .avcNALUs(let nalus, let cts):
                    videoFrames += 1
                    if tag.isKeyframe { keyframes += 1 }
                    XCTAssertGreaterThanOrEqual(cts, 0)
                    XCTAssertTrue(Self.naluLengthsAreConsistent(nalus), "NAL unit lengths cover the payload")
                default:
                    break
                }
            case .audio(let ts, let payload):
                XCTAssertGreaterThanOrEqual(ts, lastAudio, "audio timestamps do not decrease")
                lastAudio = ts
                let tag = try FLVAudioTag.parse(payload)
                XCTAssertEqual(tag.soundFormat, 10)
                switch tag.packet {
                case .aacSequenceHeader(let config): audioSequenceHeaders.append(config)
                case .aacRaw: audioFrames += 1
                case .other: XCTFail("AAC expected")
                }
            default:
                break
            }
        }
        XCTAssertEqual(metadata?["width"], .number(320))
        XCTAssertEqual(metadata?["height"], .number(240))
        XCTAssertEqual(metadata?["videocodecid"], .number(7))
        XCTAssertEqual(metadata?["audiocodecid"], .number(10))
        XCTAssertEqual(videoSequenceHeaders.count, 1)
        XCTAssertEqual(videoSequenceHeaders.first?.first, 1, "AVCDecoderConfigurationRecord version 1")
        XCTAssertEqual(audioSequenceHeaders.count, 1)
        XCTAssertEqual(audioSequenceHeaders.first.map { $0[0] >> 3 }, 2, "AudioSpecificConfig object type 2 (AAC-LC)")
        XCTAssertTrue((85...95).contains(videoFrames), "\(videoFrames) video frames")
        XCTAssertGreaterThanOrEqual(keyframes, 3)
        XCTAssertTrue((120...135).contains(audioFrames), "\(audioFrames) audio frames (3 s of 1024-sample frames)")
        XCTAssertTrue((2800...3100).contains(lastVideo), "last video timestamp \(lastVideo)")

        // Replaying the real capture byte by byte gives the same events.
        var replay = RTMPServerSession(randomBytes: countingRandom)
        var replayed: [RTMPServerEvent] = []
        for byte in capture.received {
            let new = try replay.receive([byte])
            if new.contains(.publishRequested(app: "live", streamKey: "testkey")) { _ = replay.acceptPublish() }
            replayed += new
        }
        XCTAssertEqual(nonSend(replayed), events)
    }

    func testFFmpegSorensonVideoIsReportedAsOther() throws {
        let capture = try publishWithFFmpeg([
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "1", "-c:v", "flv", "-an",
        ])
        XCTAssertEqual(capture.ffmpegStatus, 0, capture.ffmpegLog)
        var frames = 0
        for case .video(_, let payload) in capture.events {
            let tag = try FLVVideoTag.parse(payload)
            XCTAssertEqual(tag.codecID, 2)
            guard case .other(let data) = tag.packet else { return XCTFail("expected .other, got \(tag.packet)") }
            XCTAssertFalse(data.isEmpty)
            frames += 1
        }
        XCTAssertEqual(frames, 15)
        XCTAssertEqual(nonSend(capture.events).last, .unpublished)
    }

    func testFFmpegFLVFileTagsParse() throws {
        let ffmpeg = try ffmpegPath()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rtmp-test-\(getpid()).flv")
        defer { try? FileManager.default.removeItem(at: url) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                             "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
                             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1",
                             "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-threads", "1", "-c:a", "aac", url.path]
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let file = try FLVFile(Array(try Data(contentsOf: url)))
        XCTAssertTrue(file.hasAudio && file.hasVideo)
        let video = try file.tags.filter { $0.type == 9 }.map { try FLVVideoTag.parse($0.body) }
        let audio = try file.tags.filter { $0.type == 8 }.map { try FLVAudioTag.parse($0.body) }
        guard case .avcSequenceHeader = video.first?.packet else { return XCTFail("first video tag is the AVC sequence header") }
        guard case .aacSequenceHeader = audio.first?.packet else { return XCTFail("first audio tag is the AAC sequence header") }
        let frames = video.compactMap { tag -> Int32? in
            if case .avcNALUs(_, let cts) = tag.packet { return cts } else { return nil }
        }
        XCTAssertEqual(frames.count, 25)
        XCTAssertTrue(frames.contains { $0 > 0 }, "B-frames give positive composition times")
        XCTAssertEqual(audio.first?.sampleRate, 44100, "FLV always signals 44 kHz for AAC; the real rate is in the config")
    }

    /// FLV AVC NALUs are 4-byte length-prefixed; the lengths must tile the payload exactly.
    static func naluLengthsAreConsistent(_ data: [UInt8]) -> Bool {
        var i = 0
        while i < data.count {
            guard data.count - i >= 4 else { return false }
            let n = Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3])
            i += 4 + n
        }
        return i == data.count && !data.isEmpty
    }
}
