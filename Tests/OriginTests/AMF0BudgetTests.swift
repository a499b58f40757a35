import XCTest
@testable import Origin

/// Decoding AMF0 costs at most a small multiple of its input: hostile counts and runs of
/// tiny values are refused with a typed error, never a trap or a large allocation.
final class AMF0BudgetTests: XCTestCase {
    /// A strict array of `count` booleans (2 bytes each on the wire).
    private func booleanArray(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = [0x0A] + be32(UInt32(count))
        bytes.reserveCapacity(5 + 2 * count)
        for _ in 0..<count { bytes += [0x01, 0x01] }
        return bytes
    }

    func testScalarsAreStoredInline() {
        // One decoded boolean takes its slot in the array and nothing on the heap besides.
        XCTAssertLessThanOrEqual(MemoryLayout<AMF0Value>.stride, 32)
    }

    func testFifteenMegabyteBooleanArrayIsRefusedOnItsCount() {
        let bomb = booleanArray(7_500_000)  // 15 MB, the size of the reported attack
        let budget = AMF0.decodedByteBudget(forInputCount: bomb.count)
        let start = Date()
        assertThrows(.amfTooLarge(inputBytes: bomb.count, budget: budget)) { try AMF0.decode(bomb) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "refused from the count, not after decoding")
        // An explicit budget is honoured too.
        assertThrows(.amfTooLarge(inputBytes: bomb.count, budget: 1024)) { try AMF0.decode(bomb, maxDecodedBytes: 1024) }
    }

    func testRunsOfTinyValuesAreRefused() {
        // Top-level nulls: 1 byte each, more than 8 bytes each decoded.
        let nulls = [UInt8](repeating: 0x05, count: 100_000)
        XCTAssertThrowsError(try AMF0.decode(nulls)) { error in
            guard case .amfTooLarge(100_000, _) = error as? RTMPError else { return XCTFail("\(error)") }
        }
        // An object of 50,000 one-letter keys with null values: 4 bytes a property.
        var object: [UInt8] = [0x03]
        for _ in 0..<50_000 { object += [0x00, 0x01, 0x61, 0x05] }
        object += [0x00, 0x00, 0x09]
        XCTAssertThrowsError(try AMF0.decode(object)) { error in
            guard case .amfTooLarge = error as? RTMPError else { return XCTFail("\(error)") }
        }
        // Same in an ECMA array whose count hint lies, with undefined values.
        var ecma: [UInt8] = [0x08, 0, 0, 0, 1]
        for _ in 0..<50_000 { ecma += [0x00, 0x01, 0x62, 0x06] }
        ecma += [0x00, 0x00, 0x09]
        XCTAssertThrowsError(try AMF0.decode(ecma)) { error in
            guard case .amfTooLarge = error as? RTMPError else { return XCTFail("\(error)") }
        }
    }

    func testDeepNestingWithAHugeDepthLimitStillEndsInAnError() {
        // Even with a permissive depth, the byte budget stops nesting long before the stack.
        var arrays: [UInt8] = []
        for _ in 0..<200_000 { arrays += [0x0A, 0, 0, 0, 1] }
        XCTAssertThrowsError(try AMF0.decode(arrays, maxDepth: 16, maxDecodedBytes: 64 * 1024))
        XCTAssertThrowsError(try AMF0.decode(arrays, maxDepth: 1000, maxDecodedBytes: 16 * 1024)) { error in
            guard case .amfTooLarge = error as? RTMPError else { return XCTFail("\(error)") }
        }
    }

    func testRealCommandsAndMetadataFitTheDefaultBudget() throws {
        // What ffmpeg and OBS send: a connect object and an onMetaData ECMA array.
        let connect: [AMF0Value] = [
            .string("connect"), .number(1),
            .object([
                AMF0Property("app", .string("live")), AMF0Property("type", .string("nonprivate")),
                AMF0Property("flashVer", .string("FMLE/3.0 (compatible; FMSc/1.0)")),
                AMF0Property("swfUrl", .string("rtmp://127.0.0.1:1935/live")),
                AMF0Property("tcUrl", .string("rtmp://127.0.0.1:1935/live")),
                AMF0Property("fpad", .boolean(false)), AMF0Property("capabilities", .number(15)),
                AMF0Property("audioCodecs", .number(4071)), AMF0Property("videoCodecs", .number(252)),
                AMF0Property("videoFunction", .number(1)),
            ]),
        ]
        XCTAssertEqual(try AMF0.decode(AMF0.encode(connect), maxDecodedBytes: AMF0.decodedByteBudget(forInputCount: 0)), connect)
        let names = ["duration", "width", "height", "videodatarate", "framerate", "videocodecid", "audiodatarate",
                     "audiosamplerate", "audiosamplesize", "stereo", "audiocodecid", "encoder", "filesize"]
        let metadata: [AMF0Value] = [
            .string("@setDataFrame"), .string("onMetaData"),
            .ecmaArray(names.map { AMF0Property($0, $0 == "encoder" ? .string("Lavf60.16.100") : $0 == "stereo" ? .boolean(true) : .number(1)) }),
        ]
        XCTAssertEqual(try AMF0.decode(AMF0.encode(metadata), maxDecodedBytes: AMF0.decodedByteBudget(forInputCount: 0)), metadata)
        // Large but ordinary values (numbers, long strings) stay well within 8 bytes a byte.
        let numbers = AMF0Value.strictArray((0..<20_000).map { .number(Double($0)) })
        XCTAssertEqual(try AMF0.decode(AMF0.encode([numbers])), [numbers])
        let text = AMF0Value.string(String(repeating: "x", count: 60_000))
        XCTAssertEqual(try AMF0.decode(AMF0.encode([text])), [text])
    }

    func testRandomInputNeverExceedsTheBudgetOrTraps() {
        var rng = SeededRNG(seed: 0xA3F0)
        for _ in 0..<2000 {
            // Biased towards markers of small values and containers.
            let n = Int.random(in: 1...4096, using: &rng)
            let alphabet: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x00, 0x00, 0x01, 0x05]
            let bytes = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
            // Typed throws: any failure is an RTMPError; the point is that nothing traps.
            _ = try? AMF0.decode(bytes, maxDepth: 16, maxDecodedBytes: 4096)
        }
    }
}
