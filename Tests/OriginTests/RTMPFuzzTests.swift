import XCTest
@testable import Origin

/// Seeded garbage and mutations of a valid session: no crash, bounded buffering.
final class RTMPFuzzTests: XCTestCase {
    static let limits: RTMPLimits = {
        var l = RTMPLimits.default
        l.maxChunkSize = 64 * 1024
        l.maxMessageLength = 256 * 1024
        l.maxBufferedMessageBytes = 512 * 1024
        return l
    }()

    /// After any receive, held bytes never exceed the partial-message budget plus one
    /// chunk header (18 bytes) plus the handshake packet.
    static let bound = limits.maxBufferedMessageBytes + 18 + 1537

    private func feed(_ input: [UInt8], rng: inout SeededRNG) -> (outcome: String, maxBuffered: Int) {
        var session = RTMPServerSession(limits: Self.limits, randomBytes: countingRandom)
        var maxBuffered = 0
        var i = 0
        while i < input.count {
            let n = min(input.count - i, Int.random(in: 1...512, using: &rng))
            do {
                let events = try session.receive(Array(input[i..<(i + n)]))
                if events.contains(where: { if case .publishRequested = $0 { return true } else { return false } }) {
                    _ = session.acceptPublish()
                }
            } catch {
                XCTAssertEqual(session.failure, error)
                return ("error", maxBuffered)
            }
            maxBuffered = max(maxBuffered, session.bufferedByteCount)
            i += n
        }
        return ("ok", maxBuffered)
    }

    func testRandomBytesAfterHandshake() {
        var rng = SeededRNG(seed: 0x5EED)
        var errors = 0
        for _ in 0..<2000 {
            let garbage = rng.bytes(Int.random(in: 0...2048, using: &rng))
            let result = feed(handshakeC0C1 + handshakeC2 + garbage, rng: &rng)
            XCTAssertLessThanOrEqual(result.maxBuffered, Self.bound)
            if result.outcome == "error" { errors += 1 }
        }
        XCTAssertGreaterThan(errors, 1000, "garbage is mostly rejected")
    }

    func testMutatedValidSessions() throws {
        let valid = RTMPSplitTests.script
        var rng = SeededRNG(seed: 0xF00D)
        var outcomes: [String: Int] = [:]
        for _ in 0..<2000 {
            var input = valid
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                // Mutate only after the handshake, where the interesting parsing is.
                let at = Int.random(in: 3073..<input.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: input[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: input[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 2: input.insert(contentsOf: rng.bytes(Int.random(in: 1...16, using: &rng)), at: at)
                default: input.removeSubrange(at..<min(input.count, at + Int.random(in: 1...16, using: &rng)))
                }
                if input.count <= 3074 { break }
            }
            let result = feed(input, rng: &rng)
            XCTAssertLessThanOrEqual(result.maxBuffered, Self.bound)
            outcomes[result.outcome, default: 0] += 1
        }
        XCTAssertGreaterThan(outcomes["error", default: 0], 0)
        XCTAssertGreaterThan(outcomes["ok", default: 0], 0)
    }

    func testRandomHandshakesAndAMF() {
        var rng = SeededRNG(seed: 7)
        for _ in 0..<1000 {
            var input = rng.bytes(Int.random(in: 0...4000, using: &rng))
            if Bool.random(using: &rng), !input.isEmpty { input[0] = 3 }
            let result = feed(input, rng: &rng)
            XCTAssertLessThanOrEqual(result.maxBuffered, Self.bound)
        }
        for _ in 0..<3000 {
            let bytes = rng.bytes(Int.random(in: 0...64, using: &rng))
            _ = try? AMF0.decode(bytes)
            _ = try? FLVVideoTag.parse(bytes)
            _ = try? FLVAudioTag.parse(bytes)
        }
    }
}
