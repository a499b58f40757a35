// The figures the SWIM paper and epidemic theory predict, to set beside the measured ones.

import Foundation
import Gossip

/// Expected values for a cluster of `n` members under `config`.
public struct Theory: Sendable {
    public var n: Int
    public var config: GossipConfig

    public init(n: Int, config: GossipConfig) {
        self.n = n
        self.config = config
    }

    var period: Double { config.probeInterval.seconds }

    /// SWIM: expected time until some member first probes the failed one, e/(e−1)·T, for
    /// random target choice (round-robin choice, as here, bounds the worst case instead).
    public var firstProbe: Double { M_E / (M_E - 1) * period }

    /// This implementation raises the suspicion when the failed probe's period ends, one
    /// period after the probe began: expected first detection ≈ e/(e−1)·T + T.
    public var firstDetection: Double { firstProbe + period }

    /// Infection-style dissemination with fan-out f per gossip round (Pittel 1987):
    /// log_{f+1}(N) + ln(N)/f rounds, times the gossip interval.
    public var disseminationRounds: Double {
        let f = Double(max(config.gossipNodes, 1))
        let nn = Double(max(n, 2))
        return log(nn) / log(f + 1) + log(nn) / f
    }

    public var dissemination: Double { disseminationRounds * config.gossipInterval.seconds }

    /// SWIM's own bound: an update is piggybacked for 3⌈log(N+1)⌉ periods (paper's runs).
    public var swimPiggybackPeriods: Int { 3 * Int(ceil(log10(Double(n) + 1))) }

    /// Lifeguard suspicion timeouts (min with K confirmations, max with none).
    public var suspicionMin: Double { config.suspicionMinTimeout(memberCount: n).seconds }
    public var suspicionMax: Double { config.suspicionMaxTimeout(memberCount: n).seconds }

    /// Upper bound used by the tests: every node learns of a crash within one probe round
    /// trip over all members' round-robin (≤ 2 periods, practically), the longest
    /// suspicion timeout and a generous dissemination allowance (3·log-rounds).
    public var lifeguardDetectionBound: Double {
        2 * period * Double(config.awarenessMaxMultiplier + 1) + suspicionMax + 3 * dissemination + 1
    }
}
