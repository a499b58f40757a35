/// The client (publisher) side of one RTMP connection, as a pure state machine: the mirror
/// of ``RTMPServerSession``. A relay node uses it to push a broadcaster's stream to the
/// node that owns it.
///
/// The host calls ``start()`` and writes the returned C0+C1, feeds every received byte to
/// ``receive(_:)`` and writes every `.send` it gets back, in order. Once `.publishing`
/// arrives it writes what ``sendMetadata(_:)``, ``sendVideo(timestamp:payload:)`` and
/// ``sendAudio(timestamp:payload:)`` return, and ends with ``unpublish()``. The session does
/// no I/O and owns no clock; C1's random filler is injected. Any error is thrown as a typed
/// ``RTMPError`` and leaves the session failed: every later `receive` throws the same error.
///
/// Flow (what ffmpeg and OBS send): handshake; Set Chunk Size 4096 and `connect` once S2
/// is in; on the `connect` `_result`, `releaseStream`, `FCPublish` and `createStream`; on
/// the `createStream` `_result`, `publish(key, "live")` on the new message stream; onStatus
/// `NetStream.Publish.Start` means publishing. The server's Set Chunk Size, Abort, Window
/// Acknowledgement Size (answered with Acknowledgements), Set Peer Bandwidth (answered with
/// our Window Acknowledgement Size) and Ping Request (answered with Ping Response) are
/// handled whenever they arrive, by the ``RTMPProtocolControl`` the server session shares.
/// The session never reads the server's media.
///
/// Chunk streams, as ffmpeg uses them: 2 protocol control, 3 commands on message stream 0,
/// 4 audio and data (metadata), 6 video, 8 `publish` on the created stream. Headers are
/// compressed per chunk stream (see ``RTMPCompressingChunkEncoder``).
public struct RTMPClientSession: Sendable {
    /// Chunk stream ids this session writes on.
    public enum ChunkStreamID {
        public static let control: UInt32 = RTMPProtocolControl.chunkStreamID
        public static let command: UInt32 = 3
        public static let audio: UInt32 = 4
        public static let data: UInt32 = 4
        public static let video: UInt32 = 6
        public static let publish: UInt32 = 8
    }

    /// The chunk size announced right after the handshake.
    public static let outgoingChunkSize: UInt32 = 4096
    /// `flashVer` sent in `connect`. "FMLE/3.0" is what servers expect from publishers.
    public static let flashVersion = "FMLE/3.0 (compatible; StreamTube)"

    private enum Phase: Sendable {
        case idle
        case handshake
        case chunks
        case failed(RTMPError)
    }

    private enum PublishState: Equatable, Sendable {
        /// Before the `connect` `_result`.
        case connecting
        /// `createStream` sent, waiting for its `_result`.
        case creatingStream
        /// `publish` sent on `streamID`, waiting for onStatus.
        case publishRequested(streamID: UInt32)
        case publishing(streamID: UInt32)
        case rejected
        case ended
    }

    public let app: String
    public let tcURL: String
    public let streamKey: String
    public let limits: RTMPLimits
    private let randomBytes: @Sendable (Int) -> [UInt8]
    private var phase: Phase = .idle
    private var handshake = RTMPClientHandshake()
    private var decoder: RTMPChunkDecoder
    private var encoder = RTMPCompressingChunkEncoder()
    private var publishState: PublishState = .connecting
    /// Commands awaiting `_result` / `_error`, by transaction id.
    private var pending: [Double: String] = [:]
    private var nextTransactionID: Double = 1
    private var handshakeBytes: UInt64 = 0
    /// Set Peer Bandwidth is answered with our Window Acknowledgement Size.
    private var control = RTMPProtocolControl(answersSetPeerBandwidth: true)

    /// Total bytes passed to ``receive(_:)``.
    public private(set) var bytesReceived: UInt64 = 0
    /// The server's Window Acknowledgement Size; 0 until it sends one (then we acknowledge).
    public var peerWindowAcknowledgementSize: UInt32 { control.peerWindowAcknowledgementSize }
    /// The server's Set Peer Bandwidth (window, limit type), if it sent one.
    public var peerBandwidth: (window: UInt32, limitType: UInt8)? { control.peerBandwidth }

    /// `app` and `tcURL` go into `connect` (for example "relay" and
    /// "rtmp://owner:1935/relay"); `streamKey` into `releaseStream`, `FCPublish` and `publish`.
    /// With `acknowledgementWindow` the server is asked to acknowledge every that many bytes
    /// (after the handshake, and in answer to its Set Peer Bandwidth), and each Acknowledgement
    /// comes out as `.acknowledged`.
    public init(app: String, tcURL: String, streamKey: String, limits: RTMPLimits = .default, acknowledgementWindow: UInt32? = nil,
                randomBytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.app = app
        self.tcURL = tcURL
        self.streamKey = streamKey
        self.limits = limits
        self.randomBytes = randomBytes
        self.decoder = RTMPChunkDecoder(limits: limits)
        self.control = RTMPProtocolControl(answersSetPeerBandwidth: true, ownWindow: acknowledgementWindow)
    }

    /// True from onStatus `NetStream.Publish.Start` until ``unpublish()`` or a rejection.
    public var isPublishing: Bool {
        if case .publishing = publishState { return true }
        return false
    }

    /// The message stream id `createStream` returned, once it has.
    public var streamID: UInt32? {
        switch publishState {
        case .publishRequested(let sid), .publishing(let sid): return sid
        default: return nil
        }
    }

    /// The error the session failed with, if any.
    public var failure: RTMPError? {
        if case .failed(let error) = phase { return error }
        return nil
    }

    /// The server's current chunk size.
    public var peerChunkSize: Int { decoder.chunkSize }

    /// Bytes held in memory for incomplete input (handshake, chunk headers, partial messages).
    public var bufferedByteCount: Int { handshake.bufferedByteCount + decoder.bufferedByteCount }

    /// C0 + C1, to write first. Returns no bytes if already started.
    public mutating func start() -> [UInt8] {
        guard case .idle = phase else { return [] }
        phase = .handshake
        return handshake.start(randomBytes: randomBytes)
    }

    /// Processes bytes from the server (any split, even one byte at a time).
    public mutating func receive(_ bytes: [UInt8]) throws(RTMPError) -> [RTMPClientEvent] {
        switch phase {
        case .failed(let error):
            throw error
        case .idle:
            let error = RTMPError.protocolViolation("bytes received before start(): the client speaks first")
            phase = .failed(error)
            throw error
        default:
            break
        }
        bytesReceived &+= UInt64(bytes.count)
        var events: [RTMPClientEvent] = []
        do {
            try process(bytes, into: &events)
        } catch {
            phase = .failed(error)
            throw error
        }
        return events
    }

    /// One FLV video tag body (message type 9) at `timestamp` ms. Returns no bytes unless
    /// publishing.
    public mutating func sendVideo(timestamp: UInt32, payload: [UInt8]) -> [UInt8] {
        media(RTMPMessage.TypeID.video, timestamp: timestamp, payload: payload, chunkStreamID: ChunkStreamID.video)
    }

    /// One FLV audio tag body (message type 8) at `timestamp` ms. Returns no bytes unless
    /// publishing.
    public mutating func sendAudio(timestamp: UInt32, payload: [UInt8]) -> [UInt8] {
        media(RTMPMessage.TypeID.audio, timestamp: timestamp, payload: payload, chunkStreamID: ChunkStreamID.audio)
    }

    /// `@setDataFrame onMetaData` with `properties` as an ECMA array, at timestamp 0.
    /// Returns no bytes unless publishing.
    public mutating func sendMetadata(_ properties: [AMF0Property]) -> [UInt8] {
        let payload = AMF0.encode([.string("@setDataFrame"), .string("onMetaData"), .ecmaArray(properties)])
        return media(RTMPMessage.TypeID.dataAMF0, timestamp: 0, payload: payload, chunkStreamID: ChunkStreamID.data)
    }

    /// `FCUnpublish` and `deleteStream`. Media stops; returns no bytes unless a publish was
    /// requested or is running. The host closes the connection after writing them.
    public mutating func unpublish() -> [UInt8] {
        guard let sid = streamID else { return [] }
        publishState = .ended
        var out = command("FCUnpublish", [.null, .string(streamKey)], expectsResult: false)
        out += command("deleteStream", [.null, .number(Double(sid))], expectsResult: false)
        return out
    }

    private mutating func media(_ typeID: UInt8, timestamp: UInt32, payload: [UInt8], chunkStreamID csid: UInt32) -> [UInt8] {
        guard case .publishing(let sid) = publishState, case .chunks = phase else { return [] }
        return encoder.encode(RTMPMessage(typeID: typeID, streamID: sid, timestamp: timestamp, payload: payload), chunkStreamID: csid)
    }

    // MARK: - Input

    private mutating func process(_ bytes: [UInt8], into events: inout [RTMPClientEvent]) throws(RTMPError) {
        var index = 0
        if case .handshake = phase {
            if let c2 = try handshake.consume(bytes, from: &index) {
                events.append(.send(c2))
            }
            handshakeBytes += UInt64(index)
            guard handshake.state == .done else { return }
            phase = .chunks
            events.append(.send(sendChunkSizeAndConnect()))
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

    private mutating func sendChunkSizeAndConnect() -> [UInt8] {
        var out = encodeControl(RTMPProtocolControl.setChunkSize(Self.outgoingChunkSize))
        encoder.chunkSize = Int(Self.outgoingChunkSize)
        if let window = control.announceOwnWindow() { out += encodeControl(window) }
        out += command("connect", [.object([
            AMF0Property("app", .string(app)),
            AMF0Property("type", .string("nonprivate")),
            AMF0Property("flashVer", .string(Self.flashVersion)),
            AMF0Property("tcUrl", .string(tcURL)),
        ])])
        return out
    }

    private mutating func handle(_ message: RTMPMessage, into events: inout [RTMPClientEvent]) throws(RTMPError) {
        // Stream Begin and the other User Control events need nothing from a publisher.
        if let outcome = try control.handle(message, decoder: &decoder) {
            if let reply = outcome.reply { events.append(.send(encodeControl(reply))) }
            if let acknowledged = outcome.acknowledged { events.append(.acknowledged(acknowledged)) }
            return
        }
        let payload = message.payload
        switch message.typeID {
        case RTMPMessage.TypeID.commandAMF0:
            try handleCommand(try AMF0.decode(payload[...], maxDepth: limits.maxAMFDepth), into: &events)
        case RTMPMessage.TypeID.commandAMF3:
            let body = payload.first == 0 ? payload.dropFirst() : payload[...]
            try handleCommand(try AMF0.decode(body, maxDepth: limits.maxAMFDepth), into: &events)
        default:
            break  // media, data and shared objects from the server mean nothing to a publisher
        }
    }

    // MARK: - Commands

    private mutating func handleCommand(_ values: [AMF0Value], into events: inout [RTMPClientEvent]) throws(RTMPError) {
        guard let name = values.first?.stringValue else {
            throw .protocolViolation("command message does not start with a command name")
        }
        let transactionID = values.count > 1 ? values[1].numberValue ?? 0 : 0
        let arguments = Array(values.dropFirst(2))
        switch name {
        case "_result":
            guard let request = pending.removeValue(forKey: transactionID) else { return }
            try handleResult(of: request, arguments: arguments, into: &events)
        case "_error":
            guard let request = pending.removeValue(forKey: transactionID) else { return }
            guard ["connect", "createStream", "publish"].contains(request) else { return }  // releaseStream may fail harmlessly
            let info = arguments.dropFirst().first
            reject(code: info?["code"]?.stringValue ?? "",
                   description: info?["description"]?.stringValue ?? "server answered \(request) with _error",
                   into: &events)
        case "onStatus":
            let info = arguments.dropFirst().first
            let code = info?["code"]?.stringValue ?? ""
            if info?["level"]?.stringValue == "error" {
                reject(code: code, description: info?["description"]?.stringValue ?? "", into: &events)
            } else if code == "NetStream.Publish.Start", case .publishRequested(let sid) = publishState {
                publishState = .publishing(streamID: sid)
                events.append(.publishing)
            } else if code == RTMPServerSession.resumeCode, let at = info?["description"]?.stringValue.flatMap({ UInt32($0) }) {
                events.append(.resume(at: at))
            } else {
                events.append(.status(code: code))
            }
        default:
            break  // onFCPublish, onBWDone, _checkbw, close...: nothing to do
        }
    }

    private mutating func handleResult(of request: String, arguments: [AMF0Value], into events: inout [RTMPClientEvent]) throws(RTMPError) {
        switch request {
        case "connect":
            guard publishState == .connecting else { return }
            let info = arguments.dropFirst().first
            if info?["level"]?.stringValue == "error" {
                reject(code: info?["code"]?.stringValue ?? "",
                       description: info?["description"]?.stringValue ?? "", into: &events)
                return
            }
            var out = command("releaseStream", [.null, .string(streamKey)])
            out += command("FCPublish", [.null, .string(streamKey)])
            out += command("createStream", [.null])
            publishState = .creatingStream
            events.append(.send(out))
        case "createStream":
            guard publishState == .creatingStream else { return }
            guard let number = arguments.dropFirst().first?.numberValue,
                  number >= 1, number <= Double(UInt32.max), number.rounded() == number else {
                throw .protocolViolation("createStream _result without a valid stream id: \(arguments)")
            }
            let sid = UInt32(number)
            publishState = .publishRequested(streamID: sid)
            let transactionID = takeTransactionID(for: "publish")
            let payload = AMF0.encode([.string("publish"), .number(transactionID), .null, .string(streamKey), .string("live")])
            events.append(.send(encoder.encode(
                RTMPMessage(typeID: RTMPMessage.TypeID.commandAMF0, streamID: sid, timestamp: 0, payload: payload),
                chunkStreamID: ChunkStreamID.publish)))
        default:
            break  // releaseStream, FCPublish, publish: nothing to do
        }
    }

    private mutating func reject(code: String, description: String, into events: inout [RTMPClientEvent]) {
        switch publishState {
        case .ended, .rejected: break
        default: publishState = .rejected
        }
        events.append(.rejected(code: code, description: description))
    }

    private mutating func takeTransactionID(for name: String) -> Double {
        let id = nextTransactionID
        nextTransactionID += 1
        pending[id] = name
        return id
    }

    /// An AMF0 command on chunk stream 3, message stream 0, with the next transaction id
    /// (0, as ffmpeg sends for commands nobody answers, when `expectsResult` is false).
    private mutating func command(_ name: String, _ arguments: [AMF0Value], expectsResult: Bool = true) -> [UInt8] {
        let transactionID = expectsResult ? takeTransactionID(for: name) : 0
        let payload = AMF0.encode([.string(name), .number(transactionID)] + arguments)
        return encoder.encode(RTMPMessage(typeID: RTMPMessage.TypeID.commandAMF0, streamID: 0, timestamp: 0, payload: payload),
                              chunkStreamID: ChunkStreamID.command)
    }

    /// A protocol control message on chunk stream 2, message stream 0.
    private mutating func encodeControl(_ controlMessage: RTMPMessage) -> [UInt8] {
        encoder.encode(controlMessage, chunkStreamID: ChunkStreamID.control)
    }
}
