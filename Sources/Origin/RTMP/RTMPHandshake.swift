/// The server side of the plain RTMP handshake (RTMP 1.0 section 5.2).
///
/// Waits for C0+C1, answers S0+S1+S2, then waits for C2. S1 carries a zero time and a zero
/// version field, so Flash-style clients (ffmpeg, librtmp/OBS) fall back to the simple
/// handshake; S2 echoes C1, which is what both check for.
public struct RTMPHandshake: Sendable {
    public static let version: UInt8 = 3
    public static let packetSize = 1536

    public enum State: Equatable, Sendable {
        case waitingForC0C1
        case waitingForC2
        case done
    }

    public private(set) var state: State = .waitingForC0C1
    private var buffer: [UInt8] = []

    public init() {}

    public var bufferedByteCount: Int { buffer.count }

    /// Consumes handshake bytes from `input` starting at `index`, advancing it.
    /// Returns S0+S1+S2 once C0+C1 are complete; throws on a C0 version other than 3.
    public mutating func consume(
        _ input: [UInt8], from index: inout Int, randomBytes: (Int) -> [UInt8]
    ) throws(RTMPError) -> [UInt8]? {
        switch state {
        case .waitingForC0C1:
            if buffer.isEmpty, index < input.count, input[index] != Self.version {
                throw .unsupportedVersion(input[index])
            }
            let needed = 1 + Self.packetSize - buffer.count
            let n = min(needed, input.count - index)
            buffer.append(contentsOf: input[index..<(index + n)])
            index += n
            guard buffer.count == 1 + Self.packetSize else { return nil }
            let c1 = buffer[1...]
            var random = randomBytes(Self.packetSize - 8)
            if random.count != Self.packetSize - 8 {
                random = Array(random.prefix(Self.packetSize - 8))
                random += [UInt8](repeating: 0, count: Self.packetSize - 8 - random.count)
            }
            var out: [UInt8] = [Self.version]
            out.reserveCapacity(1 + 2 * Self.packetSize)
            out += [0, 0, 0, 0, 0, 0, 0, 0]  // S1: time 0, version field 0 (simple handshake)
            out += random
            out += c1  // S2 echoes C1
            buffer = []
            state = .waitingForC2
            return out
        case .waitingForC2:
            let n = min(Self.packetSize - buffer.count, input.count - index)
            buffer.append(contentsOf: input[index..<(index + n)])
            index += n
            if buffer.count == Self.packetSize {
                buffer = []  // C2 content is not checked: many clients send garbage here
                state = .done
            }
            return nil
        case .done:
            return nil
        }
    }
}
