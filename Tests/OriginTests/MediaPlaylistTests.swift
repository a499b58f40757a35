import Foundation
import XCTest
@testable import Origin

final class MediaPlaylistTests: XCTestCase {
    static let epoch = StreamEpoch(0x1f2a_3b4c)

    func segment(_ seq: Int, parts: Int, complete: Bool = true, discontinuity: Bool = false, map: Int = 0) -> PlaylistSegment {
        let ps = (0..<parts).map { PlaylistPart(index: $0, duration: 0.5, independent: $0 == 0) }
        return PlaylistSegment(sequence: seq, parts: ps, duration: Double(parts) * 0.5, complete: complete,
                               discontinuity: discontinuity, initVersion: map, programDateTime: nil)
    }

    func testLiveHeaderPartsAndPreloadHint() {
        let p = MediaPlaylist(partTarget: 0.5, targetDuration: 2,
                              segments: [segment(5, parts: 4), segment(6, parts: 4), segment(7, parts: 2, complete: false)],
                              ended: false, discontinuitySequence: 0, epoch: Self.epoch)
        let text = p.render()
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0], "#EXTM3U")
        XCTAssertTrue(lines.contains("#EXT-X-TARGETDURATION:2"))
        XCTAssertTrue(lines.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.50000,CAN-SKIP-UNTIL=12.00000"))
        XCTAssertTrue(lines.contains("#EXT-X-PART-INF:PART-TARGET=0.50000"))
        XCTAssertTrue(lines.contains("#EXT-X-MEDIA-SEQUENCE:5"))
        XCTAssertEqual(lines.filter { $0.hasPrefix("#EXT-X-MAP") }, [#"#EXT-X-MAP:URI="init0-1f2a3b4c.mp4""#])
        XCTAssertTrue(lines.contains(#"#EXT-X-PART:DURATION=0.50000,URI="part7.1-1f2a3b4c.m4s""#))
        XCTAssertTrue(lines.contains(#"#EXT-X-PART:DURATION=0.50000,URI="part6.0-1f2a3b4c.m4s",INDEPENDENT=YES"#))
        XCTAssertEqual(lines.last, #"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part7.2-1f2a3b4c.m4s""#)
        XCTAssertEqual(lines.filter { $0.hasPrefix("#EXTINF") }.count, 2)
        XCTAssertFalse(text.contains("seg7-1f2a3b4c.m4s"), "an incomplete segment is not listed as a segment")
        XCTAssertFalse(text.contains("ENDLIST"))
    }

    func testHintAfterACompleteSegmentPointsAtTheNextSegment() {
        let p = MediaPlaylist(partTarget: 0.5, targetDuration: 2, segments: [segment(0, parts: 4)], ended: false, discontinuitySequence: 0, epoch: Self.epoch)
        XCTAssertTrue(p.render().hasSuffix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.0-1f2a3b4c.m4s\"\n"))
    }

    func testEndedPlaylistHasEndlistAndNoHint() {
        let p = MediaPlaylist(partTarget: 0.5, targetDuration: 2, segments: [segment(0, parts: 4)], ended: true, discontinuitySequence: 0, epoch: Self.epoch)
        let text = p.render()
        XCTAssertTrue(text.hasSuffix("#EXT-X-ENDLIST\n"))
        XCTAssertFalse(text.contains("PRELOAD-HINT"))
        XCTAssertFalse(text.contains("CAN-SKIP-UNTIL"))
    }

    func testPartsOnlyNearTheLiveEdge() {
        let segs = (0..<10).map { segment($0, parts: 4) }
        let text = MediaPlaylist(partTarget: 0.5, targetDuration: 2, segments: segs, ended: false, discontinuitySequence: 0, epoch: Self.epoch).render()
        // 3 target durations = 6 s = the last three 2 s segments list their parts.
        XCTAssertFalse(text.contains("part6.0-1f2a3b4c.m4s"))
        XCTAssertTrue(text.contains("part7.0-1f2a3b4c.m4s"))
        XCTAssertTrue(text.contains("part9.3-1f2a3b4c.m4s"))
        XCTAssertTrue(text.contains("seg0-1f2a3b4c.m4s"))
    }

    func testDiscontinuityAndMapChange() {
        let segs = [segment(3, parts: 4), segment(4, parts: 4, discontinuity: true, map: 1)]
        let text = MediaPlaylist(partTarget: 0.5, targetDuration: 2, segments: segs, ended: false, discontinuitySequence: 2, epoch: Self.epoch).render()
        XCTAssertTrue(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"))
        let lines = text.split(separator: "\n").map(String.init)
        let d = lines.firstIndex(of: "#EXT-X-DISCONTINUITY")!
        XCTAssertEqual(lines[d + 1], #"#EXT-X-MAP:URI="init1-1f2a3b4c.mp4""#)
        XCTAssertLessThan(lines.firstIndex(of: "seg3-1f2a3b4c.m4s")!, d)
    }

    func testDeltaUpdateSkipsOldSegments() {
        let segs = (0..<12).map { segment($0, parts: 4) }
        let p = MediaPlaylist(partTarget: 0.5, targetDuration: 2, segments: segs, ended: false, discontinuitySequence: 0, epoch: Self.epoch)
        let text = p.render(skipOlderThan: 12)
        // 24 s listed; segments whose end is at least 12 s from the live edge are skipped: 0..5.
        XCTAssertTrue(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n"), text)
        XCTAssertFalse(text.contains("seg5-1f2a3b4c.m4s"))
        XCTAssertTrue(text.contains("seg6-1f2a3b4c.m4s"))
        XCTAssertTrue(text.contains("#EXT-X-MEDIA-SEQUENCE:0"))
        XCTAssertTrue(text.contains(#"#EXT-X-MAP:URI="init0-1f2a3b4c.mp4""#))
        // Without the request, nothing is skipped.
        XCTAssertFalse(p.render().contains("EXT-X-SKIP"))
    }

    func testEpochSpelling() {
        XCTAssertEqual(StreamEpoch(0x1f).description, "0000001f")
        XCTAssertEqual(StreamEpoch("0000001f"), StreamEpoch(0x1f))
        XCTAssertEqual(StreamEpoch(UInt32.max).description, "ffffffff")
        for bad in ["", "1f", "0000001F", "000000001f", "+000001f", "0000 01f", "g0000001", "0x00001f"] {
            XCTAssertNil(StreamEpoch(bad), bad)
        }
        XCTAssertNotEqual(StreamEpoch.random(), StreamEpoch.random(), "32 random bits (a clash here is one in four billion)")
    }
}
