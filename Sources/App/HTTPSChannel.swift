// HTTPSChannel: the node's own HTTPS listener. TLS, then ALPN: HTTP/2 goes to Hummingbird's
// HTTP/2 channel; HTTP/1.1 goes the plain listener's way (`UpgradeSniffingChannel`), so the
// chat's WebSockets (which browsers open over HTTP/1.1) and the media fast path work over
// HTTPS as over HTTP.
import Chat
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import NIOTLS

struct HTTPSChannel: ServerChildChannel {
    enum Negotiated: Sendable {
        case http1_1(UpgradeSniffingChannel.Value)
        case http2(HTTP2Channel.Value)
    }

    struct UnknownProtocol: Error {}

    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let negotiated: EventLoopFuture<Negotiated>
    }

    let context: NIOSSLContext
    let http1: UpgradeSniffingChannel
    let http2: HTTP2Channel

    /// `tls` offers h2 and http/1.1 by ALPN whatever it said.
    init(tls: TLSConfiguration, http1: UpgradeSniffingChannel, http2: HTTP2Channel) throws {
        var tls = tls
        tls.applicationProtocols = ["h2", "http/1.1"]
        context = try NIOSSLContext(configuration: tls)
        self.http1 = http1
        self.http2 = http2
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let (http1, http2) = (self.http1, self.http2)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
            let alpn = NIOTypedApplicationProtocolNegotiationHandler<Negotiated> { result in
                switch result {
                case .negotiated("h2"):
                    return http2.setup(channel: channel, logger: logger).map { .http2($0) }
                case .negotiated("http/1.1"), .fallback:
                    return http1.setup(channel: channel, logger: logger).map { .http1_1($0) }
                case .negotiated(let other):
                    logger.debug("https: a client negotiated an unknown protocol", metadata: ["alpn": "\(other)"])
                    return channel.close().flatMap { channel.eventLoop.makeFailedFuture(UnknownProtocol()) }
                }
            }
            try channel.pipeline.syncOperations.addHandler(alpn)
            return Value(channel: channel, negotiated: alpn.protocolNegotiationResult)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1_1(let connection): await http1.handle(value: connection, logger: logger)
            case .http2(let connection): await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("https: a connection ended before its protocol was agreed", metadata: ["error": "\(error)"])
        }
    }
}
