// ClusterTransport: how this node talks to the other nodes over HTTP and RTMP — in plaintext,
// or (cluster-tls on) over mutual TLS with certificates from the cluster CA — and what it
// demands of the nodes that talk to it. The one place a URL to another node is made.
import AsyncHTTPClient
import Gossip
import NIOCore
import NIOSSL

/// Plaintext, or mutual TLS between nodes (`ClusterTLS`).
package struct ClusterTransport: Sendable {
    /// Nil: plaintext, as before cluster TLS.
    package let tls: ClusterTLS?

    package init(tls: ClusterTLS?) { self.tls = tls }

    package static let plaintext = ClusterTransport(tls: nil)

    /// The path every node-to-node HTTP route lives under.
    package static let internalPathPrefix = "/internal/"

    /// Node-to-node requests and relays must come over TLS.
    package var requiresTLS: Bool { tls != nil }

    /// `http://host:port` or `https://host:port` of a member's HTTP listener, as it advertises it.
    package func baseURL(for member: Member) -> String {
        (tls == nil ? "http://" : "https://") + member.metadata.httpAddress.description
    }

    /// The HTTP client configuration for requests to other nodes: `base` with this node's
    /// certificate to present and only the cluster CAs to trust, when TLS is on.
    package func httpClientConfiguration(_ base: HTTPClient.Configuration) -> HTTPClient.Configuration {
        var config = base
        if let tls { config.tlsConfiguration = tls.clientConfiguration }
        return config
    }

    /// Puts TLS in front of an outgoing connection (a relay's RTMP) to `host`, when on. The
    /// peer's certificate must be from a cluster CA and name `host` (an IP address is checked
    /// against the address connected to).
    package func addClientTLS(to pipeline: ChannelPipeline.SynchronousOperations, host: String) throws {
        guard let tls else { return }
        let name = ClusterCA.addressBytes(host) == nil ? host : nil
        try pipeline.addHandler(NIOSSLClientHandler(context: tls.clientContext, serverHostname: name), position: .first)
    }

    /// Whether a connection this node accepted came in over TLS — the cluster TLS sniffer put a
    /// TLS handler in front of it, which lets no byte through before a client certificate
    /// from a cluster CA was verified. On the channel's event loop.
    package static func isMutualTLS(_ pipeline: ChannelPipeline.SynchronousOperations) -> Bool {
        (try? pipeline.handler(type: NIOSSLServerHandler.self)) != nil
    }

    /// The same from anywhere (an HTTP route).
    package static func isMutualTLS(_ channel: any Channel) async -> Bool {
        (try? await channel.pipeline.containsHandler(type: NIOSSLServerHandler.self).get()) != nil
    }
}
