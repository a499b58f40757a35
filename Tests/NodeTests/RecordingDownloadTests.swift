import Foundation
import XCTest
@testable import Live
@testable import Origin

/// What a download is made of (the rendition, its runs of files) and how it is answered (the
/// file name, byte ranges): the parts of `download.mp4` that need no media.
final class RecordingDownloadTests: XCTestCase {
    func segment(_ n: Int, version: Int = 0, discontinuity: Bool = false) -> RecordingManifest.Segment {
        RecordingManifest.Segment(sequence: n, duration: 2, discontinuity: discontinuity, initVersion: version, bytes: 10)
    }

    func testTheSourceIsDownloadedAndARunEndsWhereTheInitChangesOrTimeStartsAgain() {
        var m = RecordingManifest(stream: "s1", epoch: StreamEpoch(1), firstSequence: 0, startedAt: Date())
        m.renditions = [RecordingManifest.Rendition(name: "240p", codecs: "avc1", inits: [0], segments: [segment(0)]),
                        RecordingManifest.Rendition(name: "source", codecs: "avc1", inits: [0, 1],
                                                    segments: [segment(0), segment(1), segment(2, discontinuity: true),
                                                               segment(3, version: 1), segment(4, version: 2)])]
        let source = RecordingDownloads.rendition(of: m)
        XCTAssertEqual(source?.name, "source")
        XCTAssertEqual(RecordingDownloads.runs(of: source!, folder: "/r"), [
            ["/r/init0.mp4", "/r/seg0.m4s", "/r/seg1.m4s"],
            ["/r/init0.mp4", "/r/seg2.m4s"],
            ["/r/init1.mp4", "/r/seg3.m4s"],
        ], "a segment whose init was never written is left out")
        m.renditions[1].segments = []
        XCTAssertEqual(RecordingDownloads.rendition(of: m)?.name, "240p", "no source kept: the top rung")
    }

    func testOnlyACopyThatEndedIsMadeIntoAFile() {
        var m = RecordingManifest(stream: "s1", epoch: StreamEpoch(1), firstSequence: 0, startedAt: Date())
        XCTAssertFalse(RecordingDownloads.isFinished(m))
        m.fail("a write failed")
        XCTAssertFalse(RecordingDownloads.isFinished(m), "incomplete, but the broadcast goes on")
        m.endedAt = Date()
        XCTAssertTrue(RecordingDownloads.isFinished(m))
        m.state = .ready
        XCTAssertTrue(RecordingDownloads.isFinished(m))
    }

    func testTheFileIsNamedAfterTheTitleSafely() {
        XCTAssertEqual(RecordingRoutes.contentDisposition(title: "My show: part 2/3", id: "s1-00000001-0"),
                       "attachment; filename=\"My-show-part-2-3-s1-00000001-0.mp4\"; filename*=UTF-8''My%20show%3A%20part%202%2F3.mp4")
        XCTAssertEqual(RecordingRoutes.contentDisposition(title: "\"; rm -rf", id: "x-1-0"),
                       "attachment; filename=\"rm-rf-x-1-0.mp4\"; filename*=UTF-8''%22%3B%20rm%20-rf.mp4")
        XCTAssertEqual(RecordingRoutes.contentDisposition(title: "Été", id: "x-1-0"),
                       "attachment; filename=\"t-x-1-0.mp4\"; filename*=UTF-8''%C3%89t%C3%A9.mp4")
        XCTAssertEqual(RecordingRoutes.contentDisposition(title: "", id: "x-1-0"), "attachment; filename=\"x-1-0.mp4\"")
    }

    func testByteRanges() {
        XCTAssertEqual(RecordingRoutes.byteRange("bytes=0-99", size: 1000), 0...99)
        XCTAssertEqual(RecordingRoutes.byteRange("bytes=900-", size: 1000), 900...999)
        XCTAssertEqual(RecordingRoutes.byteRange("bytes=-100", size: 1000), 900...999)
        XCTAssertEqual(RecordingRoutes.byteRange("bytes=990-2000", size: 1000), 990...999)
        XCTAssertEqual(RecordingRoutes.byteRange("bytes=0-1, 5-9", size: 1000), 0...1)
        XCTAssertNil(RecordingRoutes.byteRange("bytes=1000-", size: 1000))
        XCTAssertNil(RecordingRoutes.byteRange("bytes=5-1", size: 1000))
        XCTAssertNil(RecordingRoutes.byteRange("items=0-1", size: 1000))
        XCTAssertNil(RecordingRoutes.byteRange("bytes=-0", size: 1000))
    }
}
