import XCTest
@testable import Origin

final class RTMPChunkDecoderTests: XCTestCase {
    private func decode(_ bytes: [UInt8], chunkSize: UInt32 = 128, limits: RTMPLimits = .default) throws -> [RTMPMessage] {
        var decoder = RTMPChunkDecoder(limits: limits)
        if chunkSize != 128 { try decoder.setChunkSize(chunkSize) }
        decoder.append(bytes)
        var out: [RTMPMessage] = []
        while let chunk = try decoder.nextChunk() {
            if let m = chunk.message { out.append(m) }
        }
        XCTAssertEqual(decoder.bufferedByteCount, 0)
        return out
    }

    func testType0Header() throws {
        let bytes: [UInt8] = [0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x02, 0x14, 0x01, 0x00, 0x00, 0x00, 0xAA, 0xBB]
        XCTAssertEqual(try decode(bytes), [RTMPMessage(typeID: 20, streamID: 1, timestamp: 0x102, payload: [0xAA, 0xBB])])
    }

    func testType1Type2AndType3HeadersAccumulateDeltas() throws {
        var bytes = rawChunk(format: 0, csid: 4, timestamp: 1000, length: 2, typeID: 8, streamID: 1, payload: [1, 2])
        bytes += rawChunk(format: 1, csid: 4, timestamp: 20, length: 3, typeID: 9, payload: [3, 4, 5])
        bytes += rawChunk(format: 2, csid: 4, timestamp: 30, payload: [6, 7, 8])
        bytes += rawChunk(format: 3, csid: 4, payload: [9, 10, 11])  // new message, reuses delta 30
        XCTAssertEqual(try decode(bytes), [
            RTMPMessage(typeID: 8, streamID: 1, timestamp: 1000, payload: [1, 2]),
            RTMPMessage(typeID: 9, streamID: 1, timestamp: 1020, payload: [3, 4, 5]),
            RTMPMessage(typeID: 9, streamID: 1, timestamp: 1050, payload: [6, 7, 8]),
            RTMPMessage(typeID: 9, streamID: 1, timestamp: 1080, payload: [9, 10, 11]),
        ])
    }

    func testType3AfterType0ReusesTheTimestampFieldAsDelta() throws {
        // What ffmpeg's reader does: the type-0 field becomes the delta of a following type 3.
        var bytes = rawChunk(format: 0, csid: 5, timestamp: 40, length: 1, typeID: 8, streamID: 1, payload: [1])
        bytes += rawChunk(format: 3, csid: 5, payload: [2])
        XCTAssertEqual(try decode(bytes).map(\.timestamp), [40, 80])
    }

    func testMessageSpanningChunksWithType3Continuations() throws {
        let payload = (0..<300).map { UInt8($0 & 0xFF) }
        var bytes = rawChunk(format: 0, csid: 6, timestamp: 5, length: 300, typeID: 9, streamID: 1, payload: Array(payload[0..<128]))
        bytes += rawChunk(format: 3, csid: 6, payload: Array(payload[128..<256]))
        bytes += rawChunk(format: 3, csid: 6, payload: Array(payload[256...]))
        XCTAssertEqual(try decode(bytes), [RTMPMessage(typeID: 9, streamID: 1, timestamp: 5, payload: payload)])
    }

    func testTwoAndThreeByteBasicHeaders() throws {
        for csid: UInt32 in [2, 63, 64, 200, 319, 320, 1000, 65599] {
            let bytes = rawChunk(format: 0, csid: csid, timestamp: 1, length: 1, typeID: 8, streamID: 1, payload: [7])
            XCTAssertEqual(bytes.count, (csid < 64 ? 1 : csid < 320 ? 2 : 3) + 11 + 1)
            XCTAssertEqual(try decode(bytes), [RTMPMessage(typeID: 8, streamID: 1, timestamp: 1, payload: [7])], "csid \(csid)")
            // The encoder writes the same forms.
            let encoded = RTMPChunkEncoder().encode(RTMPMessage(typeID: 8, streamID: 1, timestamp: 1, payload: [7]), chunkStreamID: csid)
            XCTAssertEqual(encoded, bytes)
        }
    }

    func testExtendedTimestampRepeatedOnType3Continuations() throws {
        let payload = [UInt8](repeating: 0x42, count: 200)
        var bytes = rawChunk(format: 0, csid: 6, length: 200, typeID: 9, streamID: 1, extendedTimestamp: 0x0100_0000, payload: Array(payload[0..<128]))
        bytes += rawChunk(format: 3, csid: 6, extendedTimestamp: 0x0100_0000, payload: Array(payload[128...]))
        XCTAssertEqual(try decode(bytes), [RTMPMessage(typeID: 9, streamID: 1, timestamp: 0x0100_0000, payload: payload)])
        // Our encoder produces exactly these bytes.
        XCTAssertEqual(RTMPChunkEncoder().encode(RTMPMessage(typeID: 9, streamID: 1, timestamp: 0x0100_0000, payload: payload), chunkStreamID: 6), bytes)
    }

    func testExtendedDeltaOnType1AndType3NewMessage() throws {
        var bytes = rawChunk(format: 0, csid: 4, timestamp: 10, length: 1, typeID: 8, streamID: 1, payload: [1])
        bytes += rawChunk(format: 1, csid: 4, length: 1, typeID: 8, extendedTimestamp: 0x0200_0000, payload: [2])
        bytes += rawChunk(format: 3, csid: 4, extendedTimestamp: 0x0200_0000, payload: [3])
        XCTAssertEqual(try decode(bytes).map(\.timestamp), [10, 0x0200_000A, 0x0400_000A])
    }

    func testTimestampWrapsAround() throws {
        var bytes = rawChunk(format: 0, csid: 4, length: 1, typeID: 8, streamID: 1, extendedTimestamp: 0xFFFF_FFF0, payload: [1])
        bytes += rawChunk(format: 2, csid: 4, timestamp: 0x20, payload: [2])
        XCTAssertEqual(try decode(bytes).map(\.timestamp), [0xFFFF_FFF0, 0x10])
    }

    func testInterleavedChunkStreams() throws {
        let video = [UInt8](repeating: 9, count: 200)
        let audio = [UInt8](repeating: 8, count: 150)
        var bytes = rawChunk(format: 0, csid: 6, timestamp: 100, length: 200, typeID: 9, streamID: 1, payload: Array(video[0..<128]))
        bytes += rawChunk(format: 0, csid: 4, timestamp: 90, length: 150, typeID: 8, streamID: 1, payload: Array(audio[0..<128]))
        bytes += rawChunk(format: 3, csid: 6, payload: Array(video[128...]))
        bytes += rawChunk(format: 3, csid: 4, payload: Array(audio[128...]))
        XCTAssertEqual(try decode(bytes), [
            RTMPMessage(typeID: 9, streamID: 1, timestamp: 100, payload: video),
            RTMPMessage(typeID: 8, streamID: 1, timestamp: 90, payload: audio),
        ])
    }

    func testLargerChunkSize() throws {
        let payload = [UInt8](repeating: 1, count: 5000)
        let bytes = RTMPChunkEncoder(chunkSize: 4096).encode(RTMPMessage(typeID: 9, streamID: 1, timestamp: 0, payload: payload), chunkStreamID: 6)
        XCTAssertEqual(bytes.count, 12 + 5000 + 1)
        XCTAssertEqual(try decode(bytes, chunkSize: 4096).first?.payload, payload)
    }

    func testZeroLengthMessage() throws {
        let bytes = rawChunk(format: 0, csid: 3, timestamp: 0, length: 0, typeID: 20, payload: [])
            + rawChunk(format: 0, csid: 3, timestamp: 0, length: 1, typeID: 20, payload: [5])
        XCTAssertEqual(try decode(bytes).map(\.payload), [[], [5]])
    }

    func testAbortDropsThePartialMessage() throws {
        var decoder = RTMPChunkDecoder()
        decoder.append(rawChunk(format: 0, csid: 6, timestamp: 0, length: 200, typeID: 9, streamID: 1, payload: [UInt8](repeating: 1, count: 128)))
        XCTAssertEqual(try decoder.nextChunk(), RTMPChunkDecoder.Chunk(message: nil))
        XCTAssertEqual(decoder.bufferedByteCount, 128)
        decoder.abort(chunkStreamID: 6)
        XCTAssertEqual(decoder.bufferedByteCount, 0)
        // After the abort the stream may start a new message with a compressed header.
        decoder.append(rawChunk(format: 2, csid: 6, timestamp: 33, payload: [UInt8](repeating: 2, count: 128)))
        decoder.append(rawChunk(format: 3, csid: 6, payload: [UInt8](repeating: 2, count: 72)))
        XCTAssertNil(try decoder.nextChunk()?.message)
        let message = try decoder.nextChunk()?.message
        XCTAssertEqual(message?.timestamp, 33)
        XCTAssertEqual(message?.payload, [UInt8](repeating: 2, count: 200))
    }

    func testConsumedBytesCountsCompleteChunksOnly() throws {
        var decoder = RTMPChunkDecoder()
        let bytes = rawChunk(format: 0, csid: 6, timestamp: 0, length: 200, typeID: 9, streamID: 1, payload: [UInt8](repeating: 1, count: 128))
        decoder.append(Array(bytes.dropLast()))
        XCTAssertNil(try decoder.nextChunk())
        XCTAssertEqual(decoder.consumedBytes, 0)
        decoder.append([bytes.last!])
        XCTAssertNotNil(try decoder.nextChunk())
        XCTAssertEqual(decoder.consumedBytes, UInt64(bytes.count))
    }

    func testErrors() {
        assertThrows(.noPreviousHeader(chunkStreamID: 3)) { try decode([0xC3, 0x00]) }
        assertThrows(.noPreviousHeader(chunkStreamID: 4)) { try decode(rawChunk(format: 1, csid: 4, length: 1, typeID: 8, payload: [1])) }
        assertThrows(.noPreviousHeader(chunkStreamID: 70)) { try decode(rawChunk(format: 2, csid: 70, payload: [1])) }
        var small = RTMPLimits.default
        small.maxMessageLength = 1_000_000
        assertThrows(.messageTooLarge(1_000_001)) { try decode(rawChunk(format: 0, csid: 4, length: 1_000_001, typeID: 9, payload: []), limits: small) }
        XCTAssertEqual(try decode(rawChunk(format: 0, csid: 4, length: 0xFFFFFF, typeID: 9, payload: [])), [], "the 24-bit maximum fits the default limit")
        var limits = RTMPLimits.default
        limits.maxChunkStreams = 3
        var many: [UInt8] = []
        for csid: UInt32 in 3...6 { many += rawChunk(format: 0, csid: csid, length: 1, typeID: 8, payload: [0]) }
        assertThrows(.tooManyChunkStreams) { try decode(many, limits: limits) }
        let midMessage = rawChunk(format: 0, csid: 6, length: 200, typeID: 9, payload: [UInt8](repeating: 0, count: 128))
            + rawChunk(format: 1, csid: 6, length: 1, typeID: 9, payload: [0])
        assertThrows(.protocolViolation("chunk stream 6 got a type 1 header in the middle of a message")) { try decode(midMessage) }
        var tight = RTMPLimits.default
        tight.maxBufferedMessageBytes = 200
        var partials: [UInt8] = []
        for csid: UInt32 in 4...5 { partials += rawChunk(format: 0, csid: csid, length: 1000, typeID: 9, payload: [UInt8](repeating: 0, count: 128)) }
        assertThrows(.bufferLimitExceeded(200)) { try decode(partials, limits: tight) }
        var decoder = RTMPChunkDecoder()
        assertThrows(.chunkSizeOutOfRange(0)) { try decoder.setChunkSize(0) }
        assertThrows(.chunkSizeOutOfRange(0x8000_0000)) { try decoder.setChunkSize(0x8000_0000) }
        assertThrows(.chunkSizeOutOfRange(16 * 1024 * 1024 + 1)) { try decoder.setChunkSize(16 * 1024 * 1024 + 1) }
    }
}
