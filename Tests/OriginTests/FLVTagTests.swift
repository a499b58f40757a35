import XCTest
@testable import Origin

final class FLVTagTests: XCTestCase {
    func testAVCSequenceHeader() throws {
        let tag = try FLVVideoTag.parse([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F])
        XCTAssertTrue(tag.isKeyframe)
        XCTAssertEqual(tag.codecID, 7)
        XCTAssertEqual(tag.packet, .avcSequenceHeader([0x01, 0x64, 0x00, 0x1F]))
    }

    func testAVCNALUsWithPositiveAndNegativeCompositionTime() throws {
        let inter = try FLVVideoTag.parse([0x27, 0x01, 0x00, 0x00, 0x43, 0, 0, 0, 1, 0x41])
        XCTAssertFalse(inter.isKeyframe)
        XCTAssertEqual(inter.frameType, 2)
        XCTAssertEqual(inter.packet, .avcNALUs([0, 0, 0, 1, 0x41], compositionTime: 67))
        let negative = try FLVVideoTag.parse([0x17, 0x01, 0xFF, 0xFF, 0xDF, 0xAA])
        XCTAssertEqual(negative.packet, .avcNALUs([0xAA], compositionTime: -33))
        let minimum = try FLVVideoTag.parse([0x17, 0x01, 0x80, 0x00, 0x00])
        XCTAssertEqual(minimum.packet, .avcNALUs([], compositionTime: -8_388_608))
        let maximum = try FLVVideoTag.parse([0x17, 0x01, 0x7F, 0xFF, 0xFF])
        XCTAssertEqual(maximum.packet, .avcNALUs([], compositionTime: 8_388_607))
    }

    func testAVCEndOfSequenceAndOtherCodecs() throws {
        XCTAssertEqual(try FLVVideoTag.parse([0x17, 0x02, 0, 0, 0]).packet, .avcEndOfSequence)
        let h263 = try FLVVideoTag.parse([0x12, 0xAB, 0xCD])
        XCTAssertEqual(h263.codecID, 2)
        XCTAssertTrue(h263.isKeyframe)
        XCTAssertEqual(h263.packet, .other([0xAB, 0xCD]))
        // Enhanced RTMP (ex-header bit) is never mistaken for AVC.
        let enhanced = try FLVVideoTag.parse([0x90, 0x68, 0x76, 0x63, 0x31])
        XCTAssertEqual(enhanced.packet, .other([0x68, 0x76, 0x63, 0x31]))
    }

    func testMalformedVideoTagsThrow() {
        assertThrows(.malformedFLVTag("empty video tag")) { try FLVVideoTag.parse([]) }
        assertThrows(.malformedFLVTag("AVC video tag has 4 bytes, expected at least 5")) { try FLVVideoTag.parse([0x17, 0x01, 0, 0]) }
        assertThrows(.malformedFLVTag("unknown AVC packet type 9")) { try FLVVideoTag.parse([0x17, 0x09, 0, 0, 0]) }
    }

    func testAACTags() throws {
        let header = try FLVAudioTag.parse([0xAF, 0x00, 0x12, 0x10])
        XCTAssertEqual(header.soundFormat, 10)
        XCTAssertEqual(header.soundRate, 3)
        XCTAssertEqual(header.sampleRate, 44100)
        XCTAssertEqual(header.soundSize, 16)
        XCTAssertEqual(header.channels, 2)
        XCTAssertEqual(header.packet, .aacSequenceHeader([0x12, 0x10]))
        XCTAssertEqual(try FLVAudioTag.parse([0xAF, 0x01, 0x21, 0x00]).packet, .aacRaw([0x21, 0x00]))
        let mp3 = try FLVAudioTag.parse([0x2A, 0xFF, 0xFB])
        XCTAssertEqual(mp3.soundFormat, 2)
        XCTAssertEqual(mp3.soundRate, 2)
        XCTAssertEqual(mp3.soundSize, 16)
        XCTAssertEqual(mp3.channels, 1)
        XCTAssertEqual(mp3.packet, .other([0xFF, 0xFB]))
    }

    func testMalformedAudioTagsThrow() {
        assertThrows(.malformedFLVTag("empty audio tag")) { try FLVAudioTag.parse([]) }
        assertThrows(.malformedFLVTag("AAC audio tag has 1 byte, expected at least 2")) { try FLVAudioTag.parse([0xAF]) }
        assertThrows(.malformedFLVTag("unknown AAC packet type 2")) { try FLVAudioTag.parse([0xAF, 0x02]) }
    }
}
