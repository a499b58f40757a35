/// The client side of the plain RTMP handshake (RTMP 1.0 section 5.2).
///
/// ``start(randomBytes:)`` gives C0+C1 (time 0, version field 0, so servers use the simple
/// handshake). Then it reads S0 (must be version 3), S1 and S2. C2 echoes S1, as ffmpeg and
/// librtmp expect. S2 is read but not checked against C1: servers that use the digest
/// handshake send something else there, and librtmp only warns about it.
public struct RTMPClientHandshake: Sendable {
    public enum State: Equatable, Sendable {
        case notStarted
        case waitingForS0
        case waitingForS1
        case waitingForS2
        case done
    }

    public private(set) var state: State = .notStarted
    private var buffer: [UInt8] = []

    public init() {}

    public var bufferedByteCount: Int { buffer.count }

    /// C0 + C1. `randomBytes` fills the 1528 random bytes of C1 (padded or cut to size).
    public mutating func start(randomBytes: (Int) -> [UInt8]) -> [UInt8] {
        guard state == .notStarted else { return [] }
        let size = RTMPHandshake.packetSize - 8
        var random = Array(randomBytes(size).prefix(size))
        random += [UInt8](repeating: 0, count: size - random.count)
        state = .waitingForS0
        return [RTMPHandshake.version, 0, 0, 0, 0, 0, 0, 0, 0] + random
    }

    /// Consumes handshake bytes from `input` starting at `index`, advancing it. Returns C2
    /// once S1 is complete. Stops consuming once S2 is complete (`state == .done`).
    public mutating func consume(_ input: [UInt8], from index: inout Int) throws(RTMPError) -> [UInt8]? {
        var c2: [UInt8]?
        while index < input.count {
            switch state {
            case .notStarted:
                throw .protocolViolation("server sent bytes before the client started the handshake")
            case .waitingForS0:
                guard input[index] == RTMPHandshake.version else { throw .unsupportedVersion(input[index]) }
                index += 1
                state = .waitingForS1
            case .waitingForS1, .waitingForS2:
                let n = min(RTMPHandshake.packetSize - buffer.count, input.count - index)
                buffer.append(contentsOf: input[index..<(index + n)])
                index += n
                guard buffer.count == RTMPHandshake.packetSize else { continue }
                if state == .waitingForS1 {
                    c2 = buffer  // C2 echoes S1
                    state = .waitingForS2
                } else {
                    state = .done
                }
                buffer = []
            case .done:
                return c2
            }
        }
        return c2
    }
}
