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
///
/// A value with reference storage: the fields live in one immutable object that every copy
/// shares (each member's row in the table, queued `alive` updates, full states), so a table
/// of thousands of members holds one pointer per row, and two copies compare equal at the
/// cost of a pointer comparison. Setting a field makes a new object (copy on write).
public struct MemberMetadata: Hashable, Sendable {
    struct Fields: Hashable, Sendable {
        var id: NodeID
        var gossipAddress: Endpoint
        var httpAddress: Endpoint
        var rtmpAddress: Endpoint
        var region: String
        var capacity: UInt32
        var load: UInt32
        var softwareVersion: String
        var version: UInt64
    }

    final class Storage: Sendable {
        let fields: Fields
        /// `id.hashValue`, kept for the member table's index.
        let idHash: Int
        /// Bytes of the encoded metadata (`MessageCodec`), kept for sizing messages.
        let encodedSize: Int

        init(_ fields: Fields) {
            self.fields = fields
            self.idHash = fields.id.hashValue
            self.encodedSize = MessageCodec.metadataSize(fields)
        }
    }

    private(set) var storage: Storage

    public var id: NodeID {
        get { storage.fields.id }
        set { update { $0.id = newValue } }
    }
    public var gossipAddress: Endpoint {
        get { storage.fields.gossipAddress }
        set { update { $0.gossipAddress = newValue } }
    }
    public var httpAddress: Endpoint {
        get { storage.fields.httpAddress }
        set { update { $0.httpAddress = newValue } }
    }
    public var rtmpAddress: Endpoint {
        get { storage.fields.rtmpAddress }
        set { update { $0.rtmpAddress = newValue } }
    }
    public var region: String {
        get { storage.fields.region }
        set { update { $0.region = newValue } }
    }
    /// Relative capacity; the hash ring's weight. Zero means "takes no streams".
    public var capacity: UInt32 {
        get { storage.fields.capacity }
        set { update { $0.capacity = newValue } }
    }
    /// Current load in the node's own unit (streams, or percent of capacity).
    public var load: UInt32 {
        get { storage.fields.load }
        set { update { $0.load = newValue } }
    }
    public var softwareVersion: String {
        get { storage.fields.softwareVersion }
        set { update { $0.softwareVersion = newValue } }
    }
    /// Bumped by the owner on every change of this metadata.
    public var version: UInt64 {
        get { storage.fields.version }
        set { update { $0.version = newValue } }
    }

    public init(
        id: NodeID, gossipAddress: Endpoint, httpAddress: Endpoint, rtmpAddress: Endpoint,
        region: String = "", capacity: UInt32 = 1, load: UInt32 = 0, softwareVersion: String = "",
        version: UInt64 = 0
    ) {
        storage = Storage(
            Fields(
                id: id, gossipAddress: gossipAddress, httpAddress: httpAddress, rtmpAddress: rtmpAddress, region: region,
                capacity: capacity, load: load, softwareVersion: softwareVersion, version: version))
    }

    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = storage.fields
        change(&fields)
        storage = Storage(fields)
    }

    var idHash: Int { storage.idHash }
    var encodedSize: Int { storage.encodedSize }

    /// True when both share one storage object: equal without comparing fields.
    func isSameStorage(as other: MemberMetadata) -> Bool { storage === other.storage }

    public static func == (lhs: MemberMetadata, rhs: MemberMetadata) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(storage.fields) }
}
