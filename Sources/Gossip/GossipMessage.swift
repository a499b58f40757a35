// The messages of the protocol. Datagrams carry several of them (compound packets); the
// full-state exchange travels on a stream transport and carries `pushPull` alone.

/// One protocol message.
///
/// Kept small (24 bytes) because nodes queue one update per member: the larger cases are
/// `indirect` (boxed), `alive` holds the shared metadata reference.
public enum GossipMessage: Hashable, Sendable {
    /// Direct probe. `target` lets a node ignore pings meant for a previous owner of its
    /// address; `source` is where the ack goes.
    indirect case ping(Ping)
    /// "Please probe `target` for me": indirect probe through a helper.
    indirect case pingReq(PingReq)
    /// Probe answer; a direct ack carries the responder's network coordinate.
    indirect case ack(Ack)
    /// A helper's "I asked, no ack yet": tells the requester that the helper is healthy,
    /// so a missing nack counts against the requester's own health (Lifeguard).
    case nack(Nack)
    case alive(Alive)
    indirect case suspect(Suspect)
    indirect case dead(Dead)
    /// Full-state exchange (anti-entropy and join).
    case pushPull(PushPull)

    public var kind: MessageKind {
        switch self {
        case .ping: .ping
        case .pingReq: .pingReq
        case .ack: .ack
        case .nack: .nack
        case .alive: .alive
        case .suspect: .suspect
        case .dead: .dead
        case .pushPull: .pushPull
        }
    }

    public struct Ping: Hashable, Sendable {
        public var sequence: UInt32
        public var target: NodeID
        public var source: NodeID
        public var sourceAddress: Endpoint
        public init(sequence: UInt32, target: NodeID, source: NodeID, sourceAddress: Endpoint) {
            self.sequence = sequence
            self.target = target
            self.source = source
            self.sourceAddress = sourceAddress
        }
    }

    public struct PingReq: Hashable, Sendable {
        public var sequence: UInt32
        public var target: NodeID
        public var targetAddress: Endpoint
        public var source: NodeID
        public var sourceAddress: Endpoint
        public var wantsNack: Bool
        public init(
            sequence: UInt32, target: NodeID, targetAddress: Endpoint, source: NodeID, sourceAddress: Endpoint,
            wantsNack: Bool
        ) {
            self.sequence = sequence
            self.target = target
            self.targetAddress = targetAddress
            self.source = source
            self.sourceAddress = sourceAddress
            self.wantsNack = wantsNack
        }
    }

    public struct Ack: Hashable, Sendable {
        public var sequence: UInt32
        public var responder: NodeID
        public var coordinate: VivaldiCoordinate?
        public init(sequence: UInt32, responder: NodeID, coordinate: VivaldiCoordinate?) {
            self.sequence = sequence
            self.responder = responder
            self.coordinate = coordinate
        }
    }

    public struct Nack: Hashable, Sendable {
        public var sequence: UInt32
        public init(sequence: UInt32) { self.sequence = sequence }
    }

    public struct Alive: Hashable, Sendable {
        public var incarnation: UInt64
        public var metadata: MemberMetadata {
            get { metadataBox.value }
            set { metadataBox = MetadataBox(newValue) }
        }
        /// Shared with the table rows and queued copies of this update.
        var metadataBox: MetadataBox

        public init(incarnation: UInt64, metadata: MemberMetadata) {
            self.init(incarnation: incarnation, metadataBox: MetadataBox(metadata))
        }

        init(incarnation: UInt64, metadataBox: MetadataBox) {
            self.incarnation = incarnation
            self.metadataBox = metadataBox
        }

        public static func == (lhs: Alive, rhs: Alive) -> Bool {
            lhs.incarnation == rhs.incarnation && (lhs.metadataBox === rhs.metadataBox || lhs.metadata == rhs.metadata)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(incarnation)
            hasher.combine(metadata)
        }
    }

    public struct Suspect: Hashable, Sendable {
        public var incarnation: UInt64
        public var node: NodeID
        public var from: NodeID
        public init(incarnation: UInt64, node: NodeID, from: NodeID) {
            self.incarnation = incarnation
            self.node = node
            self.from = from
        }
    }

    /// `from == node` means the node left gracefully.
    public struct Dead: Hashable, Sendable {
        public var incarnation: UInt64
        public var node: NodeID
        public var from: NodeID
        public init(incarnation: UInt64, node: NodeID, from: NodeID) {
            self.incarnation = incarnation
            self.node = node
            self.from = from
        }
    }

    public struct PushPull: Hashable, Sendable {
        /// True when the sender is joining (it wants the state and an immediate reply).
        public var join: Bool
        /// True for the reply half of an exchange (it is never answered).
        public var isResponse: Bool
        public var members: [Member]
        public init(join: Bool, isResponse: Bool, members: [Member]) {
            self.join = join
            self.isResponse = isResponse
            self.members = members
        }
    }
}

/// Message type tags; also the wire type byte.
public enum MessageKind: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case ping = 1
    case pingReq = 2
    case ack = 3
    case nack = 4
    case alive = 5
    case suspect = 6
    case dead = 7
    case pushPull = 8

    public var description: String {
        switch self {
        case .ping: "ping"
        case .pingReq: "ping-req"
        case .ack: "ack"
        case .nack: "nack"
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .pushPull: "push-pull"
        }
    }
}
