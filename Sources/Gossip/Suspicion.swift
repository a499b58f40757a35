// Lifeguard's dynamic suspicion timeout: it starts at Max and shrinks towards Min as
// independent members confirm the suspicion, so a member that several nodes cannot reach
// is declared dead quickly, and one that only we cannot reach is given time to refute.

import Foundation

/// The suspicion timer for one suspect member. Pure arithmetic over instants.
public struct Suspicion: Hashable, Sendable {
    public let start: GossipInstant
    public let minTimeout: Duration
    public let maxTimeout: Duration
    /// Confirmations wanted to reach the minimum (K).
    public let wanted: Int
    /// Members whose suspicion counted, the originator included (it is not a confirmation).
    public private(set) var confirmers: Set<NodeID>
    /// Independent confirmations seen (C).
    public private(set) var confirmations: Int = 0

    public init(from originator: NodeID, start: GossipInstant, minTimeout: Duration, maxTimeout: Duration, wanted: Int) {
        self.start = start
        self.minTimeout = minTimeout
        self.maxTimeout = maxTimeout
        self.wanted = wanted
        self.confirmers = [originator]
    }

    /// `max(Min, Max − (Max − Min)·log(C+1)/log(K+1))`, truncated to the millisecond; Min
    /// when K is 0.
    public static func timeout(confirmations c: Int, wanted k: Int, min: Duration, max: Duration) -> Duration {
        guard k > 0 else { return min }
        let fraction = log(Double(c) + 1) / log(Double(k) + 1)
        let raw = max.seconds - fraction * (max.seconds - min.seconds)
        let timeout = Duration.milliseconds(Int64((raw * 1000).rounded(.down)))
        return timeout < min ? min : timeout
    }

    /// Total timeout given the confirmations so far.
    public var timeout: Duration {
        Self.timeout(confirmations: confirmations, wanted: wanted, min: minTimeout, max: maxTimeout)
    }

    /// When the suspect is declared dead unless it refutes first.
    public var deadline: GossipInstant { start + timeout }

    /// Registers `member`'s independent suspicion. Returns true when it was new information
    /// (the caller re-gossips it); false for a repeat, the originator, or once K is reached.
    public mutating func confirm(by member: NodeID) -> Bool {
        guard confirmations < wanted, !confirmers.contains(member) else { return false }
        confirmers.insert(member)
        confirmations += 1
        return true
    }
}

/// Lifeguard's local health multiplier (LHM): how much this node doubts itself. A slow or
/// overloaded node misses acks and nacks; stretching its own probe interval and timeout
/// keeps it from accusing healthy members.
public struct LocalHealth: Hashable, Sendable {
    public private(set) var score: Int = 0
    public let maximum: Int

    public init(maximum: Int) { self.maximum = max(0, maximum) }

    public mutating func apply(_ delta: Int) { score = min(max(score + delta, 0), maximum) }

    /// Scales a timing by `(LHM + 1)`.
    public func scale(_ d: Duration) -> Duration { d * (score + 1) }
}
