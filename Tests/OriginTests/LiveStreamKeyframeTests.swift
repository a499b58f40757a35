import Foundation
import MediaTestSupport
import XCTest
@testable import Origin

/// A stream keeps its publisher's last keyframe (with the avcC that decodes it) for thumbnails,
/// only while it is being published.
final class LiveStreamKeyframeTests: XCTestCase {
    func testTheLatestKeyframeAndItsConfigurationWhilePublishing() throws {
        let tags = try FLVFile(try MediaFixtures.flv(name: "thumb-keyframes-3s", seconds: 3, gop: 30)).tags
        let live = LiveStream(id: "thumbs")
        XCTAssertNil(live.latestKeyframe)
        live.beginPublishing()
        var record: [UInt8]?
        var lastKeyframe: (data: [UInt8], timestamp: UInt32)?
        for tag in tags where tag.type == 9 {
            let video = try FLVVideoTag.parse(tag.body)
            switch video.packet {
            case .avcSequenceHeader(let r): record = r
            case .avcNALUs(let data, _) where video.isKeyframe: lastKeyframe = (data, tag.timestamp)
            default: break
            }
            try live.ingest(video: video, timestamp: tag.timestamp, byteCount: tag.body.count)
        }
        let kept = try XCTUnwrap(live.latestKeyframe)
        XCTAssertEqual(kept.decoderConfiguration, record)
        XCTAssertEqual(kept.accessUnit, lastKeyframe?.data)
        XCTAssertEqual(kept.timestamp, lastKeyframe?.timestamp)
        XCTAssertGreaterThanOrEqual(kept.timestamp, 2000, "the last of three keyframes, not the first")
        XCTAssertEqual(kept.session, 1)
        live.endPublishing()
        XCTAssertNil(live.latestKeyframe)
        live.beginPublishing()
        XCTAssertNil(live.latestKeyframe, "a new session starts with no keyframe")
    }
}
