// IngestRelay: a broadcaster may push to any node. A node that does not own the stream
// relays it to the owner over RTMP (over mutual TLS when cluster-tls is on), as a publisher to
// the owner's "relay" application with a key signed by the cluster key. It keeps the GOP in
// progress and the one before it (and the codec headers) so that a new connection — to the same
// owner or, after a failover, to the next one — starts with a decodable picture at once, and a
// standby that the dead origin had not yet sent the end of the previous GOP gets it again; while
// no origin is connected it keeps everything since then (up to a budget), so a failover loses no
// media. The new origin drops what it recorded already (`LiveStream`'s held segments).
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

    let streamID: String
    /// Who publishes: named in every relay token, so the owner admits that person or no one.
    let publisher: Publisher
    private let router: ClusterRouter
    private let tokens: ClusterTokens
    private let eventLoop: any EventLoop
    private var logger: Logger
    private let onGiveUp: (String) -> Void

    private var channel: (any Channel)?
    private var session: RTMPClientSession?
    private var target: NodeID?
    private var stopped = false
    private var reconnects = 0
    /// Counted in `waitingRelays` (started, and no origin takes the stream yet or any more).
    private var waiting = false
    /// This node's relays without an origin: `streamtube_ingest_relays_without_origin`.
    private static let waitingRelays = Atomic<Int>(0)
    // What a new connection needs first: codec headers, then the GOP before the one in progress
    // and that one.
    private var videoHeader: (UInt32, [UInt8])?
    private var audioHeader: (UInt32, [UInt8])?
    private var gop: [Tag] = []
    private var gopBytes = 0
    /// Where in `gop` the GOP in progress begins, and the bytes before it.
    private var currentGOPStart = 0
    private var bytesBeforeCurrentGOP = 0
    static let maxGOPBytes = 32 << 20

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
        setWaiting(true)
        connect()
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
        } else {
            // Connected, the replay buffer drops the GOP before last at every keyframe: the origin
            // may die before its standby has the end of the last one. Cut off, it holds all media
            // since the GOP before the one in progress, until half the budget is used.
            if isKeyframe {
                if connected {
                    gop.removeFirst(currentGOPStart)
                    gopBytes -= bytesBeforeCurrentGOP
                } else if gopBytes > Self.maxGOPBytes / 2 {
                    gop.removeAll(keepingCapacity: true)
                    gopBytes = 0
                }
                currentGOPStart = gop.count
                bytesBeforeCurrentGOP = gopBytes
            }
            if gopBytes + payload.count <= Self.maxGOPBytes {
                gop.append(.video(timestamp, payload))
                gopBytes += payload.count
            }
        }
        write { $0.sendVideo(timestamp: timestamp, payload: payload) }
    }

    func send(audio payload: [UInt8], timestamp: UInt32, isHeader: Bool) {
        if isHeader {
            audioHeader = (timestamp, payload)
        } else if !gop.isEmpty, gopBytes + payload.count <= Self.maxGOPBytes {
            gop.append(.audio(timestamp, payload))
            gopBytes += payload.count
        }
        write { $0.sendAudio(timestamp: timestamp, payload: payload) }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        setWaiting(false)
        if var s = session, s.isPublishing, let channel {
            channel.writeAndFlush(ByteBuffer(bytes: s.unpublish()), promise: nil)
            session = s
        }
        channel?.close(promise: nil)
        channel = nil
    }

    private func write(_ make: (inout RTMPClientSession) -> [UInt8]) {
        guard var s = session, s.isPublishing, let channel else { return }
        let bytes = make(&s)
        session = s
        if !bytes.isEmpty { channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil) }
    }

    private func connect() {
        guard !stopped else { return }
        guard let placement = router.placement(of: streamID) else {
            return retry("no owner known for the stream")
        }
        let owner = placement.owner
        target = owner.id
        let address = owner.metadata.rtmpAddress
        let key = tokens.token(for: .relay, scope: RelayScope(streamID: streamID, publisher: publisher).scope)
        var s = RTMPClientSession(app: ClusterTokens.relayApp, tcURL: "rtmp://\(address)/\(ClusterTokens.relayApp)", streamKey: key,
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
                    channel.writeAndFlush(ByteBuffer(bytes: hello), promise: nil)
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
                channel.write(ByteBuffer(bytes: out), promise: nil)
            case .publishing:
                logger.info("relay publishing to the origin", metadata: ["origin": "\(target.map { "\($0)" } ?? "?")",
                                                                         "replayedTags": "\(gop.count)"])
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
            case .status:
                break
            }
        }
        channel.flush()
    }

    /// Codec headers, then the GOP before the one in progress, that one (and what came while
    /// no origin was connected): the origin can decode from the first frame and nothing is lost.
    private func replay() {
        if let (ts, h) = videoHeader { write { $0.sendVideo(timestamp: ts, payload: h) } }
        if let (ts, h) = audioHeader { write { $0.sendAudio(timestamp: ts, payload: h) } }
        for tag in gop {
            switch tag {
            case .video(let ts, let p): write { $0.sendVideo(timestamp: ts, payload: p) }
            case .audio(let ts, let p): write { $0.sendAudio(timestamp: ts, payload: p) }
            }
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
