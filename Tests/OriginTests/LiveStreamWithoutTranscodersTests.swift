import Foundation
import MediaTestSupport
import XCTest
@testable import Origin

/// Origin runs without FFmpeg: a stream given no transcoders packages what it receives, says
/// its ladder failed, and refuses audio it cannot carry.
final class LiveStreamWithoutTranscodersTests: XCTestCase {
    final class Events: @unchecked Sendable {
        let lock = NSLock()
        var list: [LiveStreamEvent] = []
        func add(_ e: LiveStreamEvent) { lock.lock(); list.append(e); lock.unlock() }
        var all: [LiveStreamEvent] { lock.lock(); defer { lock.unlock() }; return list }
    }

    func testALadderWithoutTranscodersFailsAndTheSourceGoesOn() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "cut-4s", seconds: 4)).tags
        let events = Events()
        let ladder = TranscodeSettings(rungs: [LadderRung(name: "180p", height: 180, videoBitrate: 250_000, maxBitrate: 275_000)])
        let live = LiveStream(id: "no-transcoders", ladder: ladder) { events.add($0) }
        live.beginPublishing()
        for tag in tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
        live.endPublishing()
        XCTAssertEqual(events.all, [.transcodeFailed(reason: "this node has no transcoder")])
        XCTAssertEqual(live.renditions.map(\.name), [LiveStream.sourceRendition])
        XCTAssertTrue(live.mediaPlaylist()!.hasSuffix("#EXT-X-ENDLIST\n"))
    }

    func testAudioThatIsNotAACIsRefused() throws {
        let live = LiveStream(id: "mp3")
        live.beginPublishing()
        let mp3 = try FLVAudioTag.parse([0x2A, 0xFF, 0xFB])
        XCTAssertThrowsError(try live.ingest(audio: mp3, timestamp: 0, byteCount: 3)) { error in
            XCTAssertEqual(error as? PackagingError, .unsupportedAudioCodec(2))
        }
    }
}
