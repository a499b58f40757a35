import Foundation
import XCTest
@testable import Origin
@testable import Transcode

/// Thumbnails: from a source keyframe and from uploaded images, and every kind of garbage.
final class ThumbnailTests: XCTestCase {
    /// An image made by ffmpeg's lavfi `testsrc2`, kept for the run.
    static func image(_ size: String, _ ext: String, codec: [String] = []) throws -> [UInt8] {
        let url = TranscodeTestMedia.directory.appendingPathComponent("thumb-\(size).\(ext)")
        if !FileManager.default.fileExists(atPath: url.path) {
            let partial = TranscodeTestMedia.directory.appendingPathComponent("\(getpid())-thumb-\(size).\(ext)")
            try TranscodeTestMedia.run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                                                           "-i", "testsrc2=size=\(size)", "-frames:v", "1"] + codec + [partial.path])
            if rename(partial.path, url.path) != 0 { try? FileManager.default.removeItem(at: partial) }
        }
        return [UInt8](try Data(contentsOf: url))
    }

    /// ffprobe's codec and size of a thumbnail written to a file.
    static func probe(_ jpeg: [UInt8]) throws -> TranscodeTestMedia.Probe {
        let url = TranscodeTestMedia.directory.appendingPathComponent("\(getpid())-\(UUID().uuidString).jpg")
        try Data(jpeg).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try TranscodeTestMedia.probe(url)
    }

    func assertRefused(_ bytes: [UInt8], _ expected: (ThumbnailError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let out = try Thumbnailer.fromImage(bytes)
            XCTFail("made a thumbnail (\(out.count) bytes) of garbage", file: file, line: line)
        } catch {
            XCTAssertTrue(expected(error), "unexpected error: \(error)", file: file, line: line)
            XCTAssertFalse(error.description.isEmpty, file: file, line: line)
        }
    }

    // MARK: From a keyframe

    func testThumbnailFromKeyframeIsA640x360JPEG() throws {
        let source = try TranscodeTestMedia.source(width: 1280, height: 720)
        for index in source.keyframeIndices.prefix(2) {
            let jpeg = try Thumbnailer.fromKeyframe(avcC: source.avcC, accessUnit: source.units[index].data)
            XCTAssertEqual(ImageHeader(jpeg), ImageHeader(format: .jpeg, width: 640, height: 360))
            let probe = try Self.probe(jpeg)
            XCTAssertEqual(probe.codec, "mjpeg")
            XCTAssertEqual([probe.width, probe.height], [640, 360])
            XCTAssertGreaterThan(jpeg.count, 2000, "a picture of testsrc2, not a flat one")
        }
    }

    func testSmallKeyframeIsNotUpscaledAndKeepsItsAspect() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240)
        let jpeg = try Thumbnailer.fromKeyframe(avcC: source.avcC, accessUnit: source.units[source.keyframeIndices[0]].data)
        XCTAssertEqual(ImageHeader(jpeg), ImageHeader(format: .jpeg, width: 320, height: 240))
    }

    func testBadKeyframesAreRefused() throws {
        let source = try TranscodeTestMedia.source(width: 320, height: 240)
        let keyframe = source.units[source.keyframeIndices[0]].data
        let cases: [(String, [UInt8], [UInt8])] = [
            ("no configuration", [], keyframe),
            ("garbage configuration", [1, 2, 3, 4, 5, 6, 7], keyframe),
            ("empty access unit", source.avcC, []),
            ("lengths that do not add up", source.avcC, Array(keyframe.prefix(keyframe.count / 2))),
            ("random bytes", source.avcC, [0, 0, 0, 8] + (0..<8).map { _ in UInt8.random(in: 0...255) }),
        ]
        for (name, avcC, unit) in cases {
            XCTAssertThrowsError(try Thumbnailer.fromKeyframe(avcC: avcC, accessUnit: unit), name) { error in
                guard case .invalidKeyframe = error as? ThumbnailError else { return XCTFail("\(name): \(error)") }
            }
        }
    }

    // MARK: From an upload

    func testUploadedImagesAreReencodedWithinTheBox() throws {
        let cases: [([UInt8], ImageHeader.Format, Int, Int)] = [
            (try Self.image("1280x720", "png"), .png, 640, 360),
            (try Self.image("1000x1000", "jpg"), .jpeg, 360, 360),
            (try Self.image("400x300", "webp", codec: ["-c:v", "libwebp"]), .webp, 400, 300),
            (try Self.image("720x1280", "png"), .png, 202, 360),
        ]
        for (bytes, format, width, height) in cases {
            XCTAssertEqual(ImageHeader(bytes)?.format, format)
            let jpeg = try Thumbnailer.fromImage(bytes)
            XCTAssertNotEqual(jpeg, bytes)
            XCTAssertEqual(ImageHeader(jpeg), ImageHeader(format: .jpeg, width: width, height: height), "\(format)")
            XCTAssertEqual(try Self.probe(jpeg).codec, "mjpeg")
        }
    }

    func testGarbageIsRefusedWithTheRightError() throws {
        let png = try Self.image("1280x720", "png")
        let jpeg = try Self.image("1000x1000", "jpg")
        assertRefused([]) { $0 == .empty }
        assertRefused([0] + (0..<4096).map { _ in UInt8.random(in: 0...255) }) { $0 == .notAnImage }
        assertRefused(Array("GIF89a, not taken".utf8)) { $0 == .notAnImage }
        assertRefused(Array("<svg xmlns='http://www.w3.org/2000/svg'/>".utf8)) { $0 == .notAnImage }
        // Headers cut short.
        assertRefused(Array(png.prefix(20))) { $0 == .notAnImage }
        assertRefused(Array(jpeg.prefix(4))) { $0 == .notAnImage }
        // Truncated pictures: the header is whole, the picture is not.
        for bytes in [Array(png.prefix(png.count / 2)), Array(jpeg.prefix(jpeg.count / 2)), Array(png.prefix(100))] {
            assertRefused(bytes) { if case .undecodable = $0 { return true } else { return false } }
        }
        // A whole header, then garbage.
        assertRefused(Array(png.prefix(33)) + (0..<5000).map { _ in UInt8.random(in: 0...255) }) {
            if case .undecodable = $0 { return true } else { return false }
        }
    }

    func testHugeDeclaredSizesAreRefusedBeforeDecoding() throws {
        var png = try Self.image("1280x720", "png")
        // IHDR width and height: 100000 x 100000 (the CRC no longer matches: the size is checked first).
        png.replaceSubrange(16..<24, with: [0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0])
        assertRefused(png) { $0 == .tooLarge(width: 100_000, height: 100_000) }
        var wide = try Self.image("1280x720", "png")
        wide.replaceSubrange(16..<24, with: [0, 0, 0x40, 0, 0, 0, 0x30, 0])  // 16384 x 12288
        assertRefused(wide) { $0 == .tooLarge(width: 16384, height: 12288) }
        var zero = try Self.image("1280x720", "png")
        zero.replaceSubrange(16..<24, with: [0, 0, 0, 0, 0, 0, 0, 0])
        assertRefused(zero) { $0 == .invalidSize(width: 0, height: 0) }

        // A JPEG whose frame header says 60000 x 60000.
        let sof: [UInt8] = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03,
                            0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9]
        XCTAssertEqual(ImageHeader(sof), ImageHeader(format: .jpeg, width: 60000, height: 60000))
        assertRefused(sof) { $0 == .tooLarge(width: 60000, height: 60000) }
        // Under each side's limit, over the pixel count.
        let many: [UInt8] = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x1F, 0x40, 0x1F, 0x40, 0x03]  // 8000 x 8000
        assertRefused(many) { $0 == .tooLarge(width: 8000, height: 8000) }
    }

    func testImageHeaders() {
        // WebP: lossless (VP8L) and extended (VP8X) headers.
        var vp8l: [UInt8] = Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WEBPVP8L".utf8) + [0, 0, 0, 0, 0x2F]
        let bits = (99) | (49 << 14)  // 100 x 50
        vp8l += [UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24 & 0xFF)] + [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(ImageHeader(vp8l), ImageHeader(format: .webp, width: 100, height: 50))
        var vp8x: [UInt8] = Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WEBPVP8X".utf8) + [UInt8](repeating: 0, count: 8)
        vp8x += [0xFF, 0x1F, 0x00, 0xFF, 0x0F, 0x00]  // 8192 x 4096
        XCTAssertEqual(ImageHeader(vp8x), ImageHeader(format: .webp, width: 8192, height: 4096))
        // A JPEG whose markers run off the end, or with a scan before any frame header.
        XCTAssertNil(ImageHeader([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]))
        XCTAssertNil(ImageHeader([0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6]))
        XCTAssertNil(ImageHeader([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00]))
    }

    func testOutputSizes() {
        XCTAssertTrue(Thumbnailer.outputSize(width: 1920, height: 1080) == (640, 360))
        XCTAssertTrue(Thumbnailer.outputSize(width: 640, height: 480) == (480, 360))
        XCTAssertTrue(Thumbnailer.outputSize(width: 100, height: 50) == (100, 50))
        XCTAssertTrue(Thumbnailer.outputSize(width: 8192, height: 10) == (640, 2))
        XCTAssertTrue(Thumbnailer.outputSize(width: 3, height: 3) == (2, 2))
    }
}
