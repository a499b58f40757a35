/// The protocol control both ends of an RTMP connection speak (RTMP 1.0 sections 5.4 and
/// 6.2): Set Chunk Size, Abort, Acknowledgement, User Control, Window Acknowledgement Size
/// and Set Peer Bandwidth, plus acknowledging received bytes once the peer's window is reached.
/// ``RTMPServerSession`` and ``RTMPClientSession`` each embed one.
///
/// A value type without I/O. It returns the control messages to send rather than bytes: the
/// session chunks them with its own encoder (the client's compresses headers per chunk
/// stream, so its output depends on what was sent before on chunk stream 2). Set Chunk Size
/// and Abort act on the session's ``RTMPChunkDecoder``, passed in; so the before-publish
/// bounds of a restricted decoder keep applying (a Set Chunk Size never lets it hold more).
public struct RTMPProtocolControl: Sendable {
    /// The chunk stream protocol control and User Control messages travel on, always on
    /// message stream 0 (RTMP 1.0 section 5.4).
    public static let chunkStreamID: UInt32 = 2

    /// A User Control event the peer sent (RTMP 1.0 section 7.1.7).
    public enum UserControlEvent: Equatable, Sendable {
        /// Ping Request (event type 6) with the peer's timestamp; answered with a Ping Response.
        case pingRequest(timestamp: UInt32)
        /// Any other event (Stream Begin 0, Stream EOF 1, Set Buffer Length 3, Ping Response
        /// 7, ...) with its event data as received. None needs an answer, so none is parsed
        /// further and a short one is no error.
        case other(eventType: UInt16, data: [UInt8])
    }

    /// What handling one protocol control message produced.
    public struct Outcome: Equatable, Sendable {
        /// A control message to send back on ``RTMPProtocolControl/chunkStreamID``, if any.
        public var reply: RTMPMessage?
        /// The User Control event the message carried, if it was one.
        public var userControlEvent: UserControlEvent?
        /// An Acknowledgement's sequence number: the bytes the peer has received (mod 2^32).
        public var acknowledged: UInt32?
    }

    /// Whether a Set Peer Bandwidth is answered with our Window Acknowledgement Size when the
    /// window differs from the one last sent (RTMP 1.0 section 5.4.5). The client does; the
    /// server announces its own window after `connect` and only records what a publisher sets.
    public let answersSetPeerBandwidth: Bool
    /// The peer's Window Acknowledgement Size; 0 until it sends one (then we acknowledge).
    public private(set) var peerWindowAcknowledgementSize: UInt32 = 0
    /// The peer's Set Peer Bandwidth (window, limit type), if it sent one.
    public private(set) var peerBandwidth: (window: UInt32, limitType: UInt8)?
    /// The byte count carried by the last Acknowledgement sent.
    private var lastAcknowledged: UInt64 = 0
    /// The window sent in answer to the last Set Peer Bandwidth (or announced).
    private var sentWindowAcknowledgementSize: UInt32?
    /// A window of our own, asked for whatever the peer's Set Peer Bandwidth says: a relay wants
    /// to hear often how much its origin has received.
    public let ownWindow: UInt32?

    public init(answersSetPeerBandwidth: Bool, ownWindow: UInt32? = nil) {
        self.answersSetPeerBandwidth = answersSetPeerBandwidth
        self.ownWindow = ownWindow
    }

    /// Window Acknowledgement Size with `ownWindow`, to send once connected; nil without one.
    public mutating func announceOwnWindow() -> RTMPMessage? {
        guard let ownWindow else { return nil }
        sentWindowAcknowledgementSize = ownWindow
        return Self.windowAcknowledgementSize(ownWindow)
    }

    /// An Acknowledgement of `received` bytes (counted from the first handshake byte) when
    /// the bytes since the last one reach the peer's window, else nil. Call it at every chunk
    /// boundary, before the chunk's message is handled, so the output does not depend on how
    /// the input was split.
    public mutating func acknowledgement(received: UInt64) -> RTMPMessage? {
        let window = UInt64(peerWindowAcknowledgementSize)
        guard window > 0 else { return nil }
        guard received - lastAcknowledged >= window else { return nil }
        lastAcknowledged = received
        return Self.acknowledgement(UInt32(truncatingIfNeeded: received))
    }

    /// Handles `message` if it is a protocol control or User Control message (types 1 to 6)
    /// and returns what it produced; returns nil for any other message, which is the
    /// session's. Set Chunk Size and Abort are applied to `decoder`. Throws on a message too
    /// short for its type, or a chunk size `decoder` refuses.
    public mutating func handle(_ message: RTMPMessage, decoder: inout RTMPChunkDecoder) throws(RTMPError) -> Outcome? {
        let payload = message.payload
        var outcome = Outcome()
        switch message.typeID {
        case RTMPMessage.TypeID.setChunkSize:
            try decoder.setChunkSize(try Self.uint32(payload, "Set Chunk Size"))
        case RTMPMessage.TypeID.abort:
            decoder.abort(chunkStreamID: try Self.uint32(payload, "Abort"))
        case RTMPMessage.TypeID.acknowledgement:
            outcome.acknowledged = try Self.uint32(payload, "Acknowledgement")
        case RTMPMessage.TypeID.userControl:
            guard payload.count >= 2 else {
                throw .protocolViolation("User Control message has \(payload.count) bytes, expected at least 2")
            }
            let eventType = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard eventType == 6 else {
                outcome.userControlEvent = .other(eventType: eventType, data: Array(payload.dropFirst(2)))
                break
            }
            let timestamp = try Self.uint32(Array(payload.dropFirst(2)), "Ping Request")
            outcome.userControlEvent = .pingRequest(timestamp: timestamp)
            outcome.reply = Self.userControl(eventType: 7, timestamp)
        case RTMPMessage.TypeID.windowAcknowledgementSize:
            peerWindowAcknowledgementSize = try Self.uint32(payload, "Window Acknowledgement Size")
        case RTMPMessage.TypeID.setPeerBandwidth:
            guard payload.count >= 5 else {
                throw .protocolViolation("Set Peer Bandwidth has \(payload.count) bytes, expected 5")
            }
            let window = try Self.uint32(payload, "Set Peer Bandwidth")
            peerBandwidth = (window, payload[4])
            let wanted = ownWindow ?? window
            if answersSetPeerBandwidth, wanted > 0, wanted != sentWindowAcknowledgementSize {
                sentWindowAcknowledgementSize = wanted
                outcome.reply = Self.windowAcknowledgementSize(wanted)
            }
        default:
            return nil
        }
        return outcome
    }

    // MARK: - Messages to send

    /// Set Chunk Size: our outgoing chunk size from now on.
    public static func setChunkSize(_ size: UInt32) -> RTMPMessage {
        message(RTMPMessage.TypeID.setChunkSize, bigEndian(size))
    }

    /// Acknowledgement of `sequenceNumber` bytes received.
    public static func acknowledgement(_ sequenceNumber: UInt32) -> RTMPMessage {
        message(RTMPMessage.TypeID.acknowledgement, bigEndian(sequenceNumber))
    }

    /// Window Acknowledgement Size: how many bytes we receive before we expect an Acknowledgement.
    public static func windowAcknowledgementSize(_ window: UInt32) -> RTMPMessage {
        message(RTMPMessage.TypeID.windowAcknowledgementSize, bigEndian(window))
    }

    /// Set Peer Bandwidth with `limitType` (0 hard, 1 soft, 2 dynamic).
    public static func setPeerBandwidth(_ window: UInt32, limitType: UInt8) -> RTMPMessage {
        message(RTMPMessage.TypeID.setPeerBandwidth, bigEndian(window) + [limitType])
    }

    /// User Control Stream Begin (event type 0) for message stream `streamID`.
    public static func streamBegin(streamID: UInt32) -> RTMPMessage {
        userControl(eventType: 0, streamID)
    }

    /// A User Control event whose data is one 32-bit value (a stream id or a timestamp).
    private static func userControl(eventType: UInt16, _ value: UInt32) -> RTMPMessage {
        message(RTMPMessage.TypeID.userControl, [UInt8(eventType >> 8), UInt8(eventType & 0xFF)] + bigEndian(value))
    }

    /// Protocol control messages go on message stream 0 at timestamp 0.
    private static func message(_ typeID: UInt8, _ payload: [UInt8]) -> RTMPMessage {
        RTMPMessage(typeID: typeID, streamID: 0, timestamp: 0, payload: payload)
    }

    // MARK: - Bytes

    private static func uint32(_ payload: [UInt8], _ what: String) throws(RTMPError) -> UInt32 {
        guard payload.count >= 4 else {
            throw .protocolViolation("\(what) message has \(payload.count) bytes, expected 4")
        }
        return UInt32(payload[0]) << 24 | UInt32(payload[1]) << 16 | UInt32(payload[2]) << 8 | UInt32(payload[3])
    }

    private static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}
