/// Reassembles RTMP messages from the chunk stream (RTMP 1.0 section 5.3).
///
/// Accepts any split of the input. Headers (at most 18 bytes) are parsed only once they
/// are complete; payload bytes are moved into the message being assembled as they arrive,
/// so nothing is buffered twice. Extended timestamps follow what ffmpeg and librtmp send:
/// a type-3 chunk on a chunk stream whose last header had an extended timestamp carries the
/// 4-byte extended timestamp again. A type-3 chunk that starts a new message reuses the
/// previous header's timestamp field as its delta.
///
/// A decoder made with `peerTrusted: false` applies the small `...BeforePublish` bounds of
/// its limits until ``trustPeer()``: a longer message is refused as soon as its header is
/// parsed, before any of its payload is held, and the chunk size the peer sets cannot make
/// it hold more (payload moves into the message as it arrives; a chunk is never buffered whole).
public struct RTMPChunkDecoder: Sendable {
    /// What the decoder produces at each chunk boundary.
    public struct Chunk: Equatable, Sendable {
        /// The message this chunk completed, if any.
        public var message: RTMPMessage?
    }

    private struct ChunkStream: Sendable {
        var timestamp: UInt32 = 0
        /// The timestamp field of the last type 0/1/2 header (absolute for type 0, else delta).
        var timestampField: UInt32 = 0
        var hasExtendedTimestamp = false
        var messageLength = 0
        var typeID: UInt8 = 0
        var streamID: UInt32 = 0
        var payload: [UInt8] = []
    }

    public let limits: RTMPLimits
    /// The peer's chunk size, changed by Set Chunk Size. Starts at 128.
    public private(set) var chunkSize: Int = 128
    /// Bytes of complete chunks consumed so far.
    public private(set) var consumedBytes: UInt64 = 0

    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var streams: [UInt32: ChunkStream] = [:]
    /// Chunk stream and payload bytes left of the chunk being read, once its header is parsed.
    private var current: (csid: UInt32, remaining: Int, size: Int)?
    private var partialMessageBytes = 0

    /// False until ``trustPeer()`` when made untrusted: the before-publish bounds apply.
    public private(set) var isPeerTrusted: Bool

    public init(limits: RTMPLimits = .default, peerTrusted: Bool = true) {
        self.limits = limits
        self.isPeerTrusted = peerTrusted
    }

    /// Lifts the before-publish bounds: from the next chunk header on, the full limits apply.
    public mutating func trustPeer() {
        isPeerTrusted = true
    }

    /// The largest total of partially received message bytes allowed now.
    public var bufferedMessageByteLimit: Int {
        isPeerTrusted ? limits.maxBufferedMessageBytes
            : min(limits.maxBufferedMessageBytes, limits.maxBufferedMessageBytesBeforePublish)
    }

    /// Bytes held: unparsed input plus partially assembled messages.
    public var bufferedByteCount: Int { buffer.count - readIndex + partialMessageBytes }

    /// Number of chunk stream ids with state.
    public var chunkStreamCount: Int { streams.count }

    public mutating func append(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: ArraySlice<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// Applies a Set Chunk Size from the peer. Throws if 0, top bit set, or above the limit.
    public mutating func setChunkSize(_ size: UInt32) throws(RTMPError) {
        guard size >= 1, size <= 0x7FFF_FFFF, size <= limits.maxChunkSize else {
            throw .chunkSizeOutOfRange(size)
        }
        chunkSize = Int(size)
    }

    /// Drops the partially received message on `csid` (Abort message).
    public mutating func abort(chunkStreamID csid: UInt32) {
        guard var stream = streams[csid], !stream.payload.isEmpty else { return }
        if current?.csid == csid { return }  // cannot happen at a chunk boundary; be safe
        partialMessageBytes -= stream.payload.count
        stream.payload = []
        streams[csid] = stream
    }

    /// Parses input until one chunk is complete. Returns nil when more bytes are needed.
    public mutating func nextChunk() throws(RTMPError) -> Chunk? {
        defer { compact() }
        while true {
            if let cur = current {
                let available = buffer.count - readIndex
                guard available > 0 else { return nil }
                let n = min(available, cur.remaining)
                streams[cur.csid]!.payload.append(contentsOf: buffer[readIndex..<(readIndex + n)])
                readIndex += n
                partialMessageBytes += n
                if n < cur.remaining {
                    current = (cur.csid, cur.remaining - n, cur.size)
                    return nil
                }
                current = nil
                consumedBytes += UInt64(cur.size)
                return Chunk(message: completeMessageIfDone(csid: cur.csid))
            }
            guard let headerSize = try parseHeader() else { return nil }
            if let (csid, remaining) = current.map({ ($0.csid, $0.remaining) }), remaining == 0 {
                // Zero-length message: complete with its header alone.
                current = nil
                consumedBytes += UInt64(headerSize)
                return Chunk(message: completeMessageIfDone(csid: csid))
            }
        }
    }

    private mutating func completeMessageIfDone(csid: UInt32) -> RTMPMessage? {
        guard var stream = streams[csid], stream.payload.count >= stream.messageLength else { return nil }
        let message = RTMPMessage(
            typeID: stream.typeID, streamID: stream.streamID,
            timestamp: stream.timestamp, payload: stream.payload)
        partialMessageBytes -= stream.payload.count
        stream.payload = []
        streams[csid] = stream
        return message
    }

    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65536)
            readIndex = 0
        } else if readIndex > 4096, readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }

    private func byte(_ offset: Int) -> UInt32 { UInt32(buffer[readIndex + offset]) }

    private func uint24(_ offset: Int) -> UInt32 { byte(offset) << 16 | byte(offset + 1) << 8 | byte(offset + 2) }

    private func uint32(_ offset: Int) -> UInt32 { byte(offset) << 24 | uint24(offset + 1) }

    /// Parses one chunk header if it is complete, commits it, and sets `current`.
    /// Returns the header size, or nil (consuming nothing) when more bytes are needed.
    private mutating func parseHeader() throws(RTMPError) -> Int? {
        let available = buffer.count - readIndex
        guard available >= 1 else { return nil }
        let format = Int(buffer[readIndex] >> 6)
        var csid = byte(0) & 0x3F
        var offset = 1
        if csid == 0 {
            guard available >= 2 else { return nil }
            csid = 64 + byte(1)
            offset = 2
        } else if csid == 1 {
            guard available >= 3 else { return nil }
            csid = 64 + byte(1) + byte(2) * 256
            offset = 3
        }
        let messageHeaderSize = [11, 7, 3, 0][format]
        guard available >= offset + messageHeaderSize else { return nil }

        let existing = streams[csid]
        if existing == nil {
            guard format == 0 else { throw .noPreviousHeader(chunkStreamID: csid) }
            guard streams.count < limits.maxChunkStreams else { throw .tooManyChunkStreams }
        }
        var stream = existing ?? ChunkStream()
        let inProgress = !stream.payload.isEmpty
        if inProgress && format != 3 {
            throw .protocolViolation("chunk stream \(csid) got a type \(format) header in the middle of a message")
        }

        var field: UInt32 = 0
        if format <= 2 { field = uint24(offset) }
        let extended = format <= 2 ? field == 0xFFFFFF : stream.hasExtendedTimestamp
        let headerSize = offset + messageHeaderSize + (extended ? 4 : 0)
        guard available >= headerSize else { return nil }
        if extended { field = uint32(offset + messageHeaderSize) }

        switch format {
        case 0, 1:
            let length = Int(uint24(offset + 3))
            guard length <= limits.maxMessageLength else { throw .messageTooLarge(length) }
            if !isPeerTrusted, length > limits.maxMessageLengthBeforePublish {
                throw .messageTooLargeBeforePublish(length: length, limit: limits.maxMessageLengthBeforePublish)
            }
            stream.messageLength = length
            stream.typeID = buffer[readIndex + offset + 6]
            if format == 0 {
                stream.streamID = byte(offset + 7) | byte(offset + 8) << 8 | byte(offset + 9) << 16 | byte(offset + 10) << 24
                stream.timestamp = field
            } else {
                stream.timestamp &+= field
            }
            stream.timestampField = field
            stream.hasExtendedTimestamp = extended
        case 2:
            stream.timestamp &+= field
            stream.timestampField = field
            stream.hasExtendedTimestamp = extended
        default:
            if !inProgress {
                if extended { stream.timestampField = field }
                stream.timestamp &+= stream.timestampField
            }
        }

        let remainingInMessage = stream.messageLength - stream.payload.count
        let chunkPayload = min(chunkSize, remainingInMessage)
        let bufferLimit = bufferedMessageByteLimit
        if partialMessageBytes + chunkPayload > bufferLimit {
            throw .bufferLimitExceeded(bufferLimit)
        }
        streams[csid] = stream
        readIndex += headerSize
        current = (csid, chunkPayload, headerSize + chunkPayload)
        return headerSize
    }
}
