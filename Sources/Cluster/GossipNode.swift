// GossipNode: the SwiftNIO shell around Gossip's membership state machine. One event loop
// owns the state machine, the UDP socket (probes and piggybacked gossip) and the TCP
// listener (push-pull full-state exchanges); it carries out the machine's directives and
// publishes a read-only snapshot (`ClusterView`) for HTTP handlers and ingest.
//
// Publishing costs what changed: the member list and the hash ring are rebuilt only when
// the membership or a member's metadata changes (a `membershipChanged` directive); round
// trips, coordinates and traffic counters, which move with every ack, are refreshed once a
// second. No datagram pays for a walk of the member table.
import Foundation
import Gossip
import Logging
import NodeMetrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

package struct GossipSettings: Sendable {
    package var bindHost: String
    package var port: Int
    package var seeds: [Endpoint]
    package var config: GossipConfig
    package var keyring: Keyring

    package init(bindHost: String, port: Int, seeds: [Endpoint], config: GossipConfig, keyring: Keyring) {
        self.bindHost = bindHost
        self.port = port
        self.seeds = seeds
        self.config = config
        self.keyring = keyring
    }
}

package final class GossipNode: Service, Sendable {
    package let settings: GossipSettings
    package let view: ClusterView
    private let logger: Logger
    /// The loop that owns the state below. `package` so the datagram benchmark
    /// (`GossipNodeBench`) can drive `onDatagram` on it as the socket handler does.
    package let loop: any EventLoop
    private let local: MemberMetadata
    /// Everything below lives on `loop`.
    private let box: NIOLoopBoundBox<LoopState>

    final class LoopState {
        var membership: Membership
        var codec: PacketCodec
        var udp: (any Channel)?
        var tick: Scheduled<Void>?
        var inbound: [Endpoint: any Channel] = [:]
        var resolved: [Endpoint: SocketAddress] = [:]
        var lastStats = GossipStats()
        var joinRetryScheduled = false
        /// Who is a member, or a status, changed since the view was last rebuilt: rebuilt at once.
        var membersChanged = true
        /// Only a member's metadata (its load, say) changed: the rebuild waits a moment, so a
        /// burst of such updates costs one rebuild, not one a datagram.
        var metadataRebuildScheduled = false
        init(membership: Membership, codec: PacketCodec) {
            self.membership = membership
            self.codec = codec
        }
    }

    /// Push-pull over TCP (framing, decryption) runs on a loop of its own, so a slow or hostile
    /// peer never delays the probes and acks of the failure detector.
    private static let streamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let streamCodec: Mutex<PacketCodec>
    /// The largest full-state frame accepted: room for the members known, and no more.
    private let frameLimit = Atomic<Int>(GossipNode.frameLimit(members: 1))
    private let inboundConnections = Atomic<Int>(0)
    /// Inbound push-pull connections held at once; more are closed as they open.
    package static let maxInboundStreams = 64
    /// A push-pull connection that sends nothing for this long is closed, and any inbound one
    /// at the deadline.
    package static let streamReadTimeout: TimeAmount = .seconds(5)
    package static let streamDeadline: TimeAmount = .seconds(10)

    /// How long a metadata-only change waits for others before the view is rebuilt.
    package static let metadataRebuildDelay: TimeAmount = .milliseconds(100)

    static func frameLimit(members: Int) -> Int { 64 << 10 + 256 * members }

    /// The node's current load (streams it is publishing), gossiped in its metadata.
    private let load: @Sendable () -> Int

    package init(settings: GossipSettings, local: MemberMetadata, logger: Logger, load: @escaping @Sendable () -> Int = { 0 }) {
        self.settings = settings
        self.load = load
        self.local = local
        self.logger = logger
        self.view = ClusterView(localID: local.id)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        self.loop = loop
        let seed = UInt64.random(in: 0...UInt64.max)
        let membership = Membership(config: settings.config, local: local, incarnation: GossipNode.startIncarnation(),
                                    seed: seed, now: GossipNode.now())
        self.box = NIOLoopBoundBox.makeBoxSendingValue(LoopState(membership: membership, codec: PacketCodec(keyring: settings.keyring, config: settings.config)),
                                   as: LoopState.self, eventLoop: loop)
        self.streamCodec = Mutex(PacketCodec(keyring: settings.keyring, config: settings.config))
    }

    /// A restarted node comes back with a higher incarnation than any it had before: the
    /// wall clock in seconds grows across restarts without keeping state on disk.
    package static func startIncarnation() -> UInt64 { UInt64(Date().timeIntervalSince1970) }

    package static func now() -> GossipInstant { GossipInstant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)) }

    package func run() async throws {
        let udp = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramHandler(node: self))
                }
            }
            .bind(host: settings.bindHost, port: settings.port).get()
        let tcp = try await ServerBootstrap(group: Self.streamGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard self.inboundConnections.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maxInboundStreams else {
                        self.inboundConnections.wrappingSubtract(1, ordering: .relaxed)
                        channel.close(promise: nil)
                        return
                    }
                    // An exchange takes milliseconds: no connection is held past the deadline, however it trickles.
                    let deadline = channel.eventLoop.scheduleTask(in: Self.streamDeadline) { channel.close(promise: nil) }
                    channel.closeFuture.whenComplete { _ in
                        deadline.cancel()
                        self.inboundConnections.wrappingSubtract(1, ordering: .relaxed)
                    }
                    try self.addStreamHandlers(channel, peer: nil)
                }
            }
            .bind(host: settings.bindHost, port: settings.port).get()
        logger.info("gossip listening", metadata: ["port": "\(settings.port)", "seeds": "\(settings.seeds.map(\.description))",
                                                   "cluster": "\(settings.config.clusterName)"])
        try await loop.submit {
            let s = self.box.value
            s.udp = udp
            self.perform(s.membership.join(seeds: self.settings.seeds, now: Self.now()))
            // Load changes ride in the metadata; checked every few seconds, sent only on change.
            self.loop.scheduleRepeatedTask(initialDelay: .seconds(2), delay: .seconds(2)) { _ in
                let s = self.box.value
                let current = UInt32(clamping: self.load())
                guard !s.membership.isLeaving, s.membership.localMember.metadata.load != current else { return }
                self.perform(s.membership.updateMetadata(now: Self.now()) { $0.load = current })
            }
            // Round trips, coordinates and counters move with every ack: refreshed once a second.
            self.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                self.box.value.membersChanged = true
                self.publish()
                self.recordMetrics()
            }
        }.get()
        try await withGracefulShutdownHandler {
            // Cancelled (the node is going down hard): close rather than wait for the goodbye.
            try await withTaskCancellationHandler {
                try await udp.closeFuture.get()
            } onCancel: {
                udp.close(promise: nil)
                tcp.close(promise: nil)
            }
        } onGracefulShutdown: {
            // Say goodbye so the others see a leave rather than a failure, then close.
            self.loop.execute {
                let s = self.box.value
                self.perform(s.membership.leave(now: Self.now()))
                self.loop.scheduleTask(in: .milliseconds(300)) {
                    self.box.value.tick?.cancel()
                    udp.close(promise: nil)
                    tcp.close(promise: nil)
                }
            }
        }
        try? await tcp.close()
    }

    /// Leaves the cluster now, before the rest of the node stops (a graceful handover), and
    /// gives the goodbye a moment to spread. Idempotent.
    package func leave() async {
        try? await loop.submit {
            let s = self.box.value
            self.perform(s.membership.leave(now: Self.now()))
        }.get()
        try? await Task.sleep(for: .milliseconds(300))
    }

    // MARK: On the loop

    private func perform(_ directives: [Directive]) {
        let s = box.value
        for d in directives {
            switch d {
            case .sendDatagram(let to, let messages):
                do {
                    let bytes = try s.codec.sealDatagram(messages)
                    guard let address = resolve(to), let udp = s.udp else { continue }
                    udp.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)), promise: nil)
                } catch {
                    logger.warning("gossip datagram not sent", metadata: ["to": "\(to)", "error": "\(error)"])
                }
            case .sendFullState(let to, let state):
                sendFullState(state, to: to)
            case .membershipChanged(let change) where !change.isRemoval && change.previousStatus == change.member.status:
                // The same member, the same status: new metadata only.
                logger.debug("member metadata changed", metadata: ["member": "\(change.member.id)", "load": "\(change.member.metadata.load)"])
                if !s.metadataRebuildScheduled {
                    s.metadataRebuildScheduled = true
                    loop.scheduleTask(in: Self.metadataRebuildDelay) {
                        let s = self.box.value
                        s.metadataRebuildScheduled = false
                        s.membersChanged = true
                        self.publish()
                    }
                }
            case .membershipChanged(let change):
                s.membersChanged = true
                logger.info("member changed", metadata: ["member": "\(change.member.id)", "from": "\(change.previousStatus.map { "\($0)" } ?? "unknown")",
                                                         "to": "\(change.isRemoval ? "removed" : "\(change.member.status)")",
                                                         "incarnation": "\(change.member.incarnation)"])
            case .scheduleTick(let at):
                s.tick?.cancel()
                let delay = max(0, at.nanoseconds - Self.now().nanoseconds)
                s.tick = loop.scheduleTask(in: .nanoseconds(delay)) {
                    self.perform(self.box.value.membership.onTick(now: Self.now()))
                }
            }
        }
        publish()
    }

    /// Brings the view up to date: the member list, round trips and the ring only when the
    /// membership changed (or the once-a-second refresh asks), the cheap figures every time.
    private func publish() {
        let s = box.value
        let m = s.membership
        guard s.membersChanged else {
            let (health, counters) = (m.health.score, m.counters)
            view.update { v in
                v.healthScore = health
                v.counters = counters
            }
            return
        }
        s.membersChanged = false
        let members = [m.localMember] + m.members.filter { $0.id != m.localID }
        var rtt: [NodeID: Duration] = [:]
        for member in members where member.id != m.localID {
            rtt[member.id] = m.measuredRTT(to: member.id) ?? m.estimatedRTT(to: member.id)
        }
        let stats = combinedStats()
        frameLimit.store(Self.frameLimit(members: members.count), ordering: .relaxed)
        let bound = settings.config.failureDetectionBound(memberCount: members.count)
        // The ring hashes every stream against every member: rebuilt only when who is a
        // member (or their capacity) changed, not when coordinates moved.
        let old = view.snapshot
        let ring = Self.sameRingMembers(old.members, members) ? old.ring : HashRing(members: members)
        view.update { v in
            v.members = members
            v.ring = ring
            v.rtt = rtt
            v.stats = stats
            v.counters = m.counters
            v.healthScore = m.health.score
            v.failureDetectionBound = bound
        }
    }

    /// Whether two member lists give the same ring: the same members, statuses and capacities.
    static func sameRingMembers(_ a: [Member], _ b: [Member]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x.id != y.id || x.status != y.status || x.metadata.capacity != y.metadata.capacity {
            return false
        }
        return true
    }

    /// Counters grow by what happened since the last time (once a second).
    private func recordMetrics() {
        let s = box.value
        let stats = combinedStats()
        let last = s.lastStats
        if stats.packetsSent > last.packetsSent { NodeMetrics.Gossip.packetsSent.increment(by: Int(stats.packetsSent - last.packetsSent)) }
        if stats.packetsReceived > last.packetsReceived { NodeMetrics.Gossip.packetsReceived.increment(by: Int(stats.packetsReceived - last.packetsReceived)) }
        if stats.bytesSent > last.bytesSent { NodeMetrics.Gossip.bytesSent.increment(by: Int(stats.bytesSent - last.bytesSent)) }
        if stats.bytesReceived > last.bytesReceived { NodeMetrics.Gossip.bytesReceived.increment(by: Int(stats.bytesReceived - last.bytesReceived)) }
        for (kind, n) in stats.messagesSent where n > last.messagesSent[kind, default: 0] {
            NodeMetrics.Gossip.messagesSent(type: "\(kind)").increment(by: Int(n - last.messagesSent[kind, default: 0]))
        }
        for (kind, n) in stats.messagesReceived where n > last.messagesReceived[kind, default: 0] {
            NodeMetrics.Gossip.messagesReceived(type: "\(kind)").increment(by: Int(n - last.messagesReceived[kind, default: 0]))
        }
        for (reason, n) in stats.packetsDropped where n > last.packetsDropped[reason, default: 0] {
            NodeMetrics.Gossip.packetsDropped(reason: reason.rawValue).increment(by: Int(n - last.packetsDropped[reason, default: 0]))
        }
        s.lastStats = stats
        var byStatus: [MemberStatus: Int] = [:]
        for member in view.snapshot.members { byStatus[member.status, default: 0] += 1 }
        for status in [MemberStatus.alive, .suspect, .dead, .left] {
            NodeMetrics.Gossip.members(status: "\(status)").record(byStatus[status, default: 0])
        }
    }

    private func resolve(_ endpoint: Endpoint) -> SocketAddress? {
        let s = box.value
        if let a = s.resolved[endpoint] { return a }
        guard let a = try? SocketAddress.makeAddressResolvingHost(endpoint.host, port: Int(endpoint.port)) else {
            logger.warning("cannot resolve gossip address", metadata: ["address": "\(endpoint)"])
            return nil
        }
        s.resolved[endpoint] = a
        return a
    }

    package func onDatagram(_ bytes: [UInt8], from address: SocketAddress) {
        let s = box.value
        guard let from = Self.endpoint(address) else { return }
        let messages: [GossipMessage]
        do {
            messages = try s.codec.openDatagram(bytes)
        } catch {
            logger.debug("gossip packet dropped", metadata: ["from": "\(from)", "error": "\(error)"])
            publish()
            return
        }
        perform(s.membership.onMessages(messages, from: from, now: Self.now()))
    }

    /// A push-pull frame, on the stream loop: opened here, applied on the probe loop.
    func onStreamFrame(_ bytes: [UInt8], from: Endpoint, channel: any Channel) {
        let messages: [GossipMessage]
        do {
            messages = try streamCodec.withLock { try $0.openStreamFrame(bytes) }
        } catch {
            logger.debug("gossip stream frame dropped", metadata: ["from": "\(from)", "error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        loop.execute {
            let s = self.box.value
            for message in messages {
                guard case .pushPull(let state) = message else { continue }
                if !state.isResponse { s.inbound[from] = channel }
                self.perform(s.membership.onFullState(state, from: from, now: Self.now()))
                if !state.isResponse { s.inbound[from] = nil }
            }
        }
    }

    /// Both codecs' traffic: datagrams on the probe loop, full-state frames on the stream loop.
    private func combinedStats() -> GossipStats {
        var stats = box.value.codec.stats
        let frames = streamCodec.withLock { $0.stats }
        stats.packetsReceived += frames.packetsReceived
        stats.bytesReceived += frames.bytesReceived
        for (k, v) in frames.messagesReceived { stats.messagesReceived[k, default: 0] += v }
        for (k, v) in frames.bytesReceivedByKind { stats.bytesReceivedByKind[k, default: 0] += v }
        for (k, v) in frames.packetsDropped { stats.packetsDropped[k, default: 0] += v }
        return stats
    }

    private func sendFullState(_ state: GossipMessage.PushPull, to: Endpoint) {
        let s = box.value
        let frame: [UInt8]
        do { frame = try s.codec.sealStreamFrame([.pushPull(state)]) } catch {
            logger.warning("gossip full state not sent", metadata: ["error": "\(error)"])
            return
        }
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(frame.count))
        buffer.writeBytes(frame)
        if let channel = s.inbound[to] {
            // The answer to a request goes back on the request's own connection.
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        guard let address = resolve(to) else { return }
        let frameBuffer = buffer
        ClientBootstrap(group: Self.streamGroup)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.addStreamHandlers(channel, peer: to) }
            }
            .connect(to: address)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    channel.writeAndFlush(frameBuffer, promise: nil)
                    // The peer answers a request and closes; an answer needs no answer.
                    channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
                    if state.isResponse { channel.close(promise: nil) }
                case .failure(let error):
                    self.logger.debug("gossip push-pull connect failed", metadata: ["to": "\(to)", "error": "\(error)"])
                    if state.join { self.loop.execute { self.retryJoin() } }
                }
            }
    }

    /// A seed that is not up yet is tried again every two seconds while this node is alone
    /// (nodes of a cluster may start in any order).
    private func retryJoin() {
        let s = box.value
        guard !s.joinRetryScheduled else { return }
        s.joinRetryScheduled = true
        loop.scheduleTask(in: .seconds(2)) {
            let s = self.box.value
            s.joinRetryScheduled = false
            guard s.membership.members.filter({ $0.id != s.membership.localID && !$0.status.isDeadOrLeft }).isEmpty,
                  !s.membership.isLeaving else { return }
            self.logger.info("gossip join retry", metadata: ["seeds": "\(self.settings.seeds.map(\.description))"])
            self.perform(s.membership.join(seeds: self.settings.seeds, now: Self.now()))
        }
    }

    fileprivate func addStreamHandlers(_ channel: any Channel, peer: Endpoint?) throws {
        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.streamReadTimeout))
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: frameLimit.load(ordering: .relaxed))))
        try channel.pipeline.syncOperations.addHandler(StreamFrameHandler(node: self, peer: peer))
    }

    package static func endpoint(_ address: SocketAddress) -> Endpoint? {
        guard let ip = address.ipAddress, let port = address.port, let p = UInt16(exactly: port) else { return nil }
        return Endpoint(host: ip, port: p)
    }
}

/// UDP datagrams in.
private final class DatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let node: GossipNode
    init(node: GossipNode) { self.node = node }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
        node.onDatagram(bytes, from: envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refused datagram (ICMP) is no reason to stop listening.
    }
}

/// Length-prefixed frames on a push-pull TCP connection; a frame past the limit (room for the
/// members known) is refused before its bytes are held.
private struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = [UInt8]
    let limit: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= limit else { throw GossipFrameTooLarge(length: Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readBytes(length: Int(length))!))
        return .continue
    }
}

package struct GossipFrameTooLarge: Error { var length: Int }

private final class StreamFrameHandler: ChannelInboundHandler {
    typealias InboundIn = [UInt8]
    let node: GossipNode
    let peer: Endpoint?
    init(node: GossipNode, peer: Endpoint?) {
        self.node = node
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let from = peer ?? context.channel.remoteAddress.flatMap(GossipNode.endpoint) else { return }
        node.onStreamFrame(frame, from: from, channel: context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)  // a peer that sends nothing is not waited for
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
