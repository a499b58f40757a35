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
        /// `publisher`: whom the key (or the relay token) stands for.
        case known(StreamRecord, Publisher, relayed: Bool)
        /// `relayedFor`: a relay's publisher, as its token names them; nil for a broadcaster's key.
        case lookUp(StreamCatalog.Query, relayedFor: Publisher?)
    }

    /// `overTLS`: the connection came over mutual TLS (a certificate from the cluster CA).
    package func resolve(app: String, key: String, overTLS: Bool = false) -> Resolution {
        if app == ClusterTokens.relayApp, let cluster {
            // Another node relays a broadcaster's stream to this one, the stream's owner.
            guard overTLS || !cluster.router.transport.requiresTLS else {
                return .refused(.relayWithoutTLS)
            }
            guard let grant = try? cluster.tokens.verify(key, for: .relay).scope, let scope = RelayScope(scope: grant) else {
                return .refused(.badName("Bad relay key", reason: "bad_relay_key"))
            }
            return streams.catalog.record(id: scope.streamID).map { .known($0, scope.publisher, relayed: true) }
                ?? .lookUp(.id(scope.streamID), relayedFor: scope.publisher)
        }
        guard app == "live" else {
            return .refused(.badName("Unknown application \"\(app)\": publish to rtmp://host/live/<stream key>", reason: "bad_app"))
        }
        guard StreamIdentifiers.isWellFormed(Substring(key)) else { return .refused(.unknownKey) }
        // A record known here without its key (learned by id) goes through the lookup, which keeps the key.
        guard let record = streams.catalog.record(key: key), let publisher = record.publisher(key: key),
              record.key != nil || publisher != .host else { return .lookUp(.key(key), relayedFor: nil) }
        return .known(record, publisher, relayed: false)
    }

    /// The publisher a looked-up record and the question asked of it name.
    package func publisher(of record: StreamRecord, _ query: StreamCatalog.Query, relayedFor: Publisher?) -> Publisher? {
        if let relayedFor { return relayedFor }
        guard case .key(let key) = query else { return nil }
        return record.publisher(key: key)
    }

    /// Where an admitted stream's media goes.
    package enum Admission {
        /// Not this node's stream: accept the broadcaster here and relay to the owner.
        case relay(StreamRecord, Publisher, IngestCluster)
        /// This node is the origin; the publisher slot is taken for the connection. `displaced`:
        /// the connection of the person the stream was handed over from, to close.
        case local(StreamRecord, LiveStream, PublisherClaim, displaced: PublisherClaim?)
    }

    package func admit(_ record: StreamRecord, as publisher: Publisher = .host, relayed: Bool,
                       connection: UInt64) -> Result<Admission, IngestRefusal> {
        // A co-host removed since the relaying node looked (or a stale record there) gets nothing.
        guard record.isPublisher(publisher) else { return .failure(.unknownKey) }
        // Who is on the air is the origin's to say: it holds the record as it is now in every
        // deployment (a node with a database of its own may hold an older one), so elsewhere the
        // publish is relayed and the origin admits or refuses it, saying why.
        if !relayed, let cluster, !cluster.router.ownsLocally(record.id) { return .success(.relay(record, publisher, cluster)) }
        if let refusal = Self.offAir(record, publisher) { return .failure(refusal) }
        guard let live = streams.live(id: record.id) else { return .failure(.unknownKey) }
        switch streams.claimPublisher(id: record.id, connection: connection, as: publisher) {
        case .busy:
            return .failure(.badName("Stream \(record.id) is already being published", reason: "already_publishing"))
        case .claimed(let claim):
            cluster?.replicator?.attach(live)
            return .success(.local(record, live, claim, displaced: nil))
        case .tookOver(let claim, let displaced):
            cluster?.replicator?.attach(live)
            return .success(.local(record, live, claim, displaced: displaced))
        }
    }

    /// One person is on the air at a time: anyone else's publish is refused, saying who can change that.
    package static func offAir(_ record: StreamRecord, _ publisher: Publisher) -> IngestRefusal? {
        let onAir = record.onAirPublisher
        guard publisher != onAir else { return nil }
        let description: String
        switch (onAir, publisher) {
        case (.host, _):
            description = "Stream \(record.id) is on the air from its host; the host can hand it to you in the studio"
        case (.cohost, .host):
            description = "Stream \(record.id) is handed to a co-host; take it back in the studio to publish"
        case (.cohost, .cohost):
            description = "Stream \(record.id) is handed to another co-host; the host can hand it to you in the studio"
        }
        return IngestRefusal(code: "NetStream.Publish.BadName", description: description, reason: "not_on_air")
    }

    /// Whether a connection admitted as `publisher` may go on publishing `id` (checked now and
    /// then while it publishes): not once they are no longer its co-host.
    package func stillPublisher(_ id: String, _ publisher: Publisher) -> Bool {
        guard let record = streams.catalog.record(id: id) else { return true }
        return record.isPublisher(publisher)
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
