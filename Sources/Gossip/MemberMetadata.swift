// Who a member is and what it offers: identity, addresses, region, capacity, load and
// software version. Gossiped inside `alive` messages and full-state exchanges.

/// A node's stable name in the cluster. Unique per node; a restarted node keeps its id and
/// comes back with a higher incarnation.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}

/// A host and port. The state machine only passes these through; the shell resolves them.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What a member tells the cluster about itself.
///
/// `version` orders metadata updates that keep the same incarnation: an `alive` message with
/// the same incarnation and a higher `version` updates the metadata (load, say) but never
/// clears a suspicion, which only a higher incarnation can do.
public struct MemberMetadata: Hashable, Sendable {
    public var id: NodeID
    public var gossipAddress: Endpoint
    public var httpAddress: Endpoint
    public var rtmpAddress: Endpoint
    public var region: String
    /// Relative capacity; the hash ring's weight. Zero means "takes no streams".
    public var capacity: UInt32
    /// Current load in the node's own unit (streams, or percent of capacity).
    public var load: UInt32
    public var softwareVersion: String
    /// Bumped by the owner on every change of this metadata.
    public var version: UInt64

    public init(
        id: NodeID, gossipAddress: Endpoint, httpAddress: Endpoint, rtmpAddress: Endpoint,
        region: String = "", capacity: UInt32 = 1, load: UInt32 = 0, softwareVersion: String = "",
        version: UInt64 = 0
    ) {
        self.id = id
        self.gossipAddress = gossipAddress
        self.httpAddress = httpAddress
        self.rtmpAddress = rtmpAddress
        self.region = region
        self.capacity = capacity
        self.load = load
        self.softwareVersion = softwareVersion
        self.version = version
    }
}

/// Metadata held once and shared by every row and message that carries it (each member's row
/// in thousands of tables, queued `alive` updates, full states), with the id's hash and the
/// encoded size worked out once. Immutable: a change makes a new box.
final class MetadataBox: Sendable {
    let value: MemberMetadata
    /// `value.id.hashValue`, for the member table's index.
    let idHash: Int
    /// Bytes of the encoded metadata (`MessageCodec`), for sizing messages.
    let encodedSize: Int

    init(_ value: MemberMetadata) {
        self.value = value
        self.idHash = value.id.hashValue
        self.encodedSize = MessageCodec.metadataSize(value)
    }
}
