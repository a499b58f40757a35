// A simulation scenario as read from a JSON file: the cluster, the network, the gossip
// preset and a timeline of faults. Everything a run depends on is here, seed included, so
// one file and one seed replay one run.

import Foundation
import Gossip

/// One scenario (see `Simulations/scenarios/*.json`).
public struct Scenario: Codable, Sendable {
    public var name: String
    public var description: String?
    public var seed: UInt64
    public var nodes: Int
    /// Simulated seconds after the warm-up.
    public var durationSeconds: Double
    /// Seconds at the start that the traffic and false-positive figures leave out.
    public var warmupSeconds: Double?
    /// "local", "lan" or "wan" (memberlist presets from `GossipConfig`).
    public var preset: String?
    public var lifeguard: Bool?
    /// Overrides of the preset.
    public var overrides: ConfigOverrides?
    public var network: NetworkSpec?
    public var streams: Int?
    /// How the cluster starts. Every node is handed the full member list, as after a
    /// completed join. "joined" (default): each node then gossips what it learned, as after
    /// a mass join (N² updates, N·20 transmissions each at 10,000 nodes, spread over minutes).
    /// "settled": that initial dissemination is already over (nothing queued), as in a
    /// cluster that has been running; it costs nothing to simulate.
    public var start: String?
    /// How often views, owners and invariants are sampled (simulated seconds).
    public var sampleIntervalSeconds: Double?
    /// Seconds without scheduled faults after which views must agree.
    public var quiescenceSeconds: Double?
    /// How long a disagreement may last in a quiescent period, or an alive node stay
    /// declared dead, before it is a violation.
    public var graceSeconds: Double?
    public var events: [ScenarioEvent]?

    public struct ConfigOverrides: Codable, Sendable {
        public var probeIntervalMs: Int?
        public var probeTimeoutMs: Int?
        public var indirectChecks: Int?
        public var suspicionMult: Int?
        public var suspicionMaxTimeoutMult: Int?
        public var retransmitMult: Int?
        public var gossipIntervalMs: Int?
        public var gossipNodes: Int?
        public var pushPullIntervalMs: Int?
        public var awarenessMaxMultiplier: Int?
    }

    public struct Region: Codable, Sendable {
        public var name: String
        public var weight: Double?
    }

    public struct NetworkSpec: Codable, Sendable {
        public var regions: [Region]?
        /// One-way latency between regions in milliseconds, `latencyMs[a][b]`.
        public var latencyMs: [[Double]]?
        /// Uniform extra delay in [0, jitterMs).
        public var jitterMs: Double?
        public var loss: Double?
        public var duplicate: Double?
        /// Probability that a datagram is held back by up to `reorderMaxMs`.
        public var reorder: Double?
        public var reorderMaxMs: Double?
    }

    public init(name: String, seed: UInt64, nodes: Int, durationSeconds: Double) {
        self.name = name
        self.seed = seed
        self.nodes = nodes
        self.durationSeconds = durationSeconds
    }

    public static func load(from url: URL) throws -> Scenario {
        let data = try Data(contentsOf: url)
        do {
            return try JSONDecoder().decode(Scenario.self, from: data)
        } catch {
            throw SimulationError.invalidScenario("\(url.path): \(error)")
        }
    }

    /// The gossip configuration of every node.
    public func gossipConfig() throws -> GossipConfig {
        var c: GossipConfig
        switch preset ?? "lan" {
        case "local": c = .local(clusterName: "sim")
        case "lan": c = .lan(clusterName: "sim")
        case "wan": c = .wan(clusterName: "sim")
        case let other: throw SimulationError.invalidScenario("unknown preset '\(other)' (use local, lan or wan)")
        }
        if let o = overrides {
            if let v = o.probeIntervalMs { c.probeInterval = .milliseconds(v) }
            if let v = o.probeTimeoutMs { c.probeTimeout = .milliseconds(v) }
            if let v = o.indirectChecks { c.indirectChecks = v }
            if let v = o.suspicionMult { c.suspicionMult = v }
            if let v = o.suspicionMaxTimeoutMult { c.suspicionMaxTimeoutMult = v }
            if let v = o.retransmitMult { c.retransmitMult = v }
            if let v = o.gossipIntervalMs { c.gossipInterval = .milliseconds(v) }
            if let v = o.gossipNodes { c.gossipNodes = v }
            if let v = o.pushPullIntervalMs { c.pushPullInterval = .milliseconds(v) }
            if let v = o.awarenessMaxMultiplier { c.awarenessMaxMultiplier = v }
        }
        if lifeguard == false {
            // Gossip has no Lifeguard switch: no local health multiplier, and a suspicion
            // timeout that does not shrink with confirmations (max = min).
            c.awarenessMaxMultiplier = 0
            c.suspicionMaxTimeoutMult = 1
        }
        return c
    }
}

/// One entry of the fault timeline. `at` is in simulated seconds after the warm-up.
public struct ScenarioEvent: Codable, Sendable {
    /// crash, restart, partition, heal, loss, slow, fast, flap, rollingRestart
    public var kind: String
    public var at: Double
    /// Node indices the event applies to.
    public var nodes: [Int]?
    /// crash: this many random alive nodes.
    public var random: Int?
    /// crash: the owners of this many streams (origin crashes during live streams).
    public var owners: Int?
    /// partition: regions cut off from the others.
    public var regions: [String]?
    /// restart: seconds after the crash (for crash events that restart later).
    public var restartAfter: Double?
    /// loss: the new loss probability.
    public var value: Double?
    /// slow / flap: processing delay in milliseconds.
    public var delayMs: Double?
    /// flap: seconds slow, then seconds normal, until `until`.
    public var onSeconds: Double?
    public var offSeconds: Double?
    public var until: Double?
    /// rollingRestart: seconds between two restarts, nodes restarted at once, and downtime.
    public var every: Double?
    public var batch: Int?
    public var downtime: Double?
}

/// Errors a user can act on.
public enum SimulationError: Error, CustomStringConvertible {
    case invalidScenario(String)
    case io(String)

    public var description: String {
        switch self {
        case .invalidScenario(let m): "invalid scenario: \(m)"
        case .io(let m): "cannot write output: \(m)"
        }
    }
}
