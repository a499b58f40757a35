// One node's Vivaldi state: its own coordinate, a median filter of recent RTTs per peer,
// and the adjustment window. Fed by the membership state machine with each direct ack.

/// Maintains the local node's network coordinate from RTT observations.
public struct VivaldiClient: Sendable {
    public private(set) var coordinate: VivaldiCoordinate
    public let config: VivaldiConfig
    private let origin: VivaldiCoordinate
    private var adjustmentSamples: [Double]
    private var adjustmentIndex = 0
    private var latencyFilter: [NodeID: [Double]] = [:]
    /// Updates rejected because the peer's coordinate or the RTT was unusable.
    public private(set) var rejectedUpdates = 0
    /// Times the coordinate became invalid and was reset to the origin.
    public private(set) var resets = 0

    public init(config: VivaldiConfig = .init()) {
        self.config = config
        self.coordinate = VivaldiCoordinate(config: config)
        self.origin = VivaldiCoordinate(config: config)
        self.adjustmentSamples = Array(repeating: 0, count: max(config.adjustmentWindowSize, 0))
    }

    /// Folds in one observation: `peer` at coordinate `other` answered in `rtt`.
    /// Returns the updated local coordinate.
    @discardableResult
    public mutating func update(peer: NodeID, other: VivaldiCoordinate, rtt: Duration, rng: inout GossipRandom)
        -> VivaldiCoordinate
    {
        let rttSeconds = rtt.seconds
        guard other.isValid, other.isCompatible(with: coordinate), rttSeconds >= 0, rttSeconds < 10 else {
            rejectedUpdates += 1
            return coordinate
        }
        let filtered = filterLatency(peer: peer, rtt: rttSeconds)
        updateVivaldi(other: other, rtt: filtered, rng: &rng)
        updateAdjustment(other: other, rtt: filtered)
        updateGravity(rng: &rng)
        if !coordinate.isValid {
            resets += 1
            coordinate = origin
        }
        return coordinate
    }

    /// The median of the recent round trips measured to `peer` (what its coordinate update
    /// used last), if this node probed it since it last forgot it.
    public func measuredRTT(peer: NodeID) -> Duration? {
        guard let samples = latencyFilter[peer], !samples.isEmpty else { return nil }
        return .seconds(double: Self.median(samples))
    }

    /// Forgets the latency history of a peer that left.
    public mutating func forget(peer: NodeID) { latencyFilter[peer] = nil }

    private mutating func filterLatency(peer: NodeID, rtt: Double) -> Double {
        // Taken out of the dictionary and put back, so it is appended to in place.
        var samples = latencyFilter.removeValue(forKey: peer) ?? []
        samples.append(rtt)
        if samples.count > config.latencyFilterSize { samples.removeFirst(samples.count - config.latencyFilterSize) }
        latencyFilter[peer] = samples
        return Self.median(samples)
    }

    /// The upper median of a non-empty filter window; up to three without sorting a copy (a
    /// probe's ack comes every second).
    private static func median(_ samples: [Double]) -> Double {
        switch samples.count {
        case 1: return samples[0]
        case 2: return max(samples[0], samples[1])
        case 3: return max(min(samples[0], samples[1]), min(max(samples[0], samples[1]), samples[2]))
        default: return samples.sorted()[samples.count / 2]
        }
    }

    private mutating func updateVivaldi(other: VivaldiCoordinate, rtt rawRTT: Double, rng: inout GossipRandom) {
        let rtt = max(rawRTT, VivaldiConfig.zeroThreshold)
        let dist = coordinate.distanceSeconds(to: other)
        let wrongness = abs(dist - rtt) / rtt
        let totalError = max(coordinate.error + other.error, VivaldiConfig.zeroThreshold)
        let weight = coordinate.error / totalError
        var next = coordinate
        next.error = config.ce * weight * wrongness + coordinate.error * (1 - config.ce * weight)
        next.error = min(next.error, config.errorMax)
        let force = config.cc * weight * (rtt - dist)
        coordinate = next.applying(force: force, from: other, config: config, rng: &rng)
    }

    private mutating func updateAdjustment(other: VivaldiCoordinate, rtt: Double) {
        guard !adjustmentSamples.isEmpty else { return }
        adjustmentSamples[adjustmentIndex] = rtt - coordinate.rawDistance(to: other)
        adjustmentIndex = (adjustmentIndex + 1) % adjustmentSamples.count
        coordinate.adjustment = adjustmentSamples.reduce(0, +) / (2 * Double(adjustmentSamples.count))
    }

    private mutating func updateGravity(rng: inout GossipRandom) {
        let dist = origin.distanceSeconds(to: coordinate)
        let force = -1 * (dist / config.gravityRho) * (dist / config.gravityRho)
        coordinate = coordinate.applying(force: force, from: origin, config: config, rng: &rng)
    }
}
