/// Everything that can go wrong while parsing RTMP, AMF0 or FLV input.
///
/// A session that throws one of these stays failed: every later `receive` throws the same
/// error, and the host should close the connection.
public enum RTMPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// C0 asked for a protocol version other than 3 (6 is the encrypted RTMPE variant).
    case unsupportedVersion(UInt8)
    /// Set Chunk Size announced 0, a value with the reserved top bit, or more than the limit.
    case chunkSizeOutOfRange(UInt32)
    /// A chunk header declared a message longer than `RTMPLimits.maxMessageLength`.
    case messageTooLarge(Int)
    /// Before a publish was accepted, a chunk header declared a message longer than
    /// `RTMPLimits.maxMessageLengthBeforePublish`. Refused on the header, before its bytes.
    case messageTooLargeBeforePublish(length: Int, limit: Int)
    /// Decoding an AMF0 command or data message would take more memory than its budget
    /// (far more values than a real client sends: a hostile or broken peer).
    case amfTooLarge(inputBytes: Int, budget: Int)
    /// More chunk stream ids are in use than `RTMPLimits.maxChunkStreams` allows.
    case tooManyChunkStreams
    /// A chunk of header type 1, 2 or 3 arrived on a chunk stream that never had a type 0 header.
    case noPreviousHeader(chunkStreamID: UInt32)
    /// Partially received messages would hold more than `RTMPLimits.maxBufferedMessageBytes`.
    case bufferLimitExceeded(Int)
    /// An AMF0 value could not be decoded (truncated, unknown marker, too deep, ...).
    case malformedAMF(String)
    /// An FLV audio or video tag body is too short or inconsistent.
    case malformedFLVTag(String)
    /// The peer broke the protocol in another way (short control message, bad command, ...).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .unsupportedVersion(let v):
            return "unsupported RTMP version \(v) in C0 (only plain RTMP version 3 is supported; RTMPE/RTMPS must be terminated elsewhere)"
        case .chunkSizeOutOfRange(let size):
            return "peer announced chunk size \(size), outside 1...limit"
        case .messageTooLarge(let length):
            return "peer declared a message of \(length) bytes, more than the configured limit"
        case .messageTooLargeBeforePublish(let length, let limit):
            return "peer declared a message of \(length) bytes before its publish was accepted; at most \(limit) bytes are allowed until the stream key is checked"
        case .amfTooLarge(let input, let budget):
            return "AMF0 message of \(input) bytes would decode to more than \(budget) bytes of values (too many values for a command or metadata)"
        case .tooManyChunkStreams:
            return "peer opened more chunk streams than the configured limit"
        case .noPreviousHeader(let csid):
            return "chunk stream \(csid) continued a header it never sent (first chunk must use header type 0)"
        case .bufferLimitExceeded(let limit):
            return "partially received messages exceed the \(limit)-byte buffer limit"
        case .malformedAMF(let why):
            return "malformed AMF0: \(why)"
        case .malformedFLVTag(let why):
            return "malformed FLV tag: \(why)"
        case .protocolViolation(let why):
            return "RTMP protocol violation: \(why)"
        }
    }
}
