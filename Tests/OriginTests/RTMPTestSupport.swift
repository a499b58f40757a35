import XCTest
@testable import Origin

/// SplitMix64: a tiny deterministic generator so every fuzz run replays from its seed.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) } }
}

/// S1 filler used by tests: 0, 1, 2, ... so S1 is predictable.
let countingRandom: @Sendable (Int) -> [UInt8] = { n in (0..<n).map { UInt8(truncatingIfNeeded: $0) } }

func makeSession(_ limits: RTMPLimits = .default) -> RTMPServerSession {
    RTMPServerSession(limits: limits, randomBytes: countingRandom)
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
func be24(_ v: UInt32) -> [UInt8] { [UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }

/// Builds one chunk by hand: basic header, message header of `format`, optional extended
/// timestamp, payload. Fields not used by the format are ignored.
func rawChunk(format: UInt8, csid: UInt32, timestamp: UInt32 = 0, length: Int = 0, typeID: UInt8 = 0,
              streamID: UInt32 = 0, extendedTimestamp: UInt32? = nil, payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    if csid < 64 {
        out.append(format << 6 | UInt8(csid))
    } else if csid < 320 {
        out += [format << 6, UInt8(csid - 64)]
    } else {
        out += [format << 6 | 1, UInt8((csid - 64) & 0xFF), UInt8((csid - 64) >> 8)]
    }
    let field = extendedTimestamp != nil ? 0xFFFFFF : timestamp
    switch format {
    case 0: out += be24(field) + be24(UInt32(length)) + [typeID] + le32(streamID)
    case 1: out += be24(field) + be24(UInt32(length)) + [typeID]
    case 2: out += be24(field)
    default: break
    }
    if let ext = extendedTimestamp { out += be32(ext) }
    return out + payload
}

let c1Bytes: [UInt8] = (0..<1536).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
let handshakeC0C1: [UInt8] = [3] + c1Bytes
let handshakeC2: [UInt8] = [UInt8](repeating: 0x5A, count: 1536)

/// A publishing client that encodes messages the way ffmpeg does (type 0 then type 3).
struct RTMPTestClient {
    var encoder = RTMPChunkEncoder(chunkSize: 128)
    var transaction = 1.0

    mutating func command(_ name: String, _ args: [AMF0Value], streamID: UInt32 = 0, csid: UInt32 = 3, typeID: UInt8 = 20) -> [UInt8] {
        let txn: AMF0Value = .number(transaction)
        transaction += 1
        var payload = AMF0.encode([.string(name), txn] + args)
        if typeID == 17 { payload = [0] + payload }
        return encoder.encode(RTMPMessage(typeID: typeID, streamID: streamID, timestamp: 0, payload: payload), chunkStreamID: csid)
    }

    mutating func connect(app: String = "live", tcURL: String = "rtmp://127.0.0.1/live") -> [UInt8] {
        command("connect", [.object([
            AMF0Property("app", .string(app)), AMF0Property("type", .string("nonprivate")),
            AMF0Property("flashVer", .string("FMLE/3.0 (compatible; FMSc/1.0)")),
            AMF0Property("tcUrl", .string(tcURL)),
        ])])
    }

    mutating func setChunkSize(_ size: UInt32) -> [UInt8] {
        let out = encoder.encode(RTMPMessage(typeID: 1, streamID: 0, timestamp: 0, payload: be32(size)), chunkStreamID: 2)
        encoder.chunkSize = Int(size)
        return out
    }

    func control(_ typeID: UInt8, _ payload: [UInt8]) -> [UInt8] {
        encoder.encode(RTMPMessage(typeID: typeID, streamID: 0, timestamp: 0, payload: payload), chunkStreamID: 2)
    }

    func media(_ typeID: UInt8, timestamp: UInt32, _ payload: [UInt8], csid: UInt32? = nil) -> [UInt8] {
        encoder.encode(RTMPMessage(typeID: typeID, streamID: 1, timestamp: timestamp, payload: payload),
                       chunkStreamID: csid ?? (typeID == 8 ? 4 : 6))
    }

    func metadata(_ props: [AMF0Property]) -> [UInt8] {
        let payload = AMF0.encode([.string("@setDataFrame"), .string("onMetaData"), .ecmaArray(props)])
        return encoder.encode(RTMPMessage(typeID: 18, streamID: 1, timestamp: 0, payload: payload), chunkStreamID: 4)
    }

    /// Everything a publisher sends up to and including `publish`.
    mutating func publishPreamble(key: String = "testkey") -> [UInt8] {
        var out = connect()
        out += command("releaseStream", [.null, .string(key)])
        out += command("FCPublish", [.null, .string(key)])
        out += command("createStream", [.null])
        out += command("publish", [.null, .string(key), .string("live")], streamID: 1, csid: 8)
        return out
    }
}

/// Reads what one side sent: skips its handshake (S0+S1+S2 or C0+C1+C2, the same length)
/// and decodes chunks, following that side's own Set Chunk Size.
typealias ServerOutputReader = PeerOutputReader

struct PeerOutputReader {
    var handshakeLeft = 1 + 2 * 1536
    var decoder = RTMPChunkDecoder()

    mutating func feed(_ bytes: [UInt8]) throws -> [RTMPMessage] {
        var rest = bytes[...]
        let skip = min(handshakeLeft, rest.count)
        handshakeLeft -= skip
        rest = rest.dropFirst(skip)
        decoder.append(rest)
        var messages: [RTMPMessage] = []
        while let chunk = try decoder.nextChunk() {
            if let m = chunk.message {
                if m.typeID == 1 { try decoder.setChunkSize(UInt32(m.payload[0]) << 24 | UInt32(m.payload[1]) << 16 | UInt32(m.payload[2]) << 8 | UInt32(m.payload[3])) }
                messages.append(m)
            }
        }
        return messages
    }

    mutating func feed(_ events: [RTMPServerEvent]) throws -> [RTMPMessage] {
        var all: [RTMPMessage] = []
        for case .send(let bytes) in events { all += try feed(bytes) }
        return all
    }
}

extension RTMPMessage {
    var amf: [AMF0Value] { (try? AMF0.decode(typeID == 17 ? Array(payload.dropFirst()) : payload)) ?? [] }
}

func sends(_ events: [RTMPServerEvent]) -> [UInt8] {
    var out: [UInt8] = []
    for case .send(let b) in events { out += b }
    return out
}

func nonSend(_ events: [RTMPServerEvent]) -> [RTMPServerEvent] {
    events.filter { if case .send = $0 { return false } else { return true } }
}

/// Asserts that `body` throws exactly `expected`.
func assertThrows<T>(_ expected: RTMPError, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected \(expected), nothing thrown", file: file, line: line)
    } catch let error as RTMPError {
        XCTAssertEqual(error, expected, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
