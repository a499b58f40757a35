// Every timing of the protocol, derived from a few knobs as memberlist does, with its LAN,
// WAN and Local presets. Formulas that scale with the cluster size live here too, so the
// state machine and the tests share one definition.

import Foundation

/// Settings of one gossip instance.
public struct GossipConfig: Hashable, Sendable {
    /// Authenticated (not secret) data of every packet: a node of another cluster, even one
    /// holding the same key, cannot inject packets.
    public var clusterName: String
    /// One protocol period: a probe starts every `probeInterval × (LHM+1)`.
    public var probeInterval: Duration
    /// Time to wait for a direct ack before asking helpers: `probeTimeout × (LHM+1)`.
    public var probeTimeout: Duration
    /// Helpers (k) asked to probe indirectly after a missed ack.
    public var indirectChecks: Int
    /// Scales the minimum suspicion timeout; `suspicionMult − 2` confirmations drive the
    /// timeout to its minimum.
    public var suspicionMult: Int
    /// Maximum suspicion timeout as a multiple of the minimum.
    public var suspicionMaxTimeoutMult: Int
    /// Scales how often each update is piggybacked: `retransmitMult·⌈log10(N+1)⌉`.
    public var retransmitMult: Int
    public var gossipInterval: Duration
    public var gossipNodes: Int
    /// Base interval of full-state exchange; scaled up above 32 members.
    public var pushPullInterval: Duration
    /// Upper bound of the local health multiplier (Lifeguard's S).
    public var awarenessMaxMultiplier: Int
    /// Largest encrypted datagram the state machine will ask the shell to send.
    public var maxPacketSize: Int
    /// Dead members keep being gossiped to for this long, so a wrongly declared node hears
    /// about it and refutes. Derived unless set: the push-pull interval (memberlist's value).
    public var gossipToTheDeadTime: Duration {
        get { gossipToTheDeadTimeOverride ?? pushPullInterval }
        set { gossipToTheDeadTimeOverride = newValue }
    }
    /// Dead and left members stay as tombstones this long (stale `alive` messages at an old
    /// incarnation cannot resurrect them), then are reaped. Derived unless set: 10 push-pull
    /// intervals.
    public var deadReapTime: Duration {
        get { deadReapTimeOverride ?? pushPullInterval * 10 }
        set { deadReapTimeOverride = newValue }
    }
    /// While some members are dead, one of them is offered a full-state exchange this often: a
    /// member declared dead may only have been cut off (a partition), and the halves merge at the
    /// next try after the heal rather than at a push-pull that picks a dead member by chance.
    /// Derived unless set: five probe intervals.
    public var reconnectInterval: Duration {
        get { reconnectIntervalOverride ?? probeInterval * 5 }
        set { reconnectIntervalOverride = newValue }
    }
    private var reconnectIntervalOverride: Duration?
    private var gossipToTheDeadTimeOverride: Duration?
    private var deadReapTimeOverride: Duration?
    /// Tuning of the network coordinates.
    public var vivaldi: VivaldiConfig

    public init(
        clusterName: String, probeInterval: Duration, probeTimeout: Duration, indirectChecks: Int,
        suspicionMult: Int, suspicionMaxTimeoutMult: Int, retransmitMult: Int, gossipInterval: Duration,
        gossipNodes: Int, pushPullInterval: Duration, awarenessMaxMultiplier: Int = 8, maxPacketSize: Int = 1400,
        gossipToTheDeadTime: Duration? = nil, deadReapTime: Duration? = nil, vivaldi: VivaldiConfig = .init()
    ) {
        self.clusterName = clusterName
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.indirectChecks = indirectChecks
        self.suspicionMult = suspicionMult
        self.suspicionMaxTimeoutMult = suspicionMaxTimeoutMult
        self.retransmitMult = retransmitMult
        self.gossipInterval = gossipInterval
        self.gossipNodes = gossipNodes
        self.pushPullInterval = pushPullInterval
        self.awarenessMaxMultiplier = awarenessMaxMultiplier
        self.maxPacketSize = maxPacketSize
        self.gossipToTheDeadTimeOverride = gossipToTheDeadTime
        self.deadReapTimeOverride = deadReapTime
        self.vivaldi = vivaldi
    }

    /// memberlist's DefaultLANConfig: a data centre.
    public static func lan(clusterName: String) -> GossipConfig {
        GossipConfig(
            clusterName: clusterName, probeInterval: .seconds(1), probeTimeout: .milliseconds(500),
            indirectChecks: 3, suspicionMult: 4, suspicionMaxTimeoutMult: 6, retransmitMult: 4,
            gossipInterval: .milliseconds(200), gossipNodes: 3, pushPullInterval: .seconds(30))
    }

    /// memberlist's DefaultWANConfig: members across the internet.
    public static func wan(clusterName: String) -> GossipConfig {
        GossipConfig(
            clusterName: clusterName, probeInterval: .seconds(5), probeTimeout: .seconds(3),
            indirectChecks: 3, suspicionMult: 6, suspicionMaxTimeoutMult: 6, retransmitMult: 4,
            gossipInterval: .milliseconds(500), gossipNodes: 4, pushPullInterval: .seconds(60))
    }

    /// memberlist's DefaultLocalConfig (loopback or one host), but for `retransmitMult` 3 where
    /// memberlist has 2: with 2 sends an update missed a member of a five-node cluster in about
    /// one run of eight, which then waited for its own suspicion or a push-pull (up to 18 s;
    /// `ClusterSimulationTests.testADeathVerdictSpreadsInAFewGossipRoundsInASmallCluster`).
    public static func local(clusterName: String) -> GossipConfig {
        GossipConfig(
            clusterName: clusterName, probeInterval: .seconds(1), probeTimeout: .milliseconds(200),
            indirectChecks: 1, suspicionMult: 3, suspicionMaxTimeoutMult: 6, retransmitMult: 3,
            gossipInterval: .milliseconds(100), gossipNodes: 3, pushPullInterval: .seconds(15))
    }

    // MARK: Derived formulas

    /// Times an update is piggybacked before it is dropped: `retransmitMult·⌈log10(N+1)⌉`.
    public func retransmitLimit(memberCount n: Int) -> Int {
        retransmitMult * Int(ceil(log10(Double(max(n, 0)) + 1)))
    }

    /// Lifeguard's minimum suspicion timeout: `suspicionMult·max(1, log10 N)·probeInterval`.
    public func suspicionMinTimeout(memberCount n: Int) -> Duration {
        let scale = max(1, log10(Double(max(n, 1))))
        return .seconds(double: Double(suspicionMult) * scale * probeInterval.seconds)
    }

    /// Maximum suspicion timeout: `suspicionMaxTimeoutMult × min`.
    public func suspicionMaxTimeout(memberCount n: Int) -> Duration {
        suspicionMinTimeout(memberCount: n) * suspicionMaxTimeoutMult
    }

    /// Independent confirmations that drive the timeout to its minimum: `suspicionMult − 2`,
    /// or 0 when the cluster is too small to produce that many (`N − 2 < K`).
    public func suspicionConfirmationsWanted(memberCount n: Int) -> Int {
        let k = max(suspicionMult - 2, 0)
        return n - 2 < k ? 0 : k
    }

    /// How long after a node dies the others should all hold it dead, as operators plan
    /// for it: a probe reaches it within a protocol period and fails after the probe
    /// timeout, the other members' own probes confirm the suspicion within another period
    /// or two, the minimum suspicion timeout runs, and the verdict spreads in a few gossip
    /// rounds: `3·probeInterval + probeTimeout + suspicionMin + retransmitLimit·gossipInterval`.
    public func failureDetectionBound(memberCount n: Int) -> Duration {
        probeInterval * 3 + probeTimeout + suspicionMinTimeout(memberCount: n) + gossipInterval * retransmitLimit(memberCount: n)
    }

    /// Full-state exchange interval, scaled up above 32 members so the cluster-wide rate of
    /// these expensive exchanges stays bounded (memberlist's pushPullScale).
    public func pushPullInterval(memberCount n: Int) -> Duration {
        let threshold = 32
        guard n > threshold else { return pushPullInterval }
        let multiplier = Int(ceil(log2(Double(n)) - log2(Double(threshold)))) + 1
        return pushPullInterval * multiplier
    }

    /// How long a helper waits before it tells the requester "no ack yet" (nack).
    public var nackTimeout: Duration { .seconds(double: probeTimeout.seconds * 0.8) }
}
