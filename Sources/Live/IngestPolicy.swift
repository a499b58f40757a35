// IngestPolicy: who may publish what, and where a published stream goes — the rules of
// ingest, apart from the RTMP connection that carries the bytes.
import Catalog
import Cluster
import Origin

/// What ingest needs to know of the cluster: who owns a stream, the relay tokens, and where
/// what is published here is replicated.
package struct IngestCluster: Sendable {
    package let router: ClusterRouter
    package let tokens: ClusterTokens
    package var replicator: Replicator?

    package init(router: ClusterRouter, tokens: ClusterTokens, replicator: Replicator?) {
        self.router = router
        self.tokens = tokens
        self.replicator = replicator
    }
}

/// A publish refused: the RTMP status code and description the broadcaster sees, and the
/// reason logs and metrics count.
package struct IngestRefusal: Error, Equatable, Sendable {
    package var code: String
    package var description: String
    package var reason: String

    static func badName(_ description: String, reason: String) -> IngestRefusal {
        IngestRefusal(code: "NetStream.Publish.BadName", description: description, reason: reason)
    }
    static let unknownKey = badName("Unknown stream key", reason: "bad_key")
    /// A relay from another node in plaintext while cluster TLS is on.
    package static let relayWithoutTLS = badName("cluster traffic must use TLS (cluster-tls is on)", reason: "relay_without_tls")
}

package struct IngestPolicy: Sendable {
    package let streams: LiveStreams
    package let cluster: IngestCluster?

    package init(streams: LiveStreams, cluster: IngestCluster?) {
        self.streams = streams
        self.cluster = cluster
    }

    /// The first step of a publish request: refused at once, admitted with a record known
    /// here, or to be looked up (in the database or on other nodes).
    package enum Resolution: Sendable {
        case refused(IngestRefusal)
        case known(StreamRecord, relayed: Bool)
        case lookUp(StreamCatalog.Query, relayed: Bool)
    }

    /// `overTLS`: the connection came over mutual TLS (a certificate from the cluster CA).
    package func resolve(app: String, key: String, overTLS: Bool = false) -> Resolution {
        if app == ClusterTokens.relayApp, let cluster {
            // Another node relays a broadcaster's stream to this one, the stream's owner.
            guard overTLS || !cluster.router.transport.requiresTLS else {
                return .refused(.relayWithoutTLS)
            }
            guard let id = try? cluster.tokens.verify(key, for: .relay).scope else {
                return .refused(.badName("Bad relay key", reason: "bad_relay_key"))
            }
            return streams.catalog.record(id: id).map { .known($0, relayed: true) } ?? .lookUp(.id(id), relayed: true)
        }
        guard app == "live" else {
            return .refused(.badName("Unknown application \"\(app)\": publish to rtmp://host/live/<stream key>", reason: "bad_app"))
        }
        guard StreamIdentifiers.isWellFormed(Substring(key)) else { return .refused(.unknownKey) }
        // A record known here without its key (learned by id) goes through the lookup, which keeps the key.
        guard let record = streams.catalog.record(key: key), record.key != nil else { return .lookUp(.key(key), relayed: false) }
        return .known(record, relayed: false)
    }

    /// Where an admitted stream's media goes.
    package enum Admission {
        /// Not this node's stream: accept the broadcaster here and relay to the owner.
        case relay(StreamRecord, IngestCluster)
        /// This node is the origin; the publisher slot is taken for `connection`.
        case local(StreamRecord, LiveStream)
    }

    package func admit(_ record: StreamRecord, relayed: Bool, connection: UInt64) -> Result<Admission, IngestRefusal> {
        if !relayed, let cluster, !cluster.router.ownsLocally(record.id) { return .success(.relay(record, cluster)) }
        guard let live = streams.live(id: record.id) else { return .failure(.unknownKey) }
        guard streams.claimPublisher(id: record.id, connection: connection) else {
            return .failure(.badName("Stream \(record.id) is already being published", reason: "already_publishing"))
        }
        cluster?.replicator?.attach(live)
        return .success(.local(record, live))
    }

    /// Whether an address is a cluster member's (its relays are not limited per address).
    package func isClusterMember(address: String) -> Bool {
        guard let cluster else { return false }
        return cluster.router.view.snapshot.members.contains { $0.metadata.rtmpAddress.host == address || $0.metadata.gossipAddress.host == address }
    }

    package func release(_ id: String, connection: UInt64) {
        streams.releasePublisher(id: id, connection: connection)
    }
}
