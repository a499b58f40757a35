// The HTTP listener's side of cluster TLS: the sniffer in front of Hummingbird's HTTP/1
// pipeline (so TLS and plaintext share the port), and the middleware that keeps the
// node-to-node routes (`/internal/...`) for connections over mutual TLS.
import HTTPSupport
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NodeMetrics

/// Hummingbird's HTTP/1 child channel with the cluster TLS sniffer put first once the HTTP
/// handlers are in place — in front of those that put themselves first (the media fast path's
/// raw part), so every byte of a TLS connection is decrypted before anything reads it.
package struct ClusterTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    package typealias Value = Base.Value
    let base: Base
    let tls: ClusterTLS
    let logger: Logger

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let tls = self.tls
        let sniffLogger = self.logger
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(
                ClusterTLSSniffer(context: tls.serverContext, listener: "http", logger: sniffLogger), position: .first)
            return value
        }
    }

    package func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with `configuration`; with cluster TLS, TLS (for nodes) and plaintext (for
    /// everyone else) on the same port.
    package static func http1(configuration: HTTP1Channel.Configuration, clusterTLS: ClusterTLS?, logger: Logger) -> HTTPServerBuilder {
        guard let clusterTLS else { return .http1(configuration: configuration) }
        return HTTPServerBuilder { responder in
            ClusterTLSChannel(base: HTTP1Channel(responder: responder, configuration: configuration), tls: clusterTLS, logger: logger)
        }
    }

    /// Any HTTP child channel (one that upgrades to WebSockets, say) behind the same sniffer
    /// when cluster TLS is on.
    package static func clusterTLS<Base: ServerChildChannel>(_ clusterTLS: ClusterTLS?, logger: Logger,
                                                             _ base: @escaping @Sendable (@escaping HTTPChannelHandler.Responder) -> Base)
        -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            guard let clusterTLS else { return base(responder) }
            return ClusterTLSChannel(base: base(responder), tls: clusterTLS, logger: logger)
        }
    }
}

/// With cluster TLS on, a request to a node-to-node route (`/internal/...`) that did not come
/// over mutual TLS is refused, before its cluster token is looked at.
package struct ClusterTLSMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext

    package init() {}

    package static let refusal = "cluster traffic must use TLS (cluster-tls is on)"

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix(ClusterTransport.internalPathPrefix) else { return try await next(request, context) }
        guard await ClusterTransport.isMutualTLS(context.channel) else {
            NodeMetrics.clusterPlaintextRefused(listener: "http").increment()
            context.logger.warning("node-to-node request refused: not over TLS", metadata: [
                "path": "\(request.uri.path)", "peer": "\(context.channel.remoteAddress?.description ?? "?")",
            ])
            throw Problem(.forbidden, Self.refusal)
        }
        return try await next(request, context)
    }
}
