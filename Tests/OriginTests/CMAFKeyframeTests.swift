import XCTest
@testable import Origin

/// A recording's picture is made from its first keyframe: read back from the init segment and
/// segment the packager wrote (audio and video in one file, video not the first track).
final class CMAFKeyframeTests: XCTestCase {
    func testTheVideoTracksFirstSampleAndConfigurationAreReadBack() throws {
        let video = CMAFTrack(id: 2, timescale: 90_000, format: .avc(try AVCDecoderConfiguration(record: H264ConfigurationTests.baselineRecord)))
        let audio = CMAFTrack(id: 1, timescale: 48_000, format: .aac(try AudioSpecificConfig(bytes: [0x11, 0x88])))
        let initSegment = CMAFWriter.initSegment(tracks: [audio, video])
        let keyframe: [UInt8] = [0, 0, 0, 3, 0x65, 0x88, 0x84]
        let fragment = CMAFWriter.fragment(sequenceNumber: 7, runs: [
            CMAFTrackRun(trackID: 1, baseDecodeTime: 0, samples: [CMAFSample(duration: 1024, isSync: true, data: [9, 9, 9, 9, 9])]),
            CMAFTrackRun(trackID: 2, baseDecodeTime: 0, samples: [CMAFSample(duration: 3000, isSync: true, data: keyframe),
                                                                   CMAFSample(duration: 3000, isSync: false, data: [0, 0, 0, 1, 0x41])]),
        ])
        // A segment is several fragments (LL-HLS parts): the first one's sample is the keyframe.
        let later = CMAFWriter.fragment(sequenceNumber: 8, runs: [
            CMAFTrackRun(trackID: 2, baseDecodeTime: 6000, samples: [CMAFSample(duration: 3000, isSync: false, data: [0, 0, 0, 1, 0x41])]),
        ])
        let found = try XCTUnwrap(CMAFKeyframe.first(initSegment: initSegment, segment: fragment + later))
        XCTAssertEqual(found.avcC, H264ConfigurationTests.baselineRecord)
        XCTAssertEqual(found.accessUnit, keyframe)
    }

    func testFilesThatAreNotAsThePackagerWritesThemGiveNothing() throws {
        let audio = CMAFTrack(id: 1, timescale: 48_000, format: .aac(try AudioSpecificConfig(bytes: [0x11, 0x88])))
        let audioOnly = CMAFWriter.initSegment(tracks: [audio])
        let fragment = CMAFWriter.fragment(sequenceNumber: 1, runs: [
            CMAFTrackRun(trackID: 1, baseDecodeTime: 0, samples: [CMAFSample(duration: 1024, isSync: true, data: [1, 2, 3])]),
        ])
        XCTAssertNil(CMAFKeyframe.first(initSegment: audioOnly, segment: fragment), "no video track")
        let video = CMAFTrack(id: 1, timescale: 90_000, format: .avc(try AVCDecoderConfiguration(record: H264ConfigurationTests.baselineRecord)))
        let initSegment = CMAFWriter.initSegment(tracks: [video])
        XCTAssertNil(CMAFKeyframe.first(initSegment: initSegment, segment: []))
        XCTAssertNil(CMAFKeyframe.first(initSegment: initSegment, segment: Array(fragment.prefix(40))), "cut short")
        XCTAssertNil(CMAFKeyframe.first(initSegment: Array(initSegment.prefix(30)), segment: fragment))
        var lying = fragment
        lying[3] = 0xFF  // the moof claims more than the file holds
        XCTAssertNil(CMAFKeyframe.first(initSegment: initSegment, segment: lying))
        XCTAssertNil(CMAFKeyframe.first(initSegment: [UInt8](repeating: 0xFF, count: 64), segment: [UInt8](repeating: 0, count: 64)))
    }
}
