/// Splits outgoing messages into chunks with per-chunk-stream header compression
/// (RTMP 1.0 section 5.3.1.2), for a long-lived publisher where header bytes add up.
///
/// The first message on a chunk stream, a message for another message stream id, and a
/// message whose timestamp is lower than the previous one on that chunk stream (a wrap or a
/// replay) get a type-0 header with the absolute timestamp. Every other message gets a
/// type-1 header carrying the timestamp delta, length and type id. Type-2 and type-3
/// headers are never used to start a message, so every decoder reads the same timestamps.
/// Fields (absolute or delta) at or above 0xFFFFFF use the extended timestamp, repeated on
/// every type-3 continuation chunk as ffmpeg and librtmp expect.
public struct RTMPCompressingChunkEncoder: Sendable {
    private struct Previous: Sendable {
        var streamID: UInt32
        var timestamp: UInt32
    }

    /// Our outgoing chunk size. Change it only right after sending Set Chunk Size.
    public var chunkSize: Int {
        didSet { chunkSize = max(1, chunkSize) }
    }

    private var previous: [UInt32: Previous] = [:]

    public init(chunkSize: Int = 128) {
        self.chunkSize = max(1, chunkSize)
    }

    /// Encodes `message` on chunk stream `csid` (2...65599), appending to `out`.
    public mutating func encode(_ message: RTMPMessage, chunkStreamID csid: UInt32, into out: inout [UInt8]) {
        let format: UInt8
        let field: UInt32
        if let last = previous[csid], last.streamID == message.streamID, message.timestamp >= last.timestamp {
            format = 1
            field = message.timestamp - last.timestamp
        } else {
            format = 0
            field = message.timestamp
        }
        previous[csid] = Previous(streamID: message.streamID, timestamp: message.timestamp)
        let extended = field >= 0xFFFFFF
        RTMPChunkEncoder.appendBasicHeader(format: format, csid: csid, to: &out)
        RTMPChunkEncoder.appendUInt24(extended ? 0xFFFFFF : field, to: &out)
        RTMPChunkEncoder.appendUInt24(UInt32(truncatingIfNeeded: message.payload.count), to: &out)
        out.append(message.typeID)
        if format == 0 {
            let sid = message.streamID
            out.append(contentsOf: [UInt8(sid & 0xFF), UInt8((sid >> 8) & 0xFF), UInt8((sid >> 16) & 0xFF), UInt8(sid >> 24)])
        }
        if extended { RTMPChunkEncoder.appendUInt32(field, to: &out) }

        var index = 0
        repeat {
            if index > 0 {
                RTMPChunkEncoder.appendBasicHeader(format: 3, csid: csid, to: &out)
                if extended { RTMPChunkEncoder.appendUInt32(field, to: &out) }
            }
            let end = min(index + chunkSize, message.payload.count)
            out.append(contentsOf: message.payload[index..<end])
            index = end
        } while index < message.payload.count
    }

    public mutating func encode(_ message: RTMPMessage, chunkStreamID csid: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, chunkStreamID: csid, into: &out)
        return out
    }
}
