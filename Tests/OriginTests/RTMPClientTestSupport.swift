import XCTest
@testable import Origin

/// An RTMPClientSession and an RTMPServerSession joined in memory. Bytes go both ways in
/// pieces of seeded random size, so every run replays from its seed.
struct RTMPClientServerLink {
    enum PublishAnswer { case accept, reject(code: String, description: String), none }

    var client: RTMPClientSession
    var server: RTMPServerSession
    var rng: SeededRNG
    var answer: PublishAnswer
    var toServer: [UInt8] = []
    var toClient: [UInt8] = []
    var clientEvents: [RTMPClientEvent] = []
    var serverEvents: [RTMPServerEvent] = []
    /// Largest piece delivered at once; pieces are 1...maxPiece bytes, often very small.
    var maxPiece = 3000

    init(seed: UInt64, app: String = "relay", key: String = "signed-key", answer: PublishAnswer = .accept,
         acknowledgementWindow: UInt32? = nil) {
        rng = SeededRNG(seed: seed)
        let seedCopy = seed
        client = RTMPClientSession(app: app, tcURL: "rtmp://owner.example:1935/\(app)", streamKey: key,
                                   acknowledgementWindow: acknowledgementWindow,
                                   randomBytes: { n in var r = SeededRNG(seed: seedCopy ^ 0xC1); return r.bytes(n) })
        server = RTMPServerSession(randomBytes: countingRandom)
        self.answer = answer
    }

    private mutating func pieceLength(_ available: Int) -> Int {
        let cap: Int
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: cap = 1
        case 1: cap = 17
        case 2: cap = 600
        default: cap = maxPiece
        }
        return Int.random(in: 1...min(available, cap), using: &rng)
    }

    /// Moves bytes both ways until neither side has anything left to say.
    mutating func pump() throws {
        while !toServer.isEmpty || !toClient.isEmpty {
            if !toServer.isEmpty {
                let n = pieceLength(toServer.count)
                let piece = Array(toServer.prefix(n))
                toServer.removeFirst(n)
                for event in try server.receive(piece) {
                    switch event {
                    case .send(let bytes):
                        toClient += bytes
                    case .publishRequested:
                        serverEvents.append(event)
                        switch answer {
                        case .accept: toClient += server.acceptPublish()
                        case .reject(let code, let description): toClient += server.rejectPublish(code: code, description: description)
                        case .none: break
                        }
                    default:
                        serverEvents.append(event)
                    }
                }
            }
            if !toClient.isEmpty {
                let n = pieceLength(toClient.count)
                let piece = Array(toClient.prefix(n))
                toClient.removeFirst(n)
                for event in try client.receive(piece) {
                    if case .send(let bytes) = event { toServer += bytes } else { clientEvents.append(event) }
                }
            }
        }
    }

    /// Handshake through onStatus, pumped to quiescence.
    mutating func connectAndPublish() throws {
        toServer += client.start()
        try pump()
    }
}

/// Decodes what a client wrote: C0+C1 and C2, then chunks at the client's chunk size.
typealias ClientOutputReader = PeerOutputReader

extension PeerOutputReader {
    mutating func feed(_ events: [RTMPClientEvent]) throws -> [RTMPMessage] {
        var all: [RTMPMessage] = []
        for case .send(let bytes) in events { all += try feed(bytes) }
        return all
    }
}

/// A hand-driven server: S0+S1+S2 and chunks built with the plain encoder.
struct FakeServer {
    var encoder = RTMPChunkEncoder()
    static let handshake: [UInt8] = [3] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0x33, count: 1528)
        + [UInt8](repeating: 0x44, count: 1536)

    func control(_ typeID: UInt8, _ payload: [UInt8]) -> [UInt8] {
        encoder.encode(RTMPMessage(typeID: typeID, streamID: 0, timestamp: 0, payload: payload), chunkStreamID: 2)
    }

    func command(_ values: [AMF0Value], streamID: UInt32 = 0) -> [UInt8] {
        encoder.encode(RTMPMessage(typeID: 20, streamID: streamID, timestamp: 0, payload: AMF0.encode(values)), chunkStreamID: 3)
    }
}

func clientNonSend(_ events: [RTMPClientEvent]) -> [RTMPClientEvent] {
    events.filter { if case .send = $0 { return false } else { return true } }
}

/// A client that has sent C0+C1 and received S0+S1+S2 from `FakeServer`.
func handshakenClient(_ limits: RTMPLimits = .default) throws -> (RTMPClientSession, ClientOutputReader, [RTMPMessage]) {
    var client = RTMPClientSession(app: "relay", tcURL: "rtmp://owner/relay", streamKey: "k", limits: limits, randomBytes: countingRandom)
    var reader = ClientOutputReader()
    _ = try reader.feed(client.start())
    let messages = try reader.feed(try client.receive(FakeServer.handshake))
    return (client, reader, messages)
}
