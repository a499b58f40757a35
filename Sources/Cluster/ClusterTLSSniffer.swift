// ClusterTLSSniffer: TLS and plaintext on one port. With cluster TLS on, it is the first
// handler of every connection the HTTP and RTMP listeners accept, and looks at the first byte:
// 0x16 (a TLS handshake record, the ClientHello) puts a TLS handler in front of it that
// demands a client certificate from a cluster CA, and the bytes go through that handler; any
// other byte (an HTTP method, RTMP's version byte) leaves the connection in plaintext, its bytes
// passed on untouched. Either way it leaves the pipeline once decided.
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import NodeMetrics

/// Decides, on a connection's first byte, between mutual TLS and plaintext.
package final class ClusterTLSSniffer: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    /// The first byte of a TLS connection: the content type of a handshake record.
    package static let handshakeRecord: UInt8 = 0x16

    private enum State { case sniffing, handshaking, decided }
    private var state = State.sniffing
    private let sslContext: NIOSSLContext
    /// `http` or `rtmp`, for the metrics and the log.
    private let listener: String
    private let logger: Logger

    package init(context: NIOSSLContext, listener: String, logger: Logger) {
        self.sslContext = context
        self.listener = listener
        self.logger = logger
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .sniffing = state else { return context.fireChannelRead(data) }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if first == Self.handshakeRecord {
            state = .handshaking
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext), position: .before(self))
            } catch {
                refused(context, "\(error)")
                context.close(promise: nil)
                return
            }
            // From the head of the pipeline again: through the TLS handler now in front of this one.
            context.pipeline.syncOperations.fireChannelRead(data)
        } else {
            state = .decided
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        guard case .handshaking = state, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else { return }
        state = .decided
        NodeMetrics.clusterTLSConnections(listener: listener, result: "accepted").increment()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .handshaking = state else { return context.fireErrorCaught(error) }
        // The TLS handler closes the connection; the handlers behind never saw a byte of it.
        refused(context, "\(error)")
    }

    package func channelInactive(context: ChannelHandlerContext) {
        if case .handshaking = state { refused(context, "closed during the handshake") }
        context.fireChannelInactive()
    }

    private func refused(_ context: ChannelHandlerContext, _ why: String) {
        state = .decided
        NodeMetrics.clusterTLSConnections(listener: listener, result: "refused").increment()
        // Info, not warning: the listeners are public, and anything may try TLS on them.
        logger.info("cluster TLS handshake refused", metadata: [
            "listener": "\(listener)", "peer": "\(context.channel.remoteAddress?.description ?? "?")", "error": "\(why)",
        ])
    }
}
