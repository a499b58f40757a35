// RTMP ingest core (Sources/Origin/RTMP): a pure, I/O-free RTMP server session, the chunk
// stream codec, AMF0 and FLV tag parsing. It owns no socket, no clock and no randomness:
// a SwiftNIO shell feeds bytes in and writes out what it gets back. Nothing here may do
// I/O or depend on a package outside the standard library and Foundation.

/// Bounds that keep a hostile or broken peer from growing memory without limit.
///
/// Every value is checked while parsing; exceeding one throws a typed ``RTMPError`` and
/// leaves the session failed, so the host closes the connection.
///
/// Two tiers: until the host accepts a publish (it has checked the stream key) the peer is
/// anonymous and the small `...BeforePublish` bounds apply, so a connection that never
/// authenticates costs at most tens of KB. Once a publish is accepted, the larger bounds
/// for media apply.
public struct RTMPLimits: Sendable, Equatable {
    /// Largest chunk size a peer may announce with Set Chunk Size. Larger is an error.
    public var maxChunkSize: UInt32
    /// Largest message length a chunk header may declare.
    public var maxMessageLength: Int
    /// Largest number of chunk stream ids that may be in use on one connection.
    public var maxChunkStreams: Int
    /// Deepest nesting of AMF objects and arrays accepted in a command or data message.
    public var maxAMFDepth: Int
    /// Largest total of partially received message bytes held across all chunk streams.
    public var maxBufferedMessageBytes: Int
    /// Largest message length a chunk header may declare before a publish is accepted
    /// (commands, data, control and media alike). Refused as soon as the header is read,
    /// before any of its bytes are held. ffmpeg's and OBS's `connect` are a few hundred bytes.
    public var maxMessageLengthBeforePublish: Int
    /// Largest total of partially received message bytes before a publish is accepted.
    public var maxBufferedMessageBytesBeforePublish: Int
    /// Most memory (estimated, in bytes) the decoded values of one AMF0 command or data
    /// message may take, on top of ``AMF0``'s own budget proportional to the input.
    public var maxAMFDecodedBytes: Int

    public init(
        maxChunkSize: UInt32 = 16 * 1024 * 1024,
        maxMessageLength: Int = 16 * 1024 * 1024,
        maxChunkStreams: Int = 64,
        maxAMFDepth: Int = 16,
        maxBufferedMessageBytes: Int = 32 * 1024 * 1024,
        maxMessageLengthBeforePublish: Int = 64 * 1024,
        maxBufferedMessageBytesBeforePublish: Int = 128 * 1024,
        maxAMFDecodedBytes: Int = 1024 * 1024
    ) {
        self.maxChunkSize = maxChunkSize
        self.maxMessageLength = maxMessageLength
        self.maxChunkStreams = maxChunkStreams
        self.maxAMFDepth = maxAMFDepth
        self.maxBufferedMessageBytes = maxBufferedMessageBytes
        self.maxMessageLengthBeforePublish = maxMessageLengthBeforePublish
        self.maxBufferedMessageBytesBeforePublish = maxBufferedMessageBytesBeforePublish
        self.maxAMFDecodedBytes = maxAMFDecodedBytes
    }

    /// 16 MiB chunks and messages, 64 chunk streams, AMF depth 16, 32 MiB of partial messages;
    /// before a publish is accepted, 64 KiB messages and 128 KiB of partial messages; 1 MiB
    /// of decoded AMF per message.
    public static let `default` = RTMPLimits()
}
