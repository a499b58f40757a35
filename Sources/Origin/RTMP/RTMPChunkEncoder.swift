/// Splits outgoing messages into chunks (RTMP 1.0 section 5.3).
///
/// Every message starts with a type-0 header and continues with type-3 chunks; this is
/// always valid and keeps the encoder stateless apart from the chunk size. Timestamps at or
/// above 0xFFFFFF use the extended field, repeated on every type-3 chunk as ffmpeg and
/// librtmp expect.
public struct RTMPChunkEncoder: Sendable {
    /// Our outgoing chunk size. Change it only right after sending Set Chunk Size.
    public var chunkSize: Int

    public init(chunkSize: Int = 128) {
        self.chunkSize = max(1, chunkSize)
    }

    /// Encodes `message` on chunk stream `csid` (2...65599), appending to `out`.
    public func encode(_ message: RTMPMessage, chunkStreamID csid: UInt32, into out: inout [UInt8]) {
        let extended = message.timestamp >= 0xFFFFFF
        let field = extended ? 0xFFFFFF : message.timestamp
        Self.appendBasicHeader(format: 0, csid: csid, to: &out)
        Self.appendUInt24(field, to: &out)
        Self.appendUInt24(UInt32(truncatingIfNeeded: message.payload.count), to: &out)
        out.append(message.typeID)
        let sid = message.streamID
        out.append(contentsOf: [UInt8(sid & 0xFF), UInt8((sid >> 8) & 0xFF), UInt8((sid >> 16) & 0xFF), UInt8(sid >> 24)])
        if extended { Self.appendUInt32(message.timestamp, to: &out) }

        var index = 0
        repeat {
            if index > 0 {
                Self.appendBasicHeader(format: 3, csid: csid, to: &out)
                if extended { Self.appendUInt32(message.timestamp, to: &out) }
            }
            let end = min(index + chunkSize, message.payload.count)
            out.append(contentsOf: message.payload[index..<end])
            index = end
        } while index < message.payload.count
    }

    public func encode(_ message: RTMPMessage, chunkStreamID csid: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, chunkStreamID: csid, into: &out)
        return out
    }

    static func appendBasicHeader(format: UInt8, csid: UInt32, to out: inout [UInt8]) {
        if csid < 64 {
            out.append(format << 6 | UInt8(csid))
        } else if csid < 320 {
            out.append(format << 6)
            out.append(UInt8(csid - 64))
        } else {
            out.append(format << 6 | 1)
            out.append(UInt8((csid - 64) & 0xFF))
            out.append(UInt8(((csid - 64) >> 8) & 0xFF))
        }
    }

    static func appendUInt24(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8((v >> 16) & 0xFF))
        out.append(UInt8((v >> 8) & 0xFF))
        out.append(UInt8(v & 0xFF))
    }

    static func appendUInt32(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(v >> 24))
        appendUInt24(v, to: &out)
    }
}
