import Foundation
import MediaTestSupport
import XCTest
@testable import Origin

/// A hand-over between a stream's host and co-hosts: a new publisher takes over while the stream
/// is live, and its playlists go on — a discontinuity, sequence numbers growing, never an end.
final class LiveStreamHandOverTests: XCTestCase {
    func feed(_ live: LiveStream, _ tags: [FLVFile.Tag], offset: UInt32 = 0) throws {
        for tag in tags {
            switch tag.type {
            case 9: try live.ingest(video: try FLVVideoTag.parse(tag.body), timestamp: tag.timestamp + offset, byteCount: tag.body.count)
            case 8: try live.ingest(audio: try FLVAudioTag.parse(tag.body), timestamp: tag.timestamp + offset, byteCount: tag.body.count)
            default: break
            }
        }
    }

    /// The number of the last complete segment a playlist lists (`seg{n}-...`).
    func lastSegment(_ playlist: String) -> Int? {
        playlist.split(separator: "\n").compactMap { line -> Int? in
            guard line.hasPrefix("seg"), let dash = line.firstIndex(of: "-") else { return nil }
            return Int(line[line.index(line.startIndex, offsetBy: 3)..<dash])
        }.max()
    }

    func testTheNextPublisherContinuesTheSamePlaylistsWithADiscontinuity() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "handover-4s", seconds: 4, gop: 30)).tags
        let live = LiveStream(id: "handover")
        let first = live.beginPublishing()
        try feed(live, tags)
        let before = try XCTUnwrap(live.mediaPlaylist())
        XCTAssertFalse(before.contains("#EXT-X-DISCONTINUITY\n"))
        let lastBefore = try XCTUnwrap(lastSegment(before))

        // The co-host's broadcast takes over: same stream, a new session, at once.
        let second = live.handOverPublishing()
        XCTAssertEqual(second, first + 1)
        let during = try XCTUnwrap(live.mediaPlaylist())
        XCTAssertFalse(during.contains("#EXT-X-ENDLIST"), "the playlist never ends in a hand-over:\n\(during)")
        XCTAssertTrue(live.status.publishing)
        // The displaced publisher going away later ends nothing.
        live.endPublishing(session: first)
        XCTAssertTrue(live.status.publishing, "a displaced publisher's end is not the stream's")

        try feed(live, tags, offset: 10_000)
        let after = try XCTUnwrap(live.mediaPlaylist())
        XCTAssertTrue(after.contains("#EXT-X-DISCONTINUITY"), after)
        XCTAssertFalse(after.contains("#EXT-X-ENDLIST"), after)
        XCTAssertGreaterThan(try XCTUnwrap(lastSegment(after)), lastBefore, "sequence numbers go on growing")
        live.endPublishing(session: second)
        XCTAssertFalse(live.status.publishing)
        XCTAssertTrue(try XCTUnwrap(live.mediaPlaylist()).contains("#EXT-X-ENDLIST"), "the last publisher's end ends it")
    }
}
