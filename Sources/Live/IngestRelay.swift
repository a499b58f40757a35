// IngestRelay: a broadcaster may push to any node. A node that does not own the stream
// relays it to the owner over RTMP (over mutual TLS when cluster-tls is on), as a publisher to
// the owner's "relay" application with a key signed by the cluster key. It asks the origin to
// acknowledge every 64 KiB, and keeps (with the codec headers) all media from the GOP before the
// one holding the first byte the origin has not acknowledged: a new connection — to the same
// owner or, after a failover, to the next one — starts with a decodable picture at once, and a
// standby the dead origin had not yet sent the end of the last GOP gets it again. An origin that
// stops acknowledging (frozen, its host cut off: the connection half-open) or that the cluster's
// failure detector holds dead is left for whoever owns the stream then, without waiting for TCP
// to give up; meanwhile nothing acknowledged is dropped (up to a budget). The new origin drops
// what it recorded already (`LiveStream`'s held segments).
import Catalog
import Cluster
import Foundation
import Gossip
import Logging
import NodeMetrics
import NIOCore
import NIOPosix
import Origin
import Synchronization

/// One relay, living on the broadcaster's connection's event loop: every method runs there
/// (callbacks hop to it), which is what makes the unchecked Sendable sound.
package final class IngestRelay: @unchecked Sendable {
    enum Tag {
        case video(UInt32, [UInt8])
        case audio(UInt32, [UInt8])
    }

    /// A buffered tag, and where its last byte went on the current connection (`sent` counts
    /// from the first handshake byte, as the origin's Acknowledgements do; `.max`: not sent on it).
    struct Entry {
        var tag: Tag
        var keyframe: Bool
        var end: UInt64 = .max
        var bytes: Int {
            switch tag {
            case .video(_, let p), .audio(_, let p): p.count
            }
        }
    }

    /// How often the origin is asked to acknowledge what it received.
    static let acknowledgementWindow: UInt32 = 64 << 10
    /// An origin that has not acknowledged anything for this long while two windows or more wait
    /// is held gone (a half-open connection, a frozen process).
    static let acknowledgementStall: TimeAmount = .seconds(3)
    /// A connection that is not publishing by then is given up (a frozen origin accepts TCP).
    static let publishDeadline: TimeAmount = .seconds(5)

    let streamID: String
    /// Who publishes: named in every relay token, so the owner admits that person or no one.
    let publisher: Publisher
    private let router: ClusterRouter
    private let tokens: ClusterTokens
    private let eventLoop: any EventLoop
    private var logger: Logger
    private let onGiveUp: (String) -> Void
    /// Called when the ring names this node the stream's owner: the broadcaster's connection
    /// takes the stream into this node's origin, fed what the relay holds (codec headers first);
    /// false: it could not, and the relay goes on (to this node's own RTMP port).
    var onOwnedHere: ((_ tags: [(video: Bool, timestamp: UInt32, payload: [UInt8])]) -> Bool)?

    private var channel: (any Channel)?
    private var session: RTMPClientSession?
    private var target: NodeID?
    private var stopped = false
    private var reconnects = 0
    /// Counted in `waitingRelays` (started, and no origin takes the stream yet or any more).
    private var waiting = false
    /// This node's relays without an origin: `streamtube_ingest_relays_without_origin`.
    private static let waitingRelays = Atomic<Int>(0)
    // What a new connection needs first: codec headers, then the media the origin may lack.
    private var videoHeader: (UInt32, [UInt8])?
    private var audioHeader: (UInt32, [UInt8])?
    private var buffer: [Entry] = []
    private var bufferBytes = 0
    static let maxBufferBytes = 32 << 20
    /// Bytes written on the current connection, and how many of them the origin acknowledged.
    private var sent: UInt64 = 0
    private var acknowledged: UInt64 = 0
    private var lastAcknowledgement = NIODeadline.now()
    private var connectedAt = NIODeadline.now()
    private var watchdog: RepeatedTask?

    init(streamID: String, publisher: Publisher = .host, router: ClusterRouter, tokens: ClusterTokens, eventLoop: any EventLoop,
         logger: Logger, onGiveUp: @escaping (String) -> Void) {
        self.streamID = streamID
        self.publisher = publisher
        self.router = router
        self.tokens = tokens
        self.eventLoop = eventLoop
        var l = logger
        l[metadataKey: "relay"] = "\(streamID)"
        self.logger = l
        self.onGiveUp = onGiveUp
    }

    /// The node the relay is sending to now.
    var currentTarget: NodeID? { target }

    func start() {
        guard !stopped else { return }
        setWaiting(true)
        connect()
        watchdog = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in self?.watch() }
    }

    /// Once a second: leaves an origin that the failure detector holds dead, that stopped
    /// acknowledging, or that never let us publish — for whoever owns the stream now.
    private func watch() {
        guard !stopped, let channel else { return }
        let now = NIODeadline.now()
        var why: String?
        if let target, let member = router.view.snapshot.members.first(where: { $0.id == target }), member.status == .dead {
            why = "the cluster holds the origin dead"
        } else if let target, !router.view.snapshot.members.contains(where: { $0.id == target }) {
            why = "the origin left the cluster"
        } else if connected {
            if sent - acknowledged >= 2 * UInt64(Self.acknowledgementWindow), now - lastAcknowledgement > Self.acknowledgementStall {
                why = "the origin stopped acknowledging (\(sent - acknowledged) bytes unacknowledged)"
            }
        } else if now - connectedAt > Self.publishDeadline {
            why = "the origin did not take the stream within 5 s"
        }
        guard let why else { return }
        logger.warning("relay leaves its origin", metadata: ["why": "\(why)", "origin": "\(target.map { "\($0)" } ?? "?")"])
        NodeMetrics.relayOriginsLeft.increment()
        // Closed here, the connection ends at once (`closed()`: the relay tries the owner of now).
        channel.close(promise: nil)
    }

    private func setWaiting(_ now: Bool) {
        guard now != waiting else { return }
        waiting = now
        let count = now ? Self.waitingRelays.add(1, ordering: .relaxed).newValue : Self.waitingRelays.subtract(1, ordering: .relaxed).newValue
        NodeMetrics.relaysWithoutOrigin.record(count)
    }

    /// True while an origin takes what is sent.
    private var connected: Bool { channel != nil && session?.isPublishing == true }

    func send(video payload: [UInt8], timestamp: UInt32, isKeyframe: Bool, isHeader: Bool) {
        if isHeader {
            videoHeader = (timestamp, payload)
            write { $0.sendVideo(timestamp: timestamp, payload: payload) }
            return
        }
        if isKeyframe { trim() }
        keep(Entry(tag: .video(timestamp, payload), keyframe: isKeyframe))
    }

    func send(audio payload: [UInt8], timestamp: UInt32, isHeader: Bool) {
        if isHeader {
            audioHeader = (timestamp, payload)
            write { $0.sendAudio(timestamp: timestamp, payload: payload) }
            return
        }
        // Audio before the first keyframe is of no use to a new origin.
        guard !buffer.isEmpty else {
            write { $0.sendAudio(timestamp: timestamp, payload: payload) }
            return
        }
        keep(Entry(tag: .audio(timestamp, payload), keyframe: false))
    }

    /// Buffers a tag (within the budget) and sends it when an origin takes the stream.
    private func keep(_ entry: Entry) {
        var entry = entry
        let end = send(entry.tag)
        guard bufferBytes + entry.bytes <= Self.maxBufferBytes else { return }
        entry.end = end ?? .max
        buffer.append(entry)
        bufferBytes += entry.bytes
    }

    /// At a keyframe: drops the GOPs before the one that precedes the GOP holding the first tag
    /// the origin has not acknowledged (a standby may lack the end of that one). Cut off from any
    /// origin, everything is kept until half the budget is used, then only from this keyframe on.
    private func trim() {
        guard connected else {
            if bufferBytes > Self.maxBufferBytes / 2 { drop(buffer.count) }
            return
        }
        let first = buffer.firstIndex { $0.end > acknowledged } ?? buffer.count
        // All acknowledged: the GOP holding the first byte to come is the one this keyframe begins.
        guard let holding = first == buffer.count ? buffer.count : buffer[...first].lastIndex(where: \.keyframe) else { return }
        drop(buffer[..<holding].lastIndex(where: \.keyframe) ?? holding)
    }

    private func drop(_ count: Int) {
        guard count > 0 else { return }
        bufferBytes -= buffer[..<count].reduce(0) { $0 + $1.bytes }
        buffer.removeFirst(count)
    }

    /// Sends a tag on the current connection; where its last byte went, or nil when none publishes.
    @discardableResult
    private func send(_ tag: Tag) -> UInt64? {
        switch tag {
        case .video(let ts, let p): write { $0.sendVideo(timestamp: ts, payload: p) }
        case .audio(let ts, let p): write { $0.sendAudio(timestamp: ts, payload: p) }
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        watchdog?.cancel()
        setWaiting(false)
        if var s = session, s.isPublishing, let channel {
            channel.writeAndFlush(ByteBuffer(bytes: s.unpublish()), promise: nil)
            session = s
        }
        channel?.close(promise: nil)
        channel = nil
    }

    /// Writes what `make` returns while an origin takes the stream; the bytes sent so far, or nil.
    @discardableResult
    private func write(_ make: (inout RTMPClientSession) -> [UInt8]) -> UInt64? {
        guard var s = session, s.isPublishing, let channel else { return nil }
        let bytes = make(&s)
        session = s
        if !bytes.isEmpty { output(bytes, on: channel, flush: true) }
        return sent
    }

    private func output(_ bytes: [UInt8], on channel: any Channel, flush: Bool) {
        sent += UInt64(bytes.count)
        if flush { channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil) } else { channel.write(ByteBuffer(bytes: bytes), promise: nil) }
    }

    private func connect() {
        guard !stopped else { return }
        guard let placement = router.placement(of: streamID) else {
            return retry("no owner known for the stream")
        }
        let owner = placement.owner
        if router.ownsLocally(streamID), let takeHere = onOwnedHere {
            var tags: [(video: Bool, timestamp: UInt32, payload: [UInt8])] = []
            if let (ts, h) = videoHeader { tags.append((true, ts, h)) }
            if let (ts, h) = audioHeader { tags.append((false, ts, h)) }
            for e in buffer {
                switch e.tag {
                case .video(let ts, let p): tags.append((true, ts, p))
                case .audio(let ts, let p): tags.append((false, ts, p))
                }
            }
            if takeHere(tags) {
                logger.info("relay ends: this node owns the stream now and takes it in process", metadata: ["replayedTags": "\(buffer.count)"])
                stopped = true
                watchdog?.cancel()
                setWaiting(false)
                return
            }
        }
        target = owner.id
        let address = owner.metadata.rtmpAddress
        let key = tokens.token(for: .relay, scope: RelayScope(streamID: streamID, publisher: publisher).scope)
        var s = RTMPClientSession(app: ClusterTokens.relayApp, tcURL: "rtmp://\(address)/\(ClusterTokens.relayApp)", streamKey: key,
                                  acknowledgementWindow: Self.acknowledgementWindow,
                                  randomBytes: { n in (0..<n).map { _ in UInt8.random(in: 0...255) } })
        let hello = s.start()
        session = s
        let transport = router.transport
        logger.info("relay connecting to the stream's origin", metadata: [
            "origin": "\(owner.id)", "address": "\(address)", "tls": "\(transport.requiresTLS ? "on" : "off")",
        ])
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(3))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RelayChannelHandler(relay: self))
                    // With cluster TLS, the origin is spoken to over mutual TLS (in front of everything).
                    try transport.addClientTLS(to: channel.pipeline.syncOperations, host: address.host)
                }
            }
            .connect(host: address.host, port: Int(address.port))
            .hop(to: eventLoop)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard !self.stopped else { channel.close(promise: nil); return }
                    self.channel = channel
                    self.sent = 0
                    self.acknowledged = 0
                    self.connectedAt = .now()
                    self.output(hello, on: channel, flush: true)
                case .failure(let error):
                    self.retry("cannot connect to \(address): \(error)")
                }
            }
    }

    fileprivate func received(_ bytes: [UInt8]) {
        guard var s = session, let channel else { return }
        let events: [RTMPClientEvent]
        do { events = try s.receive(bytes) } catch {
            session = s
            logger.warning("relay protocol error", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        session = s
        for e in events {
            switch e {
            case .send(let out):
                output(out, on: channel, flush: false)
            case .acknowledged(let count):
                // The origin counts modulo 2^32; far less than that is ever in flight.
                let now = sent - UInt64(UInt32(truncatingIfNeeded: sent) &- count)
                if now > acknowledged {
                    acknowledged = now
                    lastAcknowledgement = .now()
                }
            case .publishing:
                logger.info("relay publishing to the origin", metadata: ["origin": "\(target.map { "\($0)" } ?? "?")",
                                                                         "replayedTags": "\(buffer.count)"])
                lastAcknowledgement = .now()
                NodeMetrics.relayConnections.increment()
                setWaiting(false)
                reconnects = 0
                replay()
            case .rejected(let code, let description):
                logger.warning("origin refused the relay", metadata: ["code": "\(code)", "description": "\(description)"])
                stopped = true
                setWaiting(false)
                channel.close(promise: nil)
                onGiveUp("the stream's origin refused it: \(description)")
                return
            case .resume(let at):
                resume(fromKeyframeAt: at)
            case .status:
                break
            }
        }
        channel.flush()
    }

    /// The origin hands the stream to another node, having made everything before the keyframe at
    /// `timestamp`: the next connection starts with that keyframe, so nothing is made twice. A
    /// keyframe no longer held (it would have to be more than a GOP old) leaves the buffer whole:
    /// media twice rather than none.
    private func resume(fromKeyframeAt timestamp: UInt32) {
        guard let i = buffer.firstIndex(where: { e in
            guard e.keyframe, case .video(let ts, _) = e.tag else { return false }
            return ts == timestamp
        }) else {
            logger.warning("the origin asked to resume from a keyframe no longer held; replaying all held",
                           metadata: ["timestamp": "\(timestamp)"])
            return
        }
        drop(i)
        logger.info("relay resumes from the keyframe the origin handing the stream over named", metadata: ["timestamp": "\(timestamp)"])
    }

    /// Codec headers, then what is buffered (from a keyframe): the origin can decode from the
    /// first frame and nothing is lost. Each tag's place on this connection is noted anew.
    private func replay() {
        if let (ts, h) = videoHeader { write { $0.sendVideo(timestamp: ts, payload: h) } }
        if let (ts, h) = audioHeader { write { $0.sendAudio(timestamp: ts, payload: h) } }
        for i in buffer.indices {
            buffer[i].end = send(buffer[i].tag) ?? .max
        }
    }

    fileprivate func closed() {
        channel = nil
        session = nil
        guard !stopped else { return }
        setWaiting(true)
        retry("connection to the origin closed")
    }

    /// Tries again, against whoever owns the stream by then, for up to a minute.
    private func retry(_ why: String) {
        guard !stopped else { return }
        reconnects += 1
        guard reconnects <= 60 else {
            stopped = true
            setWaiting(false)
            onGiveUp("relay gave up: \(why)")
            return
        }
        logger.warning("relay reconnecting", metadata: ["why": "\(why)", "attempt": "\(reconnects)"])
        // Quickly at first (a failover or a handover takes a moment), then once a second.
        eventLoop.scheduleTask(in: .milliseconds(reconnects <= 10 ? 200 : 1000)) { self.connect() }
    }
}

private final class RelayChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let relay: IngestRelay
    init(relay: IngestRelay) { self.relay = relay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        relay.received(buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    func channelInactive(context: ChannelHandlerContext) {
        relay.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
