// The invariants of a healthy cluster, checked on a snapshot of the views. Pure: the
// engine builds the snapshot during the run (continuously) and tests feed it broken ones.
//
// After quiescence: every alive node has the same view, that view holds exactly the alive
// nodes, and every stream has exactly one owner, agreed by all and alive. At all times: no
// alive node stays declared dead by an alive observer beyond the grace period.

import Gossip

/// Alive observers that share one view.
public struct ViewGroup: Sendable {
    public var representative: NodeID
    public var observers: Int
    /// Members this view holds alive.
    public var alive: [NodeID]
    /// Owner of each stream in this view.
    public var owners: [String: NodeID]

    public init(representative: NodeID, observers: Int, alive: [NodeID], owners: [String: NodeID]) {
        self.representative = representative
        self.observers = observers
        self.alive = alive
        self.owners = owners
    }
}

/// An alive member declared dead by an alive observer since `since`.
public struct HeldDead: Sendable {
    public var observer: NodeID
    public var subject: NodeID
    public var since: Int64
    public init(observer: NodeID, subject: NodeID, since: Int64) {
        self.observer = observer
        self.subject = subject
        self.since = since
    }
}

/// What the checker looks at. `up` and `groups` empty: only `heldDead` is checked.
public struct ClusterSnapshot: Sendable {
    public var time: Int64
    public var up: [NodeID]
    public var groups: [ViewGroup]
    public var heldDead: [HeldDead]
    /// Owners from the real `HashRing` (a few streams), to check the fast lookup against.
    public var ringOwners: [String: NodeID] = [:]

    public init(time: Int64, up: [NodeID], groups: [ViewGroup], heldDead: [HeldDead] = []) {
        self.time = time
        self.up = up
        self.groups = groups
        self.heldDead = heldDead
    }
}

/// A broken invariant, at a simulated time (nanoseconds).
public struct Violation: Sendable, Hashable, CustomStringConvertible {
    public var time: Int64
    public var invariant: String
    public var detail: String
    public var description: String {
        "t=\(formatSeconds(time)) \(invariant): \(detail)"
    }
}

/// Checks a snapshot against the invariants.
public enum InvariantChecker {
    public static func check(_ s: ClusterSnapshot, streams: [String]) -> [Violation] {
        var out: [Violation] = []
        func add(_ inv: String, _ detail: String) { out.append(Violation(time: s.time, invariant: inv, detail: detail)) }
        for d in s.heldDead {
            add("no-alive-node-held-dead", "\(d.observer) has held alive \(d.subject) dead since t=\(formatSeconds(d.since))")
        }
        guard !s.groups.isEmpty else { return out }
        let up = Set(s.up)
        if s.groups.count > 1 {
            let sizes = s.groups.map { "\($0.representative)×\($0.observers)" }.joined(separator: ", ")
            add("one-view", "\(s.groups.count) distinct views among alive nodes after quiescence (\(sizes))")
        }
        for g in s.groups {
            let alive = Set(g.alive)
            let missing = up.subtracting(alive).sorted().prefix(5)
            let extra = alive.subtracting(up).sorted().prefix(5)
            if !missing.isEmpty || !extra.isEmpty {
                add(
                    "view-is-truth",
                    "view of \(g.representative) (\(g.observers) nodes) misses \(missing.map(\.rawValue)) and holds crashed \(extra.map(\.rawValue)) alive")
            }
        }
        var badStreams: [String] = []
        for stream in streams {
            let owners = Set(s.groups.compactMap { $0.owners[stream] })
            let covered = s.groups.allSatisfy { $0.owners[stream] != nil }
            if owners.count != 1 || !covered || !up.contains(owners.first!) { badStreams.append(stream) }
        }
        if !badStreams.isEmpty {
            add("one-owner-per-stream", "\(badStreams.count) streams without exactly one agreed alive owner, e.g. \(badStreams.prefix(3))")
        }
        if let g = s.groups.first, s.groups.count == 1 {
            for (stream, owner) in s.ringOwners.sorted(by: { $0.key < $1.key }) where g.owners[stream] != owner {
                add("ring-matches", "HashRing places \(stream) on \(owner), the simulator's lookup on \(g.owners[stream]?.rawValue ?? "nobody")")
            }
        }
        return out
    }
}

/// Seconds with three decimals, for reports.
public func formatSeconds(_ ns: Int64) -> String { String(format: "%.3fs", Double(ns) / 1e9) }
