// RTMPServer: the thin SwiftNIO shell around Origin's RTMP session core. It carries bytes
// in and out, asks the registry whether a key may publish, and pushes media into the
// stream's live state. One bad connection is closed; nothing else is touched.
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Origin
import ServiceLifecycle
import Synchronization

struct RTMPServer: Service {
    let host: String
    let port: Int
    let registry: StreamRegistry
    let logger: Logger
    let onBound: @Sendable (Int) -> Void

    init(host: String, port: Int, registry: StreamRegistry, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.onBound = onBound
    }

    func run() async throws {
        let registry = self.registry
        let logger = self.logger
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                    try channel.pipeline.syncOperations.addHandler(
                        RTMPConnectionHandler(registry: registry, logger: logger, peer: channel.remoteAddress?.description ?? "?"))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        onBound(bound)
        logger.info("rtmp listening", metadata: ["host": "\(host)", "port": "\(bound)"])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// One RTMP connection.
final class RTMPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let nextID = Atomic<UInt64>(0)

    private let registry: StreamRegistry
    private var logger: Logger
    private let connectionID: UInt64
    private var session: RTMPServerSession
    private var publishing: (id: String, live: LiveStream)?
    private var closed = false

    init(registry: StreamRegistry, logger: Logger, peer: String) {
        self.registry = registry
        self.connectionID = Self.nextID.add(1, ordering: .relaxed).newValue
        var logger = logger
        logger[metadataKey: "conn"] = "\(connectionID)"
        logger[metadataKey: "peer"] = "\(peer)"
        self.logger = logger
        self.session = RTMPServerSession(randomBytes: { n in (0..<n).map { _ in UInt8.random(in: 0...255) } })
        Counter(label: "streamtube_rtmp_connections_total").increment()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        Counter(label: "streamtube_rtmp_bytes_received_total").increment(by: bytes.count)
        let events: [RTMPServerEvent]
        do {
            events = try session.receive(bytes)
        } catch {
            logger.warning("rtmp protocol error, closing", metadata: ["error": "\(error)"])
            Counter(label: "streamtube_rtmp_errors_total", dimensions: [("kind", "protocol")]).increment()
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
            guard let (_, live) = publishing else { return }
            do {
                let tag = try FLVVideoTag.parse(payload)
                try live.ingest(video: tag, timestamp: timestamp, byteCount: payload.count)
            } catch {
                refuseMedia(error, context: context)
            }
        case .audio(let timestamp, let payload):
            guard let (_, live) = publishing else { return }
            do {
                let tag = try FLVAudioTag.parse(payload)
                try live.ingest(audio: tag, timestamp: timestamp, byteCount: payload.count)
            } catch {
                refuseMedia(error, context: context)
            }
        case .unpublished:
            stopPublishing(reason: "publisher stopped")
        case .unknownCommand(let name):
            logger.debug("rtmp command ignored", metadata: ["command": "\(name)"])
        }
    }

    private func publish(app: String, key: String, context: ChannelHandlerContext) {
        func reject(_ code: String, _ description: String, reason: String) {
            logger.warning("rtmp publish refused", metadata: ["reason": "\(reason)", "app": "\(app)"])
            Counter(label: "streamtube_rtmp_publish_refused_total", dimensions: [("reason", reason)]).increment()
            send(session.rejectPublish(code: code, description: description), context: context)
            close(context)
        }
        guard publishing == nil else {
            return reject("NetStream.Publish.BadName", "This connection is already publishing", reason: "second_publish")
        }
        guard app == "live" else {
            return reject("NetStream.Publish.BadName", "Unknown application \"\(app)\": publish to rtmp://host/live/<stream key>", reason: "bad_app")
        }
        guard StreamRegistry.isWellFormedToken(Substring(key)), let record = registry.record(key: key), let live = registry.live(id: record.id) else {
            return reject("NetStream.Publish.BadName", "Unknown stream key", reason: "bad_key")
        }
        guard registry.claimPublisher(id: record.id, connection: connectionID) else {
            return reject("NetStream.Publish.BadName", "Stream \(record.id) is already being published", reason: "already_publishing")
        }
        publishing = (record.id, live)
        logger[metadataKey: "stream"] = "\(record.id)"
        live.beginPublishing()
        send(session.acceptPublish(), context: context)
        logger.info("rtmp publish started", metadata: ["title": "\(record.title)"])
        Counter(label: "streamtube_rtmp_publish_started_total").increment()
    }

    private func refuseMedia(_ error: any Error, context: ChannelHandlerContext) {
        let message = "\(error)"
        logger.warning("rtmp media refused, closing", metadata: ["error": "\(message)"])
        Counter(label: "streamtube_rtmp_errors_total", dimensions: [("kind", "media")]).increment()
        send(session.rejectPublish(code: "NetStream.Publish.Failed", description: message), context: context)
        stopPublishing(reason: "media refused")
        close(context)
    }

    private func stopPublishing(reason: String) {
        guard let (id, live) = publishing else { return }
        publishing = nil
        live.endPublishing()
        registry.releasePublisher(id: id, connection: connectionID)
        logger.info("rtmp publish ended", metadata: ["reason": "\(reason)"])
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            logger.info("rtmp connection idle, closing")
            stopPublishing(reason: "idle")
            close(context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopPublishing(reason: "connection closed")
        closed = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("rtmp connection error", metadata: ["error": "\(error)"])
        stopPublishing(reason: "connection error")
        close(context)
    }
}
