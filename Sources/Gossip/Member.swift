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
public struct Member: Hashable, Sendable {
    public var metadata: MemberMetadata
    /// Only the member itself raises its incarnation (to refute a suspicion or rejoin).
    public var incarnation: UInt64
    public var status: MemberStatus
    /// When this node last saw the status change; drives tombstone reaping.
    public var statusChangedAt: GossipInstant
    /// Last Vivaldi coordinate the member reported (on an ack or a full-state exchange).
    public var coordinate: VivaldiCoordinate?

    public var id: NodeID { metadata.id }

    public init(
        metadata: MemberMetadata, incarnation: UInt64, status: MemberStatus,
        statusChangedAt: GossipInstant, coordinate: VivaldiCoordinate? = nil
    ) {
        self.metadata = metadata
        self.incarnation = incarnation
        self.status = status
        self.statusChangedAt = statusChangedAt
        self.coordinate = coordinate
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
