/// The server side of one RTMP publishing connection, as a pure state machine.
///
/// Feed it received bytes with ``receive(_:)``; it returns events in order, including
/// `.send` with bytes to write. It never does I/O and owns no clock; S1's random filler is
/// injected. Any error is thrown as a typed ``RTMPError`` and leaves the session failed:
/// every later `receive` throws the same error, and the host closes the connection.
///
/// Supported flow (what ffmpeg and OBS/librtmp send): handshake, `connect`,
/// `releaseStream`, `FCPublish`, `createStream`, `publish`, `@setDataFrame onMetaData`,
/// audio/video (and aggregate) messages, `FCUnpublish` / `deleteStream` / `closeStream`.
/// Playback (`play`) is not supported; unknown commands surface as `.unknownCommand`.
///
/// Until the host accepts a publish (``acceptPublish()``, after it checked the stream key)
/// the peer is anonymous (``isAuthenticated`` is false): every message is bounded by
/// `limits.maxMessageLengthBeforePublish` (refused with
/// ``RTMPError/messageTooLargeBeforePublish(length:limit:)`` as soon as its chunk header
/// declares a longer one, before its bytes are held), partial messages by
/// `limits.maxBufferedMessageBytesBeforePublish`, and every AMF decode by a budget
/// proportional to the message. So an anonymous connection holds at most tens of KB. The
/// host must still bound how many anonymous connections it keeps and for how long.
public struct RTMPServerSession: Sendable {
    /// Values this server announces after `connect`.
    public static let announcedWindowAcknowledgementSize: UInt32 = 2_500_000
    public static let announcedPeerBandwidth: UInt32 = 2_500_000
    public static let outgoingChunkSize: UInt32 = 4096
    /// The only message stream id handed out by `createStream`.
    public static let publishStreamID: UInt32 = 1

    private enum Phase: Sendable {
        case handshake
        case chunks
        case failed(RTMPError)
    }

    private enum PublishState: Equatable, Sendable {
        case idle
        case requested(key: String, streamID: UInt32)
        case publishing(key: String, streamID: UInt32)
        case rejected
        case ended
    }

    public let limits: RTMPLimits
    private let randomBytes: @Sendable (Int) -> [UInt8]
    private var phase: Phase = .handshake
    private var handshake = RTMPHandshake()
    private var decoder: RTMPChunkDecoder
    private var encoder = RTMPChunkEncoder()
    private var publishState: PublishState = .idle
    private var handshakeBytes: UInt64 = 0
    /// A publisher's Set Peer Bandwidth is only recorded: the server announces its own
    /// window after `connect`.
    private var control = RTMPProtocolControl(answersSetPeerBandwidth: false)

    /// Total bytes passed to ``receive(_:)``.
    public private(set) var bytesReceived: UInt64 = 0
    /// The `app` from `connect`, once connected.
    public private(set) var app: String?
    /// The peer's Window Acknowledgement Size; 0 until it sends one (then we acknowledge).
    public var peerWindowAcknowledgementSize: UInt32 { control.peerWindowAcknowledgementSize }
    /// The peer's Set Peer Bandwidth (window, limit type), if it sent one.
    public var peerBandwidth: (window: UInt32, limitType: UInt8)? { control.peerBandwidth }

    public init(limits: RTMPLimits = .default, randomBytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.limits = limits
        self.randomBytes = randomBytes
        self.decoder = RTMPChunkDecoder(limits: limits, peerTrusted: false)
    }

    /// True once the RTMP handshake (C0, C1, C2) is complete.
    public var isHandshakeComplete: Bool {
        if case .handshake = phase { return false }
        return true
    }

    /// True once the host accepted a publish: the peer proved a stream key. Stays true after
    /// the publish ends. Until then the small before-publish limits apply, and a host should
    /// count the connection as anonymous (caps per address and in total, a deadline).
    public var isAuthenticated: Bool { decoder.isPeerTrusted }

    /// Bytes held in memory for incomplete input (handshake, chunk headers, partial messages).
    public var bufferedByteCount: Int { handshake.bufferedByteCount + decoder.bufferedByteCount }

    /// The error the session failed with, if any.
    public var failure: RTMPError? {
        if case .failed(let error) = phase { return error }
        return nil
    }

    /// The peer's current chunk size.
    public var peerChunkSize: Int { decoder.chunkSize }

    /// True once a publish was accepted and has not ended.
    public var isPublishing: Bool {
        if case .publishing = publishState { return true }
        return false
    }

    /// Media and metadata are reported from `publish` until it ends or is rejected, also
    /// while the host's decision is pending, so the event stream does not depend on when the
    /// host answers. A host that has not accepted yet drops or holds them.
    private var deliversMedia: Bool {
        switch publishState {
        case .requested, .publishing: return true
        default: return false
        }
    }

    /// Processes received bytes (any split, even one byte at a time).
    public mutating func receive(_ bytes: [UInt8]) throws(RTMPError) -> [RTMPServerEvent] {
        if case .failed(let error) = phase { throw error }
        bytesReceived &+= UInt64(bytes.count)
        var events: [RTMPServerEvent] = []
        do {
            try process(bytes, into: &events)
        } catch {
            phase = .failed(error)
            // Failed for good: let go of partial input now rather than when the host closes.
            decoder = RTMPChunkDecoder(limits: limits, peerTrusted: decoder.isPeerTrusted)
            throw error
        }
        return events
    }

    /// Accepts the pending publish: User Control Stream Begin and onStatus
    /// `NetStream.Publish.Start`. Returns no bytes if no publish is pending. From now on the
    /// peer is authenticated and the full limits for media apply.
    public mutating func acceptPublish() -> [UInt8] {
        guard case .requested(let key, let streamID) = publishState else { return [] }
        publishState = .publishing(key: key, streamID: streamID)
        decoder.trustPeer()
        var out = encodeControl(RTMPProtocolControl.streamBegin(streamID: streamID))
        out += onStatus(level: "status", code: "NetStream.Publish.Start", description: "\(key) is now published.", streamID: streamID)
        return out
    }

    /// The onStatus code of `handOver(resumeAt:)` (not one of Adobe's: only StreamTube's relay reads it).
    public static let resumeCode = "StreamTube.Relay.Resume"

    /// Tells a relaying publisher that this node hands the stream to another and has made (and
    /// passed on) everything before the keyframe at `timestamp`: it should start there on its next
    /// connection. A status, not an error; the host closes the connection afterwards.
    public mutating func handOver(resumeAt timestamp: UInt32) -> [UInt8] {
        guard case .publishing(_, let streamID) = publishState else { return [] }
        publishState = .rejected
        return onStatus(level: "status", code: Self.resumeCode, description: "\(timestamp)", streamID: streamID)
    }

    /// Rejects the pending publish with onStatus level "error" and `code` (for example
    /// `NetStream.Publish.BadName`). The host should close the connection afterwards.
    public mutating func rejectPublish(code: String, description: String) -> [UInt8] {
        let streamID: UInt32
        switch publishState {
        case .requested(_, let sid), .publishing(_, let sid): streamID = sid
        default: streamID = Self.publishStreamID
        }
        publishState = .rejected
        return onStatus(level: "error", code: code, description: description, streamID: streamID)
    }

    // MARK: - Input

    private mutating func process(_ bytes: [UInt8], into events: inout [RTMPServerEvent]) throws(RTMPError) {
        var index = 0
        if case .handshake = phase {
            let start = index
            if let reply = try handshake.consume(bytes, from: &index, randomBytes: randomBytes) {
                events.append(.send(reply))
            }
            if index < bytes.count, handshake.state == .waitingForC2 {
                _ = try handshake.consume(bytes, from: &index, randomBytes: randomBytes)
            }
            handshakeBytes += UInt64(index - start)
            guard handshake.state == .done else { return }
            phase = .chunks
        }
        if index == 0 {
            decoder.append(bytes)
        } else if index < bytes.count {
            decoder.append(bytes[index...])
        }
        while let chunk = try decoder.nextChunk() {
            // At chunk boundaries, so the output does not depend on how input was split.
            if let ack = control.acknowledgement(received: handshakeBytes + decoder.consumedBytes) {
                events.append(.send(encodeControl(ack)))
            }
            if let message = chunk.message {
                try handle(message, into: &events)
            }
        }
    }

    private mutating func handle(_ message: RTMPMessage, into events: inout [RTMPServerEvent]) throws(RTMPError) {
        // Only Ping Request needs an answer; the other User Control events mean nothing here.
        if let outcome = try control.handle(message, decoder: &decoder) {
            if let reply = outcome.reply { events.append(.send(encodeControl(reply))) }
            return
        }
        let payload = message.payload
        switch message.typeID {
        case RTMPMessage.TypeID.audio:
            if deliversMedia { events.append(.audio(timestamp: message.timestamp, payload: payload)) }
        case RTMPMessage.TypeID.video:
            if deliversMedia { events.append(.video(timestamp: message.timestamp, payload: payload)) }
        case RTMPMessage.TypeID.aggregate:
            if deliversMedia { try handleAggregate(message, into: &events) }
        case RTMPMessage.TypeID.dataAMF0:
            try handleData(try decodeAMF(payload[...]), into: &events)
        case RTMPMessage.TypeID.dataAMF3:
            try handleData(try decodeAMF(Self.skippingAMF3Prefix(payload)), into: &events)
        case RTMPMessage.TypeID.commandAMF0:
            try handleCommand(try decodeAMF(payload[...]), message: message, into: &events)
        case RTMPMessage.TypeID.commandAMF3:
            try handleCommand(try decodeAMF(Self.skippingAMF3Prefix(payload)), message: message, into: &events)
        default:
            break  // shared objects and unknown types carry nothing a publisher needs
        }
    }

    /// Decodes within AMF0's budget proportional to the input, capped by `maxAMFDecodedBytes`.
    private func decodeAMF(_ bytes: ArraySlice<UInt8>) throws(RTMPError) -> [AMF0Value] {
        let budget = min(AMF0.decodedByteBudget(forInputCount: bytes.count), limits.maxAMFDecodedBytes)
        return try AMF0.decode(bytes, maxDepth: limits.maxAMFDepth, maxDecodedBytes: budget)
    }

    /// AMF3 command/data messages start with a 0 format byte followed by AMF0 values.
    private static func skippingAMF3Prefix(_ payload: [UInt8]) -> ArraySlice<UInt8> {
        payload.first == 0 ? payload.dropFirst() : payload[...]
    }

    /// Aggregate messages hold FLV tags (11-byte header, body, 4-byte back pointer) whose
    /// timestamps are rebased on the message timestamp.
    private mutating func handleAggregate(_ message: RTMPMessage, into events: inout [RTMPServerEvent]) throws(RTMPError) {
        let p = message.payload
        var i = 0
        var firstTimestamp: UInt32?
        while i < p.count {
            guard p.count - i >= 11 else { throw .protocolViolation("aggregate message has a truncated tag header") }
            let type = p[i] & 0x1F
            let size = Int(p[i + 1]) << 16 | Int(p[i + 2]) << 8 | Int(p[i + 3])
            let ts = UInt32(p[i + 7]) << 24 | UInt32(p[i + 4]) << 16 | UInt32(p[i + 5]) << 8 | UInt32(p[i + 6])
            guard p.count - i - 11 >= size else { throw .protocolViolation("aggregate message has a truncated tag body") }
            let body = Array(p[(i + 11)..<(i + 11 + size)])
            let base = firstTimestamp ?? ts
            firstTimestamp = base
            let timestamp = message.timestamp &+ (ts &- base)
            if type == RTMPMessage.TypeID.audio {
                events.append(.audio(timestamp: timestamp, payload: body))
            } else if type == RTMPMessage.TypeID.video {
                events.append(.video(timestamp: timestamp, payload: body))
            }
            i += 11 + size + 4
        }
    }

    private mutating func handleData(_ values: [AMF0Value], into events: inout [RTMPServerEvent]) throws(RTMPError) {
        var rest = values[...]
        if rest.first?.stringValue == "@setDataFrame" { rest = rest.dropFirst() }
        guard rest.first?.stringValue == "onMetaData", deliversMedia else { return }
        var metadata: [String: AMF0Value] = [:]
        for value in rest.dropFirst() {
            for prop in value.properties ?? [] { metadata[prop.key] = prop.value }
        }
        events.append(.metadata(metadata))
    }

    // MARK: - Commands

    private mutating func handleCommand(_ values: [AMF0Value], message: RTMPMessage, into events: inout [RTMPServerEvent]) throws(RTMPError) {
        guard let name = values.first?.stringValue else {
            throw .protocolViolation("command message does not start with a command name")
        }
        let transactionID = values.count > 1 ? values[1].numberValue ?? 0 : 0
        let arguments = Array(values.dropFirst(2))
        switch name {
        case "connect":
            guard app == nil else { throw .protocolViolation("second connect on one connection") }
            guard let object = arguments.first, let appName = object["app"]?.stringValue else {
                throw .protocolViolation("connect without an app name")
            }
            app = appName
            var out = encodeControl(RTMPProtocolControl.windowAcknowledgementSize(Self.announcedWindowAcknowledgementSize))
            out += encodeControl(RTMPProtocolControl.setPeerBandwidth(Self.announcedPeerBandwidth, limitType: 2))  // dynamic
            out += encodeControl(RTMPProtocolControl.setChunkSize(Self.outgoingChunkSize))
            encoder.chunkSize = Int(Self.outgoingChunkSize)
            out += command([
                .string("_result"), .number(transactionID),
                .object([
                    AMF0Property("fmsVer", .string("FMS/3,0,1,123")),
                    AMF0Property("capabilities", .number(31)),
                ]),
                .object([
                    AMF0Property("level", .string("status")),
                    AMF0Property("code", .string("NetConnection.Connect.Success")),
                    AMF0Property("description", .string("Connection succeeded.")),
                    AMF0Property("objectEncoding", .number(0)),
                ]),
            ])
            events.append(.send(out))
            events.append(.connected(app: appName, tcURL: object["tcUrl"]?.stringValue))
        case "releaseStream", "_checkbw":
            try requireConnected(name)
            events.append(.send(command([.string("_result"), .number(transactionID), .null, .undefined])))
        case "FCPublish":
            try requireConnected(name)
            let key = arguments.dropFirst().first?.stringValue ?? ""
            var out = command([
                .string("onFCPublish"), .number(0), .null,
                .object([
                    AMF0Property("level", .string("status")),
                    AMF0Property("code", .string("NetStream.Publish.Start")),
                    AMF0Property("description", .string(key)),
                ]),
            ])
            out += command([.string("_result"), .number(transactionID), .null, .undefined])
            events.append(.send(out))
        case "createStream":
            try requireConnected(name)
            events.append(.send(command([.string("_result"), .number(transactionID), .null, .number(Double(Self.publishStreamID))])))
        case "publish":
            guard let app else { throw .protocolViolation("publish before connect") }
            guard publishState == .idle else { throw .protocolViolation("publish while a publish is already pending or done") }
            guard let name = arguments.dropFirst().first?.stringValue else {
                throw .protocolViolation("publish without a stream name")
            }
            let key = String(name.prefix(while: { $0 != "?" }))
            let streamID = message.streamID == 0 ? Self.publishStreamID : message.streamID
            publishState = .requested(key: key, streamID: streamID)
            events.append(.publishRequested(app: app, streamKey: key))
        case "FCUnpublish", "deleteStream", "closeStream":
            switch publishState {
            case .requested, .publishing:
                publishState = .ended
                events.append(.unpublished)
            default:
                break
            }
        default:
            events.append(.unknownCommand(name: name))
        }
    }

    private func requireConnected(_ name: String) throws(RTMPError) {
        if app == nil { throw .protocolViolation("\(name) before connect") }
    }

    /// An AMF0 command message on chunk stream 3, message stream 0.
    private func command(_ values: [AMF0Value]) -> [UInt8] {
        encoder.encode(RTMPMessage(typeID: RTMPMessage.TypeID.commandAMF0, streamID: 0, timestamp: 0, payload: AMF0.encode(values)), chunkStreamID: 3)
    }

    private func onStatus(level: String, code: String, description: String, streamID: UInt32) -> [UInt8] {
        let values: [AMF0Value] = [
            .string("onStatus"), .number(0), .null,
            .object([
                AMF0Property("level", .string(level)),
                AMF0Property("code", .string(code)),
                AMF0Property("description", .string(description)),
            ]),
        ]
        return encoder.encode(RTMPMessage(typeID: RTMPMessage.TypeID.commandAMF0, streamID: streamID, timestamp: 0, payload: AMF0.encode(values)), chunkStreamID: 5)
    }

    /// A protocol control message on chunk stream 2, message stream 0.
    private func encodeControl(_ controlMessage: RTMPMessage) -> [UInt8] {
        encoder.encode(controlMessage, chunkStreamID: RTMPProtocolControl.chunkStreamID)
    }
}
