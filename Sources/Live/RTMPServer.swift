// RTMPServer: the thin SwiftNIO shell around Origin's RTMP session core. It carries bytes
// in and out, asks the ingest policy whether and where a key may publish, and pushes media
// into the stream's live state or its relay. One bad connection is closed; nothing else is
// touched.
import Catalog
import Cluster
import Foundation
import HTTPSupport
import Logging
import NodeMetrics
import NIOCore
import NIOPosix
import NIOSSL
import Origin
import ServiceLifecycle
import Synchronization

/// The RTMP server's listener and the connections publishing on this node, for a graceful
/// leave: stop taking publishers, then close the ones there are so their relays move on.
package final class RTMPControl: Sendable {
    package init() {}
    /// RTMP's listener, and RTMPS's when the node serves it.
    private let listeners = Mutex<[any Channel]>([])
    private let publishers = Mutex<[UInt64: (stream: String, handler: NIOLoopBound<RTMPConnectionHandler>)]>([:])

    func listening(on channel: any Channel) { listeners.withLock { $0.append(channel) } }

    func add(_ id: UInt64, stream: String, _ handler: NIOLoopBound<RTMPConnectionHandler>) {
        publishers.withLock { $0[id] = (stream, handler) }
    }
    func remove(_ id: UInt64) { _ = publishers.withLock { $0.removeValue(forKey: id) } }

    /// Closes the connection a hand-over displaced (on its own event loop), telling its broadcaster why.
    func closeDisplaced(_ id: UInt64, code: String, description: String) {
        guard let handler = publishers.withLock({ $0[id]?.handler }) else { return }
        handler.eventLoop.execute { handler.value.closeDisplaced(code: code, description: description) }
    }
    package var publishingCount: Int { publishers.withLock { $0.count } }

    /// The streams published into this node's origin now.
    package var publishedStreams: Set<String> { publishers.withLock { Set($0.values.map(\.stream)) } }

    /// Hands a stream published here to the node the ring names its owner (`OwnershipHandover`):
    /// at the publisher's next keyframe this node's session ends; once `ready` returns (the owner
    /// has all this node made, or it gave up waiting: false) a relay is told to start from that
    /// keyframe and closed, and a broadcaster's own connection becomes a relay to the owner from
    /// it. Returns how many connections it asked.
    @discardableResult
    package func handOver(stream: String, ready: @escaping @Sendable () async -> Bool) -> Int {
        let handlers = handlers(of: stream)
        for handler in handlers {
            handler.eventLoop.execute { handler.value.handOverToOwner(ready: ready) }
        }
        return handlers.count
    }

    /// Gives up a hand-over not done yet (the ring named this node the owner again).
    package func cancelHandOver(stream: String) {
        for handler in handlers(of: stream) {
            handler.eventLoop.execute { handler.value.cancelHandOver() }
        }
    }

    /// The connections publishing `stream` into this node's origin.
    private func handlers(of stream: String) -> [NIOLoopBound<RTMPConnectionHandler>] {
        publishers.withLock { $0.values.filter { $0.stream == stream }.map(\.handler) }
    }

    /// Stops accepting connections and closes every publishing one; returns how many.
    @discardableResult
    package func closeAll(reason: String) async -> Int {
        for channel in listeners.withLock({ $0 }) { try? await channel.close() }
        let all = publishers.withLock { p in defer { p = [:] }; return p.values.map(\.handler) }
        for handler in all {
            try? await handler.eventLoop.submit { handler.value.closeForHandover(reason: reason) }.get()
        }
        return all.count
    }
}

/// How many connections the RTMP server holds before anyone is trusted: per address and in
/// total while anonymous (no stream key accepted yet), and overall. A connection over a
/// limit is closed as soon as it opens; relays from cluster members are not counted per
/// address (a failover reconnects many at once).
package final class RTMPAdmission: Sendable {
    package struct Limits: Sendable {
        package var anonymousPerAddress = 64
        package var anonymousTotal = 512
        package var total = 4096
        /// The handshake must be done by then, and a key accepted by `authDeadline`.
        package var handshakeDeadline: TimeAmount = .seconds(5)
        package var authDeadline: TimeAmount = .seconds(15)
        package init() {}
    }

    package let limits: Limits
    private let state = Mutex<(byAddress: [String: Int], anonymous: Int, total: Int)>(([:], 0, 0))

    package init(limits: Limits = Limits()) { self.limits = limits }

    /// Takes a slot for a new connection; the refusal reason when there is none.
    func open(address: String, exempt: Bool) -> String? {
        state.withLock { s in
            if s.total >= limits.total { return "too_many_connections" }
            if s.anonymous >= limits.anonymousTotal { return "too_many_anonymous" }
            if !exempt, s.byAddress[address, default: 0] >= limits.anonymousPerAddress { return "too_many_from_address" }
            s.total += 1
            s.anonymous += 1
            if !exempt { s.byAddress[address, default: 0] += 1 }
            return nil
        }
    }

    /// The connection's key was accepted: it no longer counts as anonymous.
    func authenticated(address: String, exempt: Bool) {
        state.withLock { s in
            s.anonymous -= 1
            if !exempt { Self.release(&s.byAddress, address) }
        }
    }

    func close(address: String, exempt: Bool, anonymous: Bool) {
        state.withLock { s in
            s.total -= 1
            if anonymous {
                s.anonymous -= 1
                if !exempt { Self.release(&s.byAddress, address) }
            }
        }
    }

    private static func release(_ counts: inout [String: Int], _ address: String) {
        let n = counts[address, default: 0] - 1
        counts[address] = n > 0 ? n : nil
    }

    package var anonymousCount: Int { state.withLock { $0.anonymous } }
}

package struct RTMPServer: Service {
    let host: String
    let port: Int
    package let policy: IngestPolicy
    let control: RTMPControl
    package let admission: RTMPAdmission
    let logger: Logger
    /// With cluster TLS, relays from other nodes come over TLS on the same port.
    let clusterTLS: ClusterTLS?
    /// Load balancers whose connections start with a PROXY protocol header naming the broadcaster.
    let trustedProxies: TrustedProxies
    /// RTMPS: the node's own certificate (broadcasters, not nodes), TLS in front of RTMP.
    let tls: NIOSSLContext?
    let onBound: @Sendable (Int) -> Void

    package init(host: String, port: Int, policy: IngestPolicy, control: RTMPControl = RTMPControl(),
                 admission: RTMPAdmission = RTMPAdmission(), clusterTLS: ClusterTLS? = nil, trustedProxies: TrustedProxies = TrustedProxies(),
                 tls: NIOSSLContext? = nil, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.trustedProxies = trustedProxies
        self.tls = tls
        self.host = host
        self.port = port
        self.policy = policy
        self.control = control
        self.admission = admission
        self.clusterTLS = clusterTLS
        self.logger = logger
        self.onBound = onBound
    }

    package func run() async throws {
        let policy = self.policy
        let logger = self.logger
        let control = self.control
        let admission = self.admission
        let clusterTLS = self.clusterTLS
        let trustedProxies = self.trustedProxies
        let tls = self.tls
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = { (pipeline: ChannelPipeline.SynchronousOperations, peer: SocketAddress?) throws in
                        if let tls {
                            try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                        } else if let clusterTLS {
                            try pipeline.addHandler(ClusterTLSSniffer(context: clusterTLS.serverContext, listener: "rtmp", logger: logger))
                        }
                        try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                        try pipeline.addHandler(RTMPConnectionHandler(policy: policy, control: control, admission: admission, logger: logger,
                                                                      peer: peer))
                    }
                    // From a load balancer: the broadcaster's address comes first, in a PROXY header.
                    guard trustedProxies.contains(channel.remoteAddress) else {
                        return try handlers(channel.pipeline.syncOperations, channel.remoteAddress)
                    }
                    try channel.pipeline.syncOperations.addHandler(ProxyHeaderHandler(then: handlers, refused: { why in
                        logger.warning("rtmp connection from a trusted proxy refused: bad PROXY header",
                                       metadata: ["proxy": "\(channel.remoteAddress?.description ?? "?")", "why": "\(why)"])
                        NodeMetrics.rtmpConnectionsRefused(reason: "proxy_header").increment()
                    }))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        control.listening(on: channel)
        onBound(bound)
        logger.info(tls == nil ? "rtmp listening" : "rtmps listening",
                    metadata: ["host": "\(host)", "port": "\(bound)", "clusterTLS": "\(clusterTLS != nil ? "on" : "off")"])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
            // Closed by a handover: the service still runs until it is told to stop.
            try? await gracefulShutdown()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// One RTMP connection.
package final class RTMPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private static let nextID = Atomic<UInt64>(0)

    private let policy: IngestPolicy
    private let control: RTMPControl
    private var context: ChannelHandlerContext?
    private var logger: Logger
    private let connectionID: UInt64
    private var session: RTMPServerSession
    /// Where this connection's media goes: this node's origin pipeline, or a relay to the owner.
    private enum Target {
        case local(id: String, live: LiveStream, claim: PublisherClaim, session: Int, origin: LocalOrigin)
        case relay(id: String, relay: IngestRelay)
    }
    /// What a connection publishing into this node's origin needs to become a relay instead.
    struct LocalOrigin {
        var record: StreamRecord
        var relayed: Bool
    }
    private var publishing: Target?
    /// The broadcaster's codec headers as last sent (a relay made mid-stream starts with them).
    private var videoHeader: (UInt32, [UInt8])?
    private var audioHeader: (UInt32, [UInt8])?
    /// Set when this connection's stream is to go to its owner at the next keyframe: what must
    /// be done before the relay starts.
    private var handOverWhenReady: (@Sendable () async -> Bool)?
    private var pendingLookup = false
    private var closed = false
    private let admission: RTMPAdmission
    /// The peer's IP address, as admission counts it; nil until the connection is admitted.
    private var admitted: (address: String, exempt: Bool, anonymous: Bool)?
    private var deadline: Scheduled<Void>?
    /// A relay's publish: when it last sent anything, and the watch that ends a silent one.
    private var lastRead = NIODeadline.now()
    private var relayWatch: RepeatedTask?
    /// A relay sends media all the time and leaves an origin that stops acknowledging within 3 s;
    /// one silent this long is gone (its node cut off or partitioned away), and this node stops
    /// taking itself for the stream's origin long before the 30 s a broadcaster is allowed.
    static let relaySilence: TimeAmount = .seconds(10)
    private let peerAddress: String

    init(policy: IngestPolicy, control: RTMPControl, admission: RTMPAdmission, logger: Logger, peer: SocketAddress?) {
        self.policy = policy
        self.control = control
        self.admission = admission
        self.peerAddress = peer?.ipAddress ?? "?"
        self.connectionID = Self.nextID.add(1, ordering: .relaxed).newValue
        var logger = logger
        logger[metadataKey: "conn"] = "\(connectionID)"
        logger[metadataKey: "peer"] = "\(peer?.description ?? "?")"
        self.logger = logger
        self.session = RTMPServerSession(randomBytes: { n in (0..<n).map { _ in UInt8.random(in: 0...255) } })
        NodeMetrics.rtmpConnections.increment()
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func channelActive(context: ChannelHandlerContext) {
        let exempt = policy.isClusterMember(address: peerAddress)
        if let refusal = admission.open(address: peerAddress, exempt: exempt) {
            logger.warning("rtmp connection refused", metadata: ["reason": "\(refusal)"])
            NodeMetrics.rtmpConnectionsRefused(reason: refusal).increment()
            closed = true
            context.close(promise: nil)
            return
        }
        admitted = (peerAddress, exempt, true)
        // The handshake must be over soon, and a key accepted soon after.
        deadline = context.eventLoop.scheduleTask(in: admission.limits.handshakeDeadline) { [weak self] in
            guard let self, !self.closed, !self.session.isHandshakeComplete else { return self?.scheduleAuthDeadline(context) ?? () }
            self.logger.info("rtmp handshake too slow, closing")
            NodeMetrics.rtmpConnectionsRefused(reason: "handshake_timeout").increment()
            self.close(context)
        }
        context.fireChannelActive()
    }

    private func scheduleAuthDeadline(_ context: ChannelHandlerContext) {
        let remaining = admission.limits.authDeadline - admission.limits.handshakeDeadline
        deadline = context.eventLoop.scheduleTask(in: remaining) { [weak self] in
            guard let self, !self.closed, !self.session.isAuthenticated else { return }
            // A key being looked up in the database or on other nodes gets its answer first.
            if self.pendingLookup { return self.scheduleAuthDeadline(context) }
            self.logger.info("rtmp connection published nothing in time, closing")
            NodeMetrics.rtmpConnectionsRefused(reason: "auth_timeout").increment()
            self.close(context)
        }
    }

    /// The key was accepted: the connection is no longer anonymous.
    private func noteAuthenticated() {
        guard let a = admitted, a.anonymous else { return }
        admitted?.anonymous = false
        admission.authenticated(address: a.address, exempt: a.exempt)
        deadline?.cancel()
        deadline = nil
    }

    /// Another publisher took the stream over (a hand-over between host and co-hosts): the
    /// stream goes on with them, so this connection ends nothing; its broadcaster is told why.
    func closeDisplaced(code: String, description: String) {
        guard let context, !closed else { return }
        logger.info("rtmp publisher displaced by a hand-over", metadata: ["description": "\(description)"])
        end(code: code, description: description, reason: "handed over", context: context)
    }

    /// Ends a publish that was accepted: the status saying why, then — a moment later, for the
    /// broadcaster to read it (ffmpeg reads the server between its writes) — the connection goes.
    /// What it sends meanwhile feeds nothing.
    private func end(code: String, description: String, reason: String, context: ChannelHandlerContext) {
        send(session.rejectPublish(code: code, description: description), context: context)
        context.flush()
        stopPublishing(reason: reason)
        context.eventLoop.scheduleTask(in: .seconds(1)) { [weak self] in self?.close(context) }
    }

    /// Graceful leave: the stream is handed over (the standby has it); the publisher is
    /// closed so that its relay reconnects to the new owner.
    func closeForHandover(reason: String) {
        guard let context, !closed else { return }
        stopPublishing(reason: reason)
        close(context)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        lastRead = .now()
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        NodeMetrics.rtmpBytesReceived.increment(by: bytes.count)
        let events: [RTMPServerEvent]
        do {
            events = try session.receive(bytes)
        } catch {
            logger.warning("rtmp protocol error, closing", metadata: ["error": "\(error)"])
            NodeMetrics.rtmpProtocolErrors.increment()
            close(context)
            return
        }
        for event in events {
            guard !closed else { break }
            handle(event, context: context)
        }
        if !closed { context.flush() }
    }

    private func send(_ bytes: [UInt8], context: ChannelHandlerContext) {
        guard !bytes.isEmpty else { return }
        context.write(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
    }

    private func handle(_ event: RTMPServerEvent, context: ChannelHandlerContext) {
        switch event {
        case .send(let bytes):
            send(bytes, context: context)
        case .connected(let app, _):
            logger.debug("rtmp connect", metadata: ["app": "\(app)"])
        case .publishRequested(let app, let key):
            publish(app: app, key: key, context: context)
        case .metadata:
            break
        case .video(let timestamp, let payload):
            guard let target = publishing else { return }
            do {
                let tag = try FLVVideoTag.parse(payload)
                switch target {
                case .local(let id, let live, let claim, _, let origin):
                    // Handed over to someone else: not one more frame of this publisher's.
                    guard !claim.isDisplaced else { return }
                    if tag.isKeyframe, !policy.stillPublisher(id, claim.publisher) {
                        return removed(claim.publisher, context: context)
                    }
                    if case .avcSequenceHeader = tag.packet { videoHeader = (timestamp, payload) }
                    if tag.isKeyframe, tag.codecID == 7, case .avcNALUs = tag.packet, let ready = handOverWhenReady {
                        // The stream goes to its owner from this keyframe on: what came before ends here.
                        handOverWhenReady = nil
                        if origin.relayed {
                            return endForOwner(resumeAt: timestamp, ready: ready, context: context)
                        }
                        return becomeRelay(origin, publisher: claim.publisher, ready: ready, first: (timestamp, payload), context: context)
                    }
                    try live.ingest(video: tag, timestamp: timestamp, byteCount: payload.count)
                case .relay(_, let relay):
                    guard tag.codecID == 7 else { throw PackagingError.unsupportedVideoCodec(tag.codecID) }
                    var header = false
                    if case .avcSequenceHeader = tag.packet { header = true }
                    relay.send(video: payload, timestamp: timestamp, isKeyframe: tag.isKeyframe, isHeader: header)
                }
            } catch {
                refuseMedia(error, context: context)
            }
        case .audio(let timestamp, let payload):
            guard let target = publishing else { return }
            do {
                let tag = try FLVAudioTag.parse(payload)
                switch target {
                case .local(_, let live, let claim, _, _):
                    guard !claim.isDisplaced else { return }
                    if case .aacSequenceHeader = tag.packet { audioHeader = (timestamp, payload) }
                    try live.ingest(audio: tag, timestamp: timestamp, byteCount: payload.count)
                case .relay(_, let relay):
                    var header = false
                    if case .aacSequenceHeader = tag.packet { header = true }
                    relay.send(audio: payload, timestamp: timestamp, isHeader: header)
                }
            } catch {
                refuseMedia(error, context: context)
            }
        case .unpublished:
            stopPublishing(reason: "publisher stopped")
        case .unknownCommand(let name):
            logger.debug("rtmp command ignored", metadata: ["command": "\(name)"])
        }
    }

    private func reject(_ refusal: IngestRefusal, app: String, context: ChannelHandlerContext) {
        logger.warning("rtmp publish refused", metadata: ["reason": "\(refusal.reason)", "app": "\(app)"])
        NodeMetrics.publishRefused(reason: refusal.reason).increment()
        send(session.rejectPublish(code: refusal.code, description: refusal.description), context: context)
        close(context)
    }

    private func publish(app: String, key: String, context: ChannelHandlerContext) {
        guard publishing == nil, !pendingLookup else {
            return reject(.init(code: "NetStream.Publish.BadName", description: "This connection is already publishing",
                                reason: "second_publish"), app: app, context: context)
        }
        let overTLS = ClusterTransport.isMutualTLS(context.pipeline.syncOperations)
        switch policy.resolve(app: app, key: key, overTLS: overTLS) {
        case .refused(let refusal):
            if refusal == .relayWithoutTLS { NodeMetrics.clusterPlaintextRefused(listener: "rtmp").increment() }
            reject(refusal, app: app, context: context)
        case .known(let record, let publisher, let relayed):
            start(record, as: publisher, relayed: relayed, app: app, context: context)
        case .lookUp(let query, let relayedFor):
            lookUp(query, relayedFor: relayedFor, app: app, context: context)
        }
    }

    /// Looks a stream up in the database (made on another node, say), then goes on on the loop.
    private func lookUp(_ query: StreamCatalog.Query, relayedFor: Publisher?, app: String, context: ChannelHandlerContext) {
        pendingLookup = true
        let catalog = policy.streams.catalog
        let policy = self.policy
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await catalog.find(query) }.whenComplete { result in
            let (handler, context) = bound.value
            handler.pendingLookup = false
            guard !handler.closed else { return }
            guard case .success(let record?) = result, let publisher = policy.publisher(of: record, query, relayedFor: relayedFor) else {
                return handler.reject(.unknownKey, app: app, context: context)
            }
            handler.start(record, as: publisher, relayed: relayedFor != nil, app: app, context: context)
            context.flush()
        }
    }

    private func start(_ record: StreamRecord, as publisher: Publisher, relayed: Bool, app: String, context: ChannelHandlerContext) {
        logger[metadataKey: "stream"] = "\(record.id)"
        logger[metadataKey: "publisher"] = "\(publisher)"
        switch policy.admit(record, as: publisher, relayed: relayed, connection: connectionID) {
        case .failure(let refusal):
            reject(refusal, app: app, context: context)
        case .success(.relay(let record, let publisher, let cluster)):
            let relay = makeRelay(record, as: publisher, relayed: relayed, cluster: cluster, context: context)
            publishing = .relay(id: record.id, relay: relay)
            relay.start()
            send(session.acceptPublish(), context: context)
            noteAuthenticated()
            logger.info("rtmp publish started, relaying to the origin", metadata: ["title": "\(record.title)"])
            NodeMetrics.publishStarted.increment()
        case .success(.local(let record, let live, let claim, let displaced)):
            publishLocally(record, live: live, claim: claim, displaced: displaced, as: publisher, relayed: relayed, context: context)
            send(session.acceptPublish(), context: context)
            noteAuthenticated()
            logger.info(relayed ? "rtmp relay publish started" : "rtmp publish started", metadata: ["title": "\(record.title)"])
            NodeMetrics.publishStarted.increment()
        }
    }

    /// A relay of this connection's stream to its owner; if the ring names this node the owner, the
    /// connection takes the stream into this node's origin (`takeOverHere`).
    private func makeRelay(_ record: StreamRecord, as publisher: Publisher, relayed: Bool, cluster: IngestCluster,
                           context: ChannelHandlerContext) -> IngestRelay {
        let relay = IngestRelay(streamID: record.id, publisher: publisher, router: cluster.router, tokens: cluster.tokens,
                                eventLoop: context.eventLoop, logger: logger) { [weak self] why in
            guard let self, !self.closed else { return }
            self.logger.warning("relay ended; closing the broadcaster's connection", metadata: ["why": "\(why)"])
            self.end(code: "NetStream.Publish.Failed", description: why, reason: "relay ended", context: context)
        }
        relay.onOwnedHere = { [weak self] tags in
            guard let self, !self.closed else { return false }
            return self.takeOverHere(record, as: publisher, relayed: relayed, tags: tags, context: context)
        }
        return relay
    }

    /// The ring named another node the owner of the stream this connection publishes here (a node
    /// joined, a partition healed), and that node has what this one made. At the next keyframe
    /// this node's session ends, and from that keyframe on the owner makes the stream: a relay is
    /// told to start there on its next connection and closed (it reconnects to the owner); a
    /// broadcaster's own connection becomes a relay to the owner. Nothing is made twice, nothing lost.
    func handOverToOwner(ready: @escaping @Sendable () async -> Bool) {
        guard !closed, case .local(_, _, let claim, _, _) = publishing, !claim.isDisplaced else { return }
        logger.info("stream to be handed to its owner at the next keyframe")
        handOverWhenReady = ready
    }

    func cancelHandOver() {
        guard handOverWhenReady != nil else { return }
        handOverWhenReady = nil
        logger.info("hand-over to the stream's owner given up: this node owns the stream again")
    }

    /// Ends this node's session of a relayed stream before the keyframe at `resumeAt`; once the
    /// owner has the end of it, tells the relay to start from that keyframe and closes.
    private func endForOwner(resumeAt timestamp: UInt32, ready: @escaping @Sendable () async -> Bool, context: ChannelHandlerContext) {
        stopPublishing(reason: "handed to the stream's owner")
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await ready() }.whenComplete { result in
            let (handler, context) = bound.value
            guard !handler.closed else { return }
            if case .success(false) = result {
                handler.logger.warning("the owner did not get the end of the session in time; handing the stream over anyway")
            }
            handler.send(handler.session.handOver(resumeAt: timestamp), context: context)
            context.flush()
            handler.logger.info("rtmp relay told to resume at the owner from a keyframe", metadata: ["timestamp": "\(timestamp)"])
            handler.close(context)
        }
    }

    /// Ends this node's session of the stream at a keyframe and relays from it on to the owner,
    /// the codec headers first; the relay connects once the owner has the end of the session.
    private func becomeRelay(_ origin: LocalOrigin, publisher: Publisher, ready: @escaping @Sendable () async -> Bool,
                             first keyframe: (UInt32, [UInt8]), context: ChannelHandlerContext) {
        guard let cluster = policy.cluster else { return }
        stopPublishing(reason: "handed to the stream's owner")
        let relay = makeRelay(origin.record, as: publisher, relayed: false, cluster: cluster, context: context)
        publishing = .relay(id: origin.record.id, relay: relay)
        if let (ts, h) = videoHeader { relay.send(video: h, timestamp: ts, isKeyframe: true, isHeader: true) }
        if let (ts, h) = audioHeader { relay.send(audio: h, timestamp: ts, isHeader: true) }
        relay.send(video: keyframe.1, timestamp: keyframe.0, isKeyframe: true, isHeader: false)
        logger.info("rtmp publish handed to the stream's owner; relaying from this keyframe on")
        context.eventLoop.makeFutureWithTask { await ready() }.whenComplete { _ in relay.start() }
    }

    /// The ring named this node the owner of a stream this connection was relaying: its media
    /// goes into this node's origin from now on, starting with what the relay held.
    private func takeOverHere(_ record: StreamRecord, as publisher: Publisher, relayed: Bool,
                              tags: [(video: Bool, timestamp: UInt32, payload: [UInt8])], context: ChannelHandlerContext) -> Bool {
        guard case .relay = publishing,
              case .success(.local(let record, let live, let claim, let displaced)) = policy.admit(record, as: publisher, relayed: relayed,
                                                                                                   connection: connectionID) else { return false }
        publishLocally(record, live: live, claim: claim, displaced: displaced, as: publisher, relayed: relayed, context: context)
        logger.info("rtmp publish taken over from the relay in process", metadata: ["replayedTags": "\(tags.count)"])
        for tag in tags {
            handle(tag.video ? .video(timestamp: tag.timestamp, payload: tag.payload) : .audio(timestamp: tag.timestamp, payload: tag.payload),
                   context: context)
        }
        return true
    }

    private func publishLocally(_ record: StreamRecord, live: LiveStream, claim: PublisherClaim, displaced: PublisherClaim?,
                                as publisher: Publisher, relayed: Bool, context: ChannelHandlerContext) {
        control.add(connectionID, stream: record.id, NIOLoopBound(self, eventLoop: context.eventLoop))
        let origin = LocalOrigin(record: record, relayed: relayed)
        if relayed, relayWatch == nil {
            relayWatch = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] task in
                guard let self, !self.closed else { return task.cancel() }
                guard NIODeadline.now() - self.lastRead > Self.relaySilence else { return }
                self.logger.warning("relay silent, closing its connection", metadata: ["seconds": "\(Self.relaySilence.nanoseconds / 1_000_000_000)"])
                task.cancel()
                self.stopPublishing(reason: "relay silent")
                self.close(context)
            }
        }
        if let displaced {
            // A hand-over: the stream goes on as a new session of the same playlists (a
            // discontinuity); the displaced publisher is closed, ending nothing.
            publishing = .local(id: record.id, live: live, claim: claim, session: live.handOverPublishing(), origin: origin)
            control.closeDisplaced(displaced.connection, code: "NetStream.Publish.BadName", description: Self.handedOver(record, to: publisher))
            logger.info("stream handed over", metadata: ["from": "\(displaced.publisher)", "to": "\(publisher)",
                                                         "displacedConn": "\(displaced.connection)"])
            NodeMetrics.publisherHandovers.increment()
        } else {
            publishing = .local(id: record.id, live: live, claim: claim, session: live.beginPublishing(), origin: origin)
        }
    }

    /// What a publisher a hand-over displaced is told.
    static func handedOver(_ record: StreamRecord, to publisher: Publisher) -> String {
        switch publisher {
        case .host: return "Stream \(record.id) was taken back by its host"
        case .cohost: return "Stream \(record.id) was handed to a co-host"
        }
    }

    /// A co-host removed while publishing: closed at their next keyframe.
    private func removed(_ publisher: Publisher, context: ChannelHandlerContext) {
        logger.warning("rtmp publisher is no longer a co-host, closing")
        NodeMetrics.publishersRemoved.increment()
        end(code: "NetStream.Publish.BadName", description: "You are no longer a co-host of this stream", reason: "co-host removed",
            context: context)
    }

    private func refuseMedia(_ error: any Error, context: ChannelHandlerContext) {
        let message = "\(error)"
        logger.warning("rtmp media refused, closing", metadata: ["error": "\(message)"])
        NodeMetrics.rtmpMediaErrors.increment()
        send(session.rejectPublish(code: "NetStream.Publish.Failed", description: message), context: context)
        stopPublishing(reason: "media refused")
        close(context)
    }

    /// Why a relayed session ends that gives it up (`LiveStream.endPublishing(abandon:)`).
    static let givesUp: Set<String> = ["relay silent", "connection error", "connection closed"]

    private func stopPublishing(reason: String) {
        guard let target = publishing else { return }
        publishing = nil
        switch target {
        case .local(let id, let live, let claim, let session, let origin):
            handOverWhenReady = nil
            // Displaced by a hand-over, the stream is someone else's to end.
            if !claim.isDisplaced {
                // A relay's connection gone silent or broken is given up, not ended: its publisher may
                // well go on through another node (the cluster moved the stream, or this one is cut off).
                live.endPublishing(session: session, abandon: origin.relayed && Self.givesUp.contains(reason))
                policy.release(id, connection: connectionID)
            }
            control.remove(connectionID)
        case .relay(_, let relay):
            relay.stop()
        }
        logger.info("rtmp publish ended", metadata: ["reason": "\(reason)"])
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
        context.close(promise: nil)
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            logger.info("rtmp connection idle, closing")
            stopPublishing(reason: "idle")
            close(context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        relayWatch?.cancel()
        if let a = admitted {
            admission.close(address: a.address, exempt: a.exempt, anonymous: a.anonymous)
            admitted = nil
        }
        stopPublishing(reason: "connection closed")
        closed = true
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("rtmp connection error", metadata: ["error": "\(error)"])
        stopPublishing(reason: "connection error")
        close(context)
    }
}
