// What a run measured: raw records (one per failure, failover, partition, sample) and
// counters. Summaries (percentiles, rates) are computed from them by the report.

import Gossip

/// One crash and how the cluster learned of it. Times are nanoseconds after the crash.
public struct FailureRecord: Sendable {
    public var node: Int
    public var crashedAt: Int64
    public var clusterSize: Int
    /// First observer that suspected (or declared dead) the node.
    public var firstDetection: Int64?
    /// First observer that declared it dead.
    public var firstDead: Int64?
    /// Every alive observer holds it dead (or has forgotten it).
    public var allDead: Int64?
    /// The node came back before every observer knew it had gone.
    public var restartedBeforeAllKnew = false

    public init(node: Int, crashedAt: Int64, clusterSize: Int) {
        self.node = node
        self.crashedAt = crashedAt
        self.clusterSize = clusterSize
    }
}

/// A stream whose owner crashed: time until every alive node agreed on an alive new owner.
public struct FailoverRecord: Sendable {
    public var stream: Int
    public var owner: Int
    public var crashedAt: Int64
    public var agreedAfter: Int64?
    public var newOwner: Int?
}

public struct PartitionRecord: Sendable {
    public var at: Int64
    public var description: String
    public var healedAt: Int64?
    /// From the heal until every alive node's view held exactly the alive nodes.
    public var convergedAfterHeal: Int64?
}

public struct TimelinePoint: Sendable {
    public var time: Int64
    public var up: Int
    /// Fraction of alive nodes whose view holds exactly the alive nodes.
    public var converged: Double
    /// Distinct views among alive nodes.
    public var views: Int
    public var agreedStreams: Int
    public var datagrams: UInt64
}

public struct FalsePositive: Hashable, Sendable {
    public var node: Int
    public var incarnation: UInt64
}

/// Everything measured in one run.
public struct Metrics: Sendable {
    public var regionNames: [String] = []
    public var failures: [FailureRecord] = []
    public var failovers: [FailoverRecord] = []
    public var partitions: [PartitionRecord] = []
    public var timeline: [TimelinePoint] = []
    public var violations: [Violation] = []
    /// Traffic after the warm-up (sizes as sealed packets: codec size + encryption overhead).
    public var datagrams: UInt64 = 0
    public var messages: UInt64 = 0
    public var datagramBytes: UInt64 = 0
    public var datagramsLost: UInt64 = 0
    public var datagramsDuplicated: UInt64 = 0
    public var maxDatagram = 0
    public var fullStates: UInt64 = 0
    public var fullStateBytes: UInt64 = 0
    /// Observer-level declarations "dead" about an alive node, and distinct (node, incarnation).
    public var falseDeathDeclarations = 0
    public var falsePositiveIncidents: Set<FalsePositive> = []
    public var falseSuspicions = 0
    /// Dead declarations about alive nodes on the other side of a partition.
    public var partitionDeathDeclarations = 0
    public var churnWithoutCause = 0
    public var churnWithCause = 0
    public var restarts = 0
    public var upNodeSeconds = 0.0
    public var endTime: Int64 = 0
    public var warmupEnd: Int64 = 0
    public var finalUp = 0
    public var finalConverged = 0
}

/// Percentiles of a sample (nearest rank).
public struct Summary: Sendable {
    public var count: Int
    public var p50: Double
    public var p95: Double
    public var max: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        func rank(_ q: Double) -> Double { s[Swift.min(s.count - 1, Swift.max(0, Int((q * Double(s.count)).rounded(.up)) - 1))] }
        count = s.count
        p50 = rank(0.5)
        p95 = rank(0.95)
        max = s.last!
    }
}
