// A member as one node sees it: metadata, incarnation, SWIM status and coordinate.

/// SWIM status of a member. `left` is a dead member that said goodbye (graceful leave).
public enum MemberStatus: UInt8, Sendable, Hashable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    case left = 3

    public var isDeadOrLeft: Bool { self == .dead || self == .left }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// One row of the membership table.
///
/// Compact (40 bytes): the metadata and the coordinate are shared references, so a node's
/// table, its full states and its neighbours' tables hold pointers to the same objects.
public struct Member: Hashable, Sendable {
    public var metadata: MemberMetadata {
        get { metadataBox.value }
        set { metadataBox = MetadataBox(newValue) }
    }
    /// The metadata, boxed once where it was received or made and shared from then on.
    var metadataBox: MetadataBox
    /// Only the member itself raises its incarnation (to refute a suspicion or rejoin).
    public var incarnation: UInt64
    /// When this node last saw the status change; drives tombstone reaping.
    public var statusChangedAt: GossipInstant
    /// Last Vivaldi coordinate the member reported (on an ack or a full-state exchange).
    public var coordinate: VivaldiCoordinate? {
        get { coordinateBox?.value }
        set { coordinateBox = newValue.map(CoordinateBox.init) }
    }
    /// The coordinate, boxed once where it was received and shared from then on.
    var coordinateBox: CoordinateBox?
    public var status: MemberStatus

    public var id: NodeID { metadataBox.value.id }

    public init(
        metadata: MemberMetadata, incarnation: UInt64, status: MemberStatus,
        statusChangedAt: GossipInstant, coordinate: VivaldiCoordinate? = nil
    ) {
        self.init(
            metadataBox: MetadataBox(metadata), incarnation: incarnation, status: status, statusChangedAt: statusChangedAt,
            coordinateBox: coordinate.map(CoordinateBox.init))
    }

    init(
        metadataBox: MetadataBox, incarnation: UInt64, status: MemberStatus, statusChangedAt: GossipInstant,
        coordinateBox: CoordinateBox? = nil
    ) {
        self.metadataBox = metadataBox
        self.incarnation = incarnation
        self.status = status
        self.statusChangedAt = statusChangedAt
        self.coordinateBox = coordinateBox
    }

    public static func == (lhs: Member, rhs: Member) -> Bool {
        (lhs.metadataBox === rhs.metadataBox || lhs.metadata == rhs.metadata) && lhs.incarnation == rhs.incarnation
            && lhs.status == rhs.status
            && lhs.statusChangedAt == rhs.statusChangedAt
            && (lhs.coordinateBox === rhs.coordinateBox || lhs.coordinate == rhs.coordinate)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(metadata)
        hasher.combine(incarnation)
        hasher.combine(status)
        hasher.combine(statusChangedAt)
        hasher.combine(coordinate)
    }
}

/// An immutable coordinate behind a reference, so that rows holding it share it.
final class CoordinateBox: Sendable {
    let value: VivaldiCoordinate
    let isValid: Bool
    init(_ value: VivaldiCoordinate) {
        self.value = value
        self.isValid = value.isValid
    }
}

/// A change of the membership table, reported through `Directive.membershipChanged`.
public struct MembershipChange: Hashable, Sendable, CustomStringConvertible {
    /// The member after the change (for a removal: the tombstone that was reaped).
    public var member: Member
    /// Status before the change; nil when the member was unknown until now.
    public var previousStatus: MemberStatus?
    /// True when a tombstone was reaped and the member is gone from the table.
    public var isRemoval: Bool

    public init(member: Member, previousStatus: MemberStatus?, isRemoval: Bool = false) {
        self.member = member
        self.previousStatus = previousStatus
        self.isRemoval = isRemoval
    }

    public var description: String {
        let from = previousStatus.map { "\($0)" } ?? "unknown"
        let to = isRemoval ? "removed" : "\(member.status)"
        return "\(member.id) \(from) -> \(to) (inc \(member.incarnation))"
    }
}
