import Foundation
import MediaTestSupport
import XCTest
@testable import Origin
import Transcode

/// Audio that is not AAC (the README's list: MP3, PCM, G.711, Speex, Nellymoser) is
/// transcoded to AAC inside the live stream: the source rendition carries H.264 and AAC,
/// and both decode cleanly with ffmpeg.
final class NonAACAudioTests: XCTestCase {
    static let codecs: [(name: String, args: [String])] = [
        ("mp3", ["-c:a", "libmp3lame", "-ar", "44100"]),
        ("pcm", ["-c:a", "pcm_s16le", "-ar", "44100"]),
        ("alaw", ["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"]),
        ("mulaw", ["-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"]),
        ("speex", ["-c:a", "libspeex", "-ar", "16000", "-ac", "1"]),
        ("nellymoser", ["-c:a", "nellymoser", "-ar", "44100", "-ac", "1"]),
    ]

    func testEveryFLVAudioCodecComesOutAsAAC() throws {
        for codec in Self.codecs {
            let tags = try FLVFile(try MediaFixtures.flv(name: "audio-\(codec.name)", seconds: 3, audioCodec: codec.args)).tags
            let live = LiveStream(id: "audio-\(codec.name)", transcoders: .ffmpeg)
            live.beginPublishing()
            for tag in tags {
                if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
                if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            }
            live.endPublishing()
            // The playlist as a player reads it: segments grouped under their init segment.
            let playlist = try XCTUnwrap(live.mediaPlaylist(), codec.name)
            var groups: [(map: Int, segments: [Int])] = []
            for line in playlist.split(separator: "\n") {
                if line.hasPrefix("#EXT-X-MAP:URI=\"init"), let v = Int(line.dropFirst(20).prefix { $0.isNumber }) {
                    groups.append((v, []))
                } else if line.hasPrefix("seg"), let n = Int(line.dropFirst(3).prefix { $0.isNumber }), !groups.isEmpty {
                    groups[groups.count - 1].segments.append(n)
                }
            }
            XCTAssertFalse(groups.isEmpty, playlist)
            // Audio that starts a few frames after the first keyframe (PCM and G.711 from
            // ffmpeg) is waited for: one init segment with both tracks from the start.
            XCTAssertEqual(groups.count, 1, "\(codec.name): \(playlist)")
            for (g, group) in groups.enumerated() {
                var file = try XCTUnwrap(live.initSegment(version: group.map), codec.name)
                for n in group.segments { file += try XCTUnwrap(live.segment(sequence: n), "\(codec.name) seg\(n)") }
                let path = MediaFixtures.folder.appendingPathComponent("audio-\(codec.name)-\(g).mp4")
                try Data(file).write(to: path)
                let streams = try MediaFixtures.run("/usr/bin/ffprobe", ["-v", "error", "-show_entries", "stream=codec_name",
                                                                         "-of", "csv=p=0", path.path])
                let expected = g == groups.count - 1 ? ["h264", "aac"] : ["h264"]
                XCTAssertEqual(streams.split(separator: "\n").map(String.init), expected, "\(codec.name) init\(group.map)")
                let errors = try MediaFixtures.run("/usr/bin/ffmpeg", ["-v", "error", "-i", path.path, "-f", "null", "-"])
                XCTAssertEqual(errors.trimmingCharacters(in: .whitespacesAndNewlines), "", "\(codec.name) init\(group.map)")
            }
        }
    }
}
