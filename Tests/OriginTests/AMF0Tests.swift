import XCTest
@testable import Origin

final class AMF0Tests: XCTestCase {
    func testEncodesKnownBytes() {
        XCTAssertEqual(AMF0.encode([.number(1.0)]), [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(AMF0.encode([.boolean(true), .boolean(false)]), [0x01, 0x01, 0x01, 0x00])
        XCTAssertEqual(AMF0.encode([.string("ab")]), [0x02, 0x00, 0x02, 0x61, 0x62])
        XCTAssertEqual(AMF0.encode([.null, .undefined]), [0x05, 0x06])
        XCTAssertEqual(AMF0.encode([.object([AMF0Property("a", .null)])]),
                       [0x03, 0x00, 0x01, 0x61, 0x05, 0x00, 0x00, 0x09])
        XCTAssertEqual(AMF0.encode([.ecmaArray([AMF0Property("k", .boolean(true))])]),
                       [0x08, 0, 0, 0, 1, 0x00, 0x01, 0x6B, 0x01, 0x01, 0x00, 0x00, 0x09])
        XCTAssertEqual(AMF0.encode([.strictArray([.number(0), .null])]),
                       [0x0A, 0, 0, 0, 2, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x05])
        XCTAssertEqual(AMF0.encode([.date(0, timeZone: -60)]), [0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xC4])
        XCTAssertEqual(AMF0.encode([.reference(0x0102)]), [0x07, 0x01, 0x02])
        XCTAssertEqual(AMF0.encode([.longString("x")]), [0x0C, 0, 0, 0, 1, 0x78])
        XCTAssertEqual(AMF0.encode([.xmlDocument("<a/>")]), [0x0F, 0, 0, 0, 4] + Array("<a/>".utf8))
        XCTAssertEqual(AMF0.encode([.unsupported]), [0x0D])
        XCTAssertEqual(AMF0.encode([.typedObject(className: "C", properties: [])]),
                       [0x10, 0x00, 0x01, 0x43, 0x00, 0x00, 0x09])
    }

    func testRoundTripsEveryType() throws {
        let values: [AMF0Value] = [
            .number(0), .number(-1.5), .number(.infinity), .number(Double.greatestFiniteMagnitude),
            .boolean(true), .boolean(false),
            .string(""), .string("héllo ✓"),
            .object([]),
            .object([AMF0Property("app", .string("live")), AMF0Property("n", .number(3)),
                     AMF0Property("nested", .object([AMF0Property("deep", .strictArray([.null, .undefined]))]))]),
            .null, .undefined, .reference(7),
            .ecmaArray([]), .ecmaArray([AMF0Property("duration", .number(0)), AMF0Property("encoder", .string("Lavf"))]),
            .strictArray([]), .strictArray([.number(1), .string("two"), .object([AMF0Property("three", .boolean(true))])]),
            .date(1_700_000_000_000, timeZone: 0), .date(-1, timeZone: 120),
            .longString("long"), .unsupported, .xmlDocument("<x>y</x>"),
            .typedObject(className: "flash.Foo", properties: [AMF0Property("a", .number(1))]),
        ]
        for value in values {
            XCTAssertEqual(try AMF0.decode(AMF0.encode([value])), [value], "\(value)")
        }
        XCTAssertEqual(try AMF0.decode(AMF0.encode(values)), values)
        let nan = try AMF0.decode(AMF0.encode([.number(.nan)]))
        XCTAssertTrue(nan.first?.numberValue?.isNaN == true)
    }

    func testLongStringIsUsedAutomaticallyAbove65535Bytes() throws {
        let big = String(repeating: "z", count: 70_000)
        let bytes = AMF0.encode([.string(big)])
        XCTAssertEqual(bytes[0], 0x0C)
        XCTAssertEqual(bytes.count, 5 + 70_000)
        XCTAssertEqual(try AMF0.decode(bytes), [.longString(big)])
        XCTAssertEqual(try AMF0.decode(bytes).first?.stringValue, big)
    }

    func testSubscriptFindsProperties() {
        let v: AMF0Value = .object([AMF0Property("a", .number(1)), AMF0Property("b", .string("x"))])
        XCTAssertEqual(v["b"], .string("x"))
        XCTAssertNil(v["c"])
        XCTAssertNil(AMF0Value.null["a"])
    }

    func testTruncatedInputThrows() {
        let full = AMF0.encode([.object([AMF0Property("key", .string("value")), AMF0Property("n", .number(2))])])
        for cut in 1..<full.count {
            XCTAssertThrowsError(try AMF0.decode(Array(full.prefix(cut))), "cut at \(cut)") { error in
                guard case .malformedAMF = error as? RTMPError else { return XCTFail("\(error)") }
            }
        }
    }

    func testLengthsPastTheEndThrow() {
        assertThrows(.malformedAMF("string needs 65535 bytes but only 2 remain")) {
            try AMF0.decode([0x02, 0xFF, 0xFF, 0x61, 0x62])
        }
        assertThrows(.malformedAMF("long string needs 4294967295 bytes but only 0 remain")) {
            try AMF0.decode([0x0C, 0xFF, 0xFF, 0xFF, 0xFF])
        }
        assertThrows(.malformedAMF("strict array claims 4294967295 items but only 1 bytes remain")) {
            try AMF0.decode([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05])
        }
    }

    func testDepthBombThrows() {
        // 10,000 nested objects: must be rejected at depth 16 without deep recursion.
        var bomb: [UInt8] = []
        for _ in 0..<10_000 { bomb += [0x03, 0x00, 0x01, 0x61] }
        assertThrows(.malformedAMF("values nested deeper than 16 levels")) { try AMF0.decode(bomb) }
        var arrays: [UInt8] = []
        for _ in 0..<10_000 { arrays += [0x0A, 0, 0, 0, 1] }
        assertThrows(.malformedAMF("values nested deeper than 16 levels")) { try AMF0.decode(arrays) }
        // Exactly maxDepth levels is fine.
        var ok: AMF0Value = .null
        for _ in 0..<4 { ok = .object([AMF0Property("a", ok)]) }
        XCTAssertEqual(try AMF0.decode(AMF0.encode([ok]), maxDepth: 4), [ok])
        XCTAssertThrowsError(try AMF0.decode(AMF0.encode([ok]), maxDepth: 3))
    }

    func testUnknownAndUnsupportedMarkersThrow() {
        assertThrows(.malformedAMF("unknown marker 0x12")) { try AMF0.decode([0x12]) }
        assertThrows(.malformedAMF("AMF3 values (marker 0x11) are not supported")) { try AMF0.decode([0x11, 0x01]) }
        assertThrows(.malformedAMF("object end marker outside an object")) { try AMF0.decode([0x09]) }
        assertThrows(.malformedAMF("reserved marker 0x4")) { try AMF0.decode([0x04]) }
        assertThrows(.malformedAMF("object is missing its end marker")) { try AMF0.decode([0x03, 0x00, 0x01, 0x61]) }
    }

    func testInvalidUTF8IsRepairedNotFatal() throws {
        let values = try AMF0.decode([0x02, 0x00, 0x02, 0xC3, 0x28])
        XCTAssertEqual(values.count, 1)
        XCTAssertNotNil(values.first?.stringValue)
    }
}
