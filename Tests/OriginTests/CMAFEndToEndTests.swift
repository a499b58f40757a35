// End-to-end tests: ffmpeg encodes lavfi test sources (H.264 with B-frames + AAC) to FLV, the
// same tags an RTMP ingest delivers; CMAFWriter packages them into an init segment and ~0.5 s
// fragments; ffprobe and ffmpeg, as a player would, must read and decode the result exactly.

import Foundation
import XCTest
@testable import Origin

/// Turns FLV media into CMAF the way the origin will: fragments cut every `fragmentDuration`
/// of decode time, each holding the video and audio samples of that window.
struct FLVToCMAF {
    struct Fragment {
        var sequenceNumber: UInt32
        var runs: [CMAFTrackRun]
        var bytes: [UInt8]
        var startsWithKeyframe: Bool { videoSamples.first?.isSync == true }
        var videoSamples: [CMAFSample] { runs.first { $0.trackID == 1 }?.samples ?? [] }
        var audioSamples: [CMAFSample] { runs.first { $0.trackID == 2 }?.samples ?? [] }
    }

    var video: CMAFTrack
    var audio: CMAFTrack
    var initSegment: [UInt8]
    var fragments: [Fragment]
    /// Expected video decode and presentation times in 90 kHz, decode order.
    var videoDTS: [Int64]
    var videoPTS: [Int64]

    init(_ media: FLVMedia, fragmentDuration: Double = 0.5) throws {
        let avc = try AVCDecoderConfiguration(record: try XCTUnwrap(media.avcRecord))
        let asc = try AudioSpecificConfig(bytes: try XCTUnwrap(media.aacConfig))
        video = .video(id: 1, avc)
        audio = .audio(id: 2, asc)
        initSegment = CMAFWriter.initSegment(tracks: [video, audio])

        // Video: FLV times are milliseconds; 90 kHz keeps them exact.
        videoDTS = media.video.map { Int64($0.dts) * 90 }
        videoPTS = media.video.map { Int64($0.dts + $0.cts) * 90 }
        var videoSamples: [(dts: Int64, sample: CMAFSample)] = []
        for (i, frame) in media.video.enumerated() {
            let duration = i + 1 < videoDTS.count ? videoDTS[i + 1] - videoDTS[i] : (videoSamples.last.map { Int64($0.sample.duration) } ?? 3000)
            videoSamples.append((videoDTS[i], CMAFSample(duration: UInt32(duration), compositionOffset: Int32(frame.cts * 90),
                                                        isSync: frame.isKey, data: frame.data)))
        }
        // Audio: the sample rate is the timescale, every frame lasts 1024 ticks.
        let rate = Int64(asc.sampleRate)
        let audioStart = Int64(media.audio.first?.dts ?? 0) * rate / 1000
        let audioSamples: [(dts: Int64, sample: CMAFSample)] = media.audio.enumerated().map { i, frame in
            (audioStart + Int64(i) * 1024, CMAFSample(duration: 1024, isSync: true, data: frame.data))
        }

        fragments = []
        var v = 0, a = 0, window = 1
        while v < videoSamples.count || a < audioSamples.count {
            let videoEnd = Int64(Double(window) * fragmentDuration * 90_000)
            let audioEnd = Int64(Double(window) * fragmentDuration * Double(rate))
            var runs: [CMAFTrackRun] = []
            let videoStart = v, audioStartIndex = a
            while v < videoSamples.count && videoSamples[v].dts < videoEnd { v += 1 }
            while a < audioSamples.count && audioSamples[a].dts < audioEnd { a += 1 }
            if v > videoStart {
                runs.append(CMAFTrackRun(trackID: 1, baseDecodeTime: UInt64(videoSamples[videoStart].dts),
                                         samples: videoSamples[videoStart..<v].map(\.sample)))
            }
            if a > audioStartIndex {
                runs.append(CMAFTrackRun(trackID: 2, baseDecodeTime: UInt64(audioSamples[audioStartIndex].dts),
                                         samples: audioSamples[audioStartIndex..<a].map(\.sample)))
            }
            if !runs.isEmpty {
                let sequence = UInt32(fragments.count + 1)
                fragments.append(Fragment(sequenceNumber: sequence, runs: runs,
                                          bytes: CMAFWriter.fragment(sequenceNumber: sequence, runs: runs)))
            }
            window += 1
        }
    }
}

final class CMAFEndToEndTests: XCTestCase {
    struct Scenario {
        var name: String
        var width: Int, height: Int, fps: Int, seconds: Int, gop: Int, bFrames: Int
        var sampleRate: Int, channels: Int
        var flv: [UInt8]
        var inputDuration: Double   // seconds from the first to the end of the last video frame in the FLV
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: Scenario] = [:]

    /// 640x360 at 30 fps, 1 s GOP, 2 B-frames, 48 kHz mono.
    func basic() throws -> Scenario {
        try scenario(name: "basic", width: 640, height: 360, fps: 30, seconds: 4, gop: 30, bFrames: 2, sampleRate: 48000, channels: 1)
    }

    /// 854x480 (cropped) at 25 fps, 2 s GOP, 3 B-frames, 44.1 kHz stereo.
    func other() throws -> Scenario {
        try scenario(name: "other", width: 854, height: 480, fps: 25, seconds: 3, gop: 50, bFrames: 3, sampleRate: 44100, channels: 2)
    }

    func scenario(name: String, width: Int, height: Int, fps: Int, seconds: Int, gop: Int, bFrames: Int,
                  sampleRate: Int, channels: Int) throws -> Scenario {
        Self.lock.lock(); defer { Self.lock.unlock() }
        if let cached = Self.cache[name] { return cached }
        let flv = try Tools.encodeFLV([
            "-f", "lavfi", "-i", "testsrc2=size=\(width)x\(height):rate=\(fps)",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=\(sampleRate)",
            "-t", "\(seconds)", "-c:v", "libx264", "-preset", "veryfast", "-g", "\(gop)", "-bf", "\(bFrames)",
            "-c:a", "aac", "-ac", "\(channels)"])
        // The input's video span: first to last presentation time plus one frame, from the FLV tags.
        let media = try FLVMedia(flv: flv)
        let pts = media.video.map { $0.dts + $0.cts }
        let lastDuration = media.video.count > 1 ? media.video[media.video.count - 1].dts - media.video[media.video.count - 2].dts : 0
        let duration = Double((pts.max() ?? 0) - (pts.min() ?? 0) + lastDuration) / 1000
        let s = Scenario(name: name, width: width, height: height, fps: fps, seconds: seconds, gop: gop, bFrames: bFrames,
                         sampleRate: sampleRate, channels: channels, flv: flv, inputDuration: duration)
        Self.cache[name] = s
        return s
    }

    func write(_ parts: [[UInt8]]) throws -> URL { try TempFiles.write(parts.flatMap { $0 }) }

    func frames(_ probe: [String: Any], _ type: String) -> [[String: Any]] {
        (probe["frames"] as? [[String: Any]] ?? []).filter { $0["media_type"] as? String == type }
    }

    func packets(_ probe: [String: Any], _ type: String) -> [[String: Any]] {
        (probe["packets"] as? [[String: Any]] ?? []).filter { $0["codec_type"] as? String == type }
    }

    func assertDecodesCleanly(_ file: URL, line: UInt = #line) throws {
        let result = try Tools.run("ffmpeg", ["-hide_banner", "-v", "error", "-i", file.path, "-f", "null", "-"], check: false)
        XCTAssertEqual(result.status, 0, line: line)
        XCTAssertEqual(result.stderr, "", "ffmpeg reported decode errors", line: line)
    }

    // MARK: - Whole stream

    func checkWholeStream(_ s: Scenario) throws {
        let media = try FLVMedia(flv: s.flv)
        let cmaf = try FLVToCMAF(media)
        XCTAssertEqual(cmaf.video.format, .avc(try AVCDecoderConfiguration(record: media.avcRecord!)))
        XCTAssertEqual(media.video.count, s.fps * s.seconds, "ffmpeg wrote every frame")
        XCTAssertGreaterThanOrEqual(cmaf.fragments.count, s.seconds * 2)
        // Audio starts a little later than video in ffmpeg's FLV, so only the very last window may lack video.
        XCTAssertTrue(cmaf.fragments.dropLast().allSatisfy { $0.runs.count == 2 }, "every fragment holds both tracks")

        let file = try write([cmaf.initSegment] + cmaf.fragments.map(\.bytes))
        defer { try? FileManager.default.removeItem(at: file) }
        if let keep = ProcessInfo.processInfo.environment["CMAF_KEEP_DIR"] {   // for looking at the output by hand
            try? FileManager.default.copyItem(atPath: file.path, toPath: "\(keep)/\(s.name).mp4")
        }
        let probe = try Tools.probe(file.path, ["-show_streams", "-show_frames"])
        let packetProbe = try Tools.probe(file.path, ["-show_packets"])

        let streams = probe["streams"] as? [[String: Any]] ?? []
        let videoStream = try XCTUnwrap(streams.first { $0["codec_type"] as? String == "video" })
        let audioStream = try XCTUnwrap(streams.first { $0["codec_type"] as? String == "audio" })
        XCTAssertEqual(videoStream["codec_name"] as? String, "h264")
        XCTAssertEqual(videoStream["width"] as? Int, s.width)
        XCTAssertEqual(videoStream["height"] as? Int, s.height)
        XCTAssertEqual(videoStream["time_base"] as? String, "1/90000")
        XCTAssertEqual(audioStream["codec_name"] as? String, "aac")
        XCTAssertEqual(audioStream["sample_rate"] as? String, String(s.sampleRate))
        XCTAssertEqual(audioStream["channels"] as? Int, s.channels)

        // Every frame decodes.
        let videoFrames = frames(probe, "video"), audioFrames = frames(probe, "audio")
        XCTAssertEqual(videoFrames.count, media.video.count, "decoded video frames")
        XCTAssertEqual(audioFrames.count, media.audio.count, "decoded audio frames")

        // Duration within one frame of the input.
        let duration = try XCTUnwrap(Double(videoStream["duration"] as? String ?? ""), "video duration")
        XCTAssertEqual(duration, s.inputDuration, accuracy: 1.0 / Double(s.fps) + 1e-6)
        XCTAssertEqual(duration, Double(s.seconds), accuracy: 1.0 / Double(s.fps) + 1e-6)

        // Packets keep decode order and the B-frame composition offsets.
        let videoPackets = packets(packetProbe, "video")
        XCTAssertEqual(videoPackets.compactMap { ($0["dts"] as? Int).map(Int64.init) }, cmaf.videoDTS)
        XCTAssertEqual(videoPackets.compactMap { ($0["pts"] as? Int).map(Int64.init) }, cmaf.videoPTS)
        let reordered = zip(cmaf.videoPTS, cmaf.videoPTS.dropFirst()).filter { $0 > $1 }.count
        XCTAssertGreaterThan(reordered, media.video.count / 4, "the input really has B-frames")
        XCTAssertEqual(videoPackets.filter { ($0["flags"] as? String)?.hasPrefix("K") == true }.count,
                       media.video.filter(\.isKey).count, "keyframes where the input had them")

        // Frames come out in presentation order with exactly the input's timestamps.
        let framePTS = videoFrames.compactMap { ($0["pts"] as? Int).map(Int64.init) }
        XCTAssertEqual(framePTS, cmaf.videoPTS.sorted())
        let audioPTS = audioFrames.compactMap { $0["pts"] as? Int }
        XCTAssertEqual(audioPTS, Array(0..<media.audio.count).map { $0 * 1024 + (audioPTS.first ?? -1) })

        try assertDecodesCleanly(file)
    }

    func testWholeStreamBasic() throws { try checkWholeStream(try basic()) }

    func testWholeStreamOtherSizeRateAndAudio() throws { try checkWholeStream(try other()) }

    // MARK: - Joining mid-stream

    func testInitSegmentAloneDescribesTheStreams() throws {
        let cmaf = try FLVToCMAF(try FLVMedia(flv: try basic().flv))
        let file = try write([cmaf.initSegment])
        defer { try? FileManager.default.removeItem(at: file) }
        let streams = try Tools.probe(file.path, ["-show_streams"])["streams"] as? [[String: Any]] ?? []
        XCTAssertEqual(streams.compactMap { $0["codec_name"] as? String }, ["h264", "aac"])
        XCTAssertEqual(streams.first?["width"] as? Int, 640)
        XCTAssertEqual(streams.first?["height"] as? Int, 360)
        XCTAssertTrue(cmaf.video.format.codecString.hasPrefix("avc1.64"), "x264 defaults to High profile")
        XCTAssertEqual(cmaf.audio.format.codecString, "mp4a.40.2")
        XCTAssertEqual(cmaf.audio.timescale, 48_000)
    }

    /// A player that joins mid-stream fetches the init segment and then one part (or segment)
    /// starting at a keyframe; it must decode on its own, on the stream's timeline.
    func checkJoinMidStream(_ s: Scenario) throws {
        let cmaf = try FLVToCMAF(try FLVMedia(flv: s.flv))
        let joinIndex = try XCTUnwrap(cmaf.fragments.indices.first { $0 > 0 && cmaf.fragments[$0].startsWithKeyframe },
                                      "a later fragment starts at a keyframe")
        let nextKey = cmaf.fragments.indices.first { $0 > joinIndex && cmaf.fragments[$0].startsWithKeyframe } ?? cmaf.fragments.count
        let part = [cmaf.fragments[joinIndex]]
        let segment = Array(cmaf.fragments[joinIndex..<nextKey])
        XCTAssertGreaterThan(segment.count, 1, "a segment is several parts")

        for group in [part, segment] {
            let file = try write([cmaf.initSegment] + group.map(\.bytes))
            defer { try? FileManager.default.removeItem(at: file) }
            let probe = try Tools.probe(file.path, ["-show_frames"])
            let samples = group.flatMap(\.videoSamples)
            let videoFrames = frames(probe, "video")
            XCTAssertEqual(videoFrames.count, samples.count, "every frame of the \(group.count)-part join decodes")
            XCTAssertEqual(frames(probe, "audio").count, group.flatMap(\.audioSamples).count)
            let base = Int64(group[0].runs[0].baseDecodeTime)
            var dts = base
            var expectedPTS: [Int64] = []
            for sample in samples {
                expectedPTS.append(dts + Int64(sample.compositionOffset))
                dts += Int64(sample.duration)
            }
            XCTAssertEqual(videoFrames.compactMap { ($0["pts"] as? Int).map(Int64.init) }, expectedPTS.sorted(),
                           "timestamps continue the stream's timeline from tfdt")
            XCTAssertEqual(videoFrames.first?["key_frame"] as? Int, 1)
            try assertDecodesCleanly(file)
        }
    }

    func testJoinMidStreamBasic() throws { try checkJoinMidStream(try basic()) }

    func testJoinMidStreamOther() throws { try checkJoinMidStream(try other()) }

    /// Every fragment stands alone, as ISO/IEC 14496-12 and CMAF require for a part a player
    /// may fetch on its own: its own sequence number; per track a `tfhd` with
    /// default-base-is-moof and no base data offset (so no offset depends on bytes before the
    /// fragment); an absolute `tfdt`; a `trun` whose data offset and sample sizes fall inside
    /// this fragment's own `mdat` and cover exactly the samples. Then ffmpeg reads each
    /// fragment alone after the init segment: all its audio frames, and all its video frames
    /// when it starts at a keyframe, on the stream's timeline.
    func testFragmentsAreIndependentOfEachOther() throws {
        let cmaf = try FLVToCMAF(try FLVMedia(flv: try basic().flv))
        XCTAssertGreaterThan(cmaf.fragments.count, 4)
        for (n, fragment) in cmaf.fragments.enumerated() {
            let bytes = fragment.bytes
            let boxes = BoxParser.boxes(bytes)
            XCTAssertEqual(boxes.map(\.type), ["moof", "mdat"], "fragment \(n)")
            guard boxes.count == 2 else { continue }
            let moof = boxes[0], mdat = boxes[1]
            XCTAssertEqual(moof.start, 0)
            XCTAssertEqual(mdat.end, bytes.count)
            let mfhd = try XCTUnwrap(BoxParser.find(bytes, ["moof", "mfhd"]).first)
            XCTAssertEqual(BoxParser.be32(bytes, mfhd.bodyStart + 4), UInt32(n + 1), "sequence numbers start at 1 and grow by one")
            let trafs = BoxParser.find(bytes, ["moof", "traf"])
            XCTAssertEqual(trafs.count, fragment.runs.count)
            var covered: [Range<Int>] = []
            for (traf, run) in zip(trafs, fragment.runs) {
                let range = traf.bodyStart..<traf.end
                XCTAssertEqual(BoxParser.boxes(bytes, in: range).map(\.type), ["tfhd", "tfdt", "trun"])
                let tfhd = try XCTUnwrap(BoxParser.find(bytes, ["tfhd"], in: range).first)
                let tfhdFlags = BoxParser.be32(bytes, tfhd.bodyStart) & 0x00FF_FFFF
                XCTAssertEqual(tfhdFlags & 0x02_0000, 0x02_0000, "default-base-is-moof")
                XCTAssertEqual(tfhdFlags & 0x00_0001, 0, "no base-data-offset")
                XCTAssertEqual(BoxParser.be32(bytes, tfhd.bodyStart + 4), run.trackID)
                let tfdt = try XCTUnwrap(BoxParser.find(bytes, ["tfdt"], in: range).first)
                XCTAssertEqual(bytes[tfdt.bodyStart], 1, "64-bit decode time")
                XCTAssertEqual(BoxParser.be64(bytes, tfdt.bodyStart + 4), run.baseDecodeTime, "absolute decode time")
                let trun = try XCTUnwrap(BoxParser.find(bytes, ["trun"], in: range).first)
                let trunFlags = BoxParser.be32(bytes, trun.bodyStart) & 0x00FF_FFFF
                XCTAssertEqual(trunFlags & 0x00_0201, 0x00_0201, "data offset and sample sizes present")
                let count = Int(BoxParser.be32(bytes, trun.bodyStart + 4))
                XCTAssertEqual(count, run.samples.count)
                let offset = Int(Int32(bitPattern: BoxParser.be32(bytes, trun.bodyStart + 8)))
                // Per sample: duration, size, flags, composition offset (flags 0xF00).
                XCTAssertEqual(trunFlags & 0x00_0F00, 0x00_0F00)
                var sizes: [Int] = []
                for i in 0..<count { sizes.append(Int(BoxParser.be32(bytes, trun.bodyStart + 12 + i * 16 + 4))) }
                let dataRange = (moof.start + offset)..<(moof.start + offset + sizes.reduce(0, +))
                XCTAssertTrue(dataRange.lowerBound >= mdat.bodyStart && dataRange.upperBound <= mdat.end,
                              "fragment \(n) track \(run.trackID): data \(dataRange) outside its own mdat \(mdat.bodyStart..<mdat.end)")
                guard dataRange.lowerBound >= mdat.bodyStart, dataRange.upperBound <= mdat.end else { continue }
                XCTAssertEqual(Array(bytes[dataRange]), run.samples.flatMap(\.data), "the samples, in order")
                covered.append(dataRange)
            }
            XCTAssertEqual(covered.map(\.count).reduce(0, +), mdat.end - mdat.bodyStart, "mdat holds exactly the samples")

            // Decoded alone, after the init segment only.
            let file = try write([cmaf.initSegment, bytes])
            defer { try? FileManager.default.removeItem(at: file) }
            let probe = try Tools.probe(file.path, ["-show_frames"])
            XCTAssertEqual(frames(probe, "audio").count, fragment.audioSamples.count, "fragment \(n) alone: audio")
            if fragment.startsWithKeyframe {
                let video = frames(probe, "video")
                XCTAssertEqual(video.count, fragment.videoSamples.count, "fragment \(n) alone: video")
                let base = Int64(try XCTUnwrap(fragment.runs.first { $0.trackID == 1 }).baseDecodeTime)
                let minPTS = video.compactMap { ($0["pts"] as? Int).map(Int64.init) }.min()
                XCTAssertEqual(minPTS, base + Int64(fragment.videoSamples[0].compositionOffset), "on the stream's timeline")
            }
        }
        XCTAssertGreaterThan(cmaf.fragments.filter(\.startsWithKeyframe).count, 2)
    }

    // MARK: - As HLS

    /// Segments (fragments from one keyframe to the next) served through an fMP4 HLS playlist
    /// with EXT-X-MAP, read by ffmpeg's HLS demuxer as a player would.
    func testSegmentsPlayThroughAnHLSPlaylist() throws {
        let s = try other()
        let media = try FLVMedia(flv: s.flv)
        let cmaf = try FLVToCMAF(media)
        var segments: [[FLVToCMAF.Fragment]] = []
        for fragment in cmaf.fragments {
            if fragment.startsWithKeyframe || segments.isEmpty { segments.append([fragment]) } else { segments[segments.count - 1].append(fragment) }
        }
        XCTAssertEqual(segments.count, s.seconds * s.fps / s.gop + (s.seconds * s.fps % s.gop == 0 ? 0 : 1))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmaf-hls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(cmaf.initSegment).write(to: dir.appendingPathComponent("init.mp4"))
        var playlist = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:\(s.gop / s.fps + 1)\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        playlist += "#EXT-X-MAP:URI=\"init.mp4\"\n"
        for (i, segment) in segments.enumerated() {
            try Data(segment.flatMap(\.bytes)).write(to: dir.appendingPathComponent("seg\(i).m4s"))
            let ticks = segment.flatMap(\.videoSamples).reduce(0) { $0 + Int($1.duration) }
            playlist += "#EXTINF:\(String(format: "%.3f", Double(ticks) / 90_000)),\nseg\(i).m4s\n"
        }
        playlist += "#EXT-X-ENDLIST\n"
        let playlistURL = dir.appendingPathComponent("index.m3u8")
        try playlist.write(to: playlistURL, atomically: true, encoding: .utf8)

        let probe = try Tools.probe(playlistURL.path, ["-show_frames", "-show_entries", "frame=media_type,key_frame"])
        XCTAssertEqual(frames(probe, "video").count, media.video.count)
        XCTAssertEqual(frames(probe, "audio").count, media.audio.count)
        XCTAssertEqual(frames(probe, "video").filter { $0["key_frame"] as? Int == 1 }.count, segments.count)
        try assertDecodesCleanly(playlistURL)
    }
}
