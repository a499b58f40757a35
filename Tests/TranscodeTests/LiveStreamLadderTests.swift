import Foundation
import MediaTestSupport
import XCTest
@testable import Origin
import Transcode

/// The ladder inside a live stream: rungs appear in the master list, and a rung that cannot
/// keep up is shed — reported, dropped from the master list, its playlist ended — while the
/// source and the other rungs go on.
final class LiveStreamLadderTests: XCTestCase {
    final class Events: @unchecked Sendable {
        let lock = NSLock()
        var list: [LiveStreamEvent] = []
        func add(_ e: LiveStreamEvent) { lock.lock(); list.append(e); lock.unlock() }
        var all: [LiveStreamEvent] { lock.lock(); defer { lock.unlock() }; return list }
    }

    func testSlowRungsAreShedHighestFirstAndTheRestGoesOn() async throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "ladder-640", seconds: 4, size: "640x360")).tags
        let ladder = TranscodeSettings(rungs: [
            LadderRung(name: "240p", height: 240, videoBitrate: 400_000, maxBitrate: 440_000),
            LadderRung(name: "180p", height: 180, videoBitrate: 250_000, maxBitrate: 275_000),
        ], preset: "ultrafast", maxQueuedFrames: 1000, shedSpeedThreshold: 1_000_000, speedWindowSeconds: 0.5)
        let events = Events()
        let live = LiveStream(id: "ladder", ladder: ladder, transcoders: .ffmpeg) { events.add($0) }
        live.beginPublishing()
        // The threshold no encoder meets makes every speed window slow, whatever the pace of
        // the input: the outcome depends on media time only, so the tags go in at once.
        for tag in tags {
            if tag.type == 9 { try live.ingest(video: FLVVideoTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
            if tag.type == 8 { try live.ingest(audio: FLVAudioTag.parse(tag.body), timestamp: tag.timestamp, byteCount: tag.body.count) }
        }
        live.endPublishing()
        // Waits for the transcoder to drain: the lowest rung's playlist ends once it has put
        // out everything (a minute bounds a hang).
        func lowestEnded() -> Bool { live.mediaPlaylist(rendition: "180p")?.hasSuffix("#EXT-X-ENDLIST\n") == true }
        for _ in 0..<60_000 where !lowestEnded() { try await Task.sleep(for: .milliseconds(1)) }
        XCTAssertTrue(lowestEnded(), "the ladder drained and ended")

        XCTAssertEqual(events.all.first, .transcodeStarted(rungs: ["240p", "180p"]))
        let shed = events.all.compactMap { e -> String? in if case .renditionShed(let r, _) = e { return r } else { return nil } }
        XCTAssertEqual(shed, ["240p"], "the top rung goes first; the lowest is never shed for speed")
        XCTAssertEqual(live.health.shedRenditions, ["240p"])
        XCTAssertEqual(live.renditions.map(\.name), ["source", "180p"])
        XCTAssertEqual(live.renditions.last?.height, 180)
        XCTAssertFalse(live.isLive(rendition: "240p"))
        // The shed rung's playlist stays, ended, for the viewers that were on it.
        let shedPlaylist = try XCTUnwrap(live.mediaPlaylist(rendition: "240p"), "the shed rung's playlist is still served")
        XCTAssertTrue(shedPlaylist.hasSuffix("#EXT-X-ENDLIST\n"), shedPlaylist)
        // The source and the lowest rung carry the whole stream, with the same segment boundaries.
        let src = try XCTUnwrap(live.mediaPlaylist(rendition: "source"))
        let low = try XCTUnwrap(live.mediaPlaylist(rendition: "180p"))
        func extinf(_ p: String) -> [String] { p.split(separator: "\n").filter { $0.hasPrefix("#EXTINF") }.map(String.init) }
        XCTAssertEqual(extinf(src), extinf(low))
        XCTAssertEqual(extinf(src).count, 2)
    }
}
