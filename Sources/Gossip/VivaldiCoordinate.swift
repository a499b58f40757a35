// Network coordinates as in Serf's Vivaldi variant: a Euclidean vector plus a height (the
// access-link latency), an error estimate, and an adjustment term learned from recent
// samples. The distance between two coordinates estimates the round-trip time in seconds.

/// A Vivaldi network coordinate. Units are seconds.
public struct VivaldiCoordinate: Hashable, Sendable {
    public var vector: [Double]
    public var error: Double
    public var adjustment: Double
    public var height: Double

    public init(vector: [Double], error: Double, adjustment: Double, height: Double) {
        self.vector = vector
        self.error = error
        self.adjustment = adjustment
        self.height = height
    }

    /// The origin coordinate a new node starts from.
    public init(config: VivaldiConfig = .init()) {
        self.init(
            vector: Array(repeating: 0, count: config.dimensions), error: config.errorMax,
            adjustment: 0, height: config.heightMin)
    }

    /// True when every component is finite (a NaN or infinity must never spread).
    public var isValid: Bool {
        vector.allSatisfy(\.isFinite) && error.isFinite && adjustment.isFinite && height.isFinite
    }

    public func isCompatible(with other: VivaldiCoordinate) -> Bool { vector.count == other.vector.count }

    /// Estimated round trip to `other`, including both adjustment terms when that keeps it
    /// positive.
    public func distance(to other: VivaldiCoordinate) -> Duration {
        .seconds(double: distanceSeconds(to: other))
    }

    func distanceSeconds(to other: VivaldiCoordinate) -> Double {
        let raw = rawDistance(to: other)
        let adjusted = raw + adjustment + other.adjustment
        return adjusted > 0 ? adjusted : raw
    }

    func rawDistance(to other: VivaldiCoordinate) -> Double {
        Self.euclidean(vector, other.vector) + height + other.height
    }

    /// Moves this coordinate by `force` along the line from `other` (positive pushes away).
    /// Used by `VivaldiClient`.
    func applying(force: Double, from other: VivaldiCoordinate, config: VivaldiConfig, rng: inout GossipRandom)
        -> VivaldiCoordinate
    {
        var result = self
        let magnitude = Self.euclidean(vector, other.vector)
        if magnitude > VivaldiConfig.zeroThreshold, vector.count == other.vector.count {
            // The unit vector from `other` to here, without building it: (v − o)/|v − o|.
            for i in result.vector.indices { result.vector[i] += (vector[i] - other.vector[i]) / magnitude * force }
        } else {
            let (unit, _) = Self.unitVector(from: other.vector, to: vector, rng: &rng)
            for i in result.vector.indices { result.vector[i] += unit[i] * force }
        }
        if magnitude > VivaldiConfig.zeroThreshold {
            result.height = (result.height + other.height) * force / magnitude + result.height
            result.height = max(result.height, config.heightMin)
        }
        return result
    }

    static func difference(_ a: [Double], _ b: [Double]) -> [Double] {
        zip(a, b).map { $0 - $1 }
    }

    static func magnitude(_ v: [Double]) -> Double {
        v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }

    /// `magnitude(difference(a, b))`, the same arithmetic in the same order, without the
    /// intermediate array (every probe's ack updates a coordinate).
    static func euclidean(_ a: [Double], _ b: [Double]) -> Double {
        var sum = 0.0
        for i in 0..<min(a.count, b.count) {
            let d = a[i] - b[i]
            sum = sum + d * d
        }
        return sum.squareRoot()
    }

    /// Unit vector pointing from `from` to `to`, and the distance between them. Two equal
    /// points get a random direction (drawn from the injected generator) and magnitude 0.
    static func unitVector(from: [Double], to: [Double], rng: inout GossipRandom) -> ([Double], Double) {
        let d = difference(to, from)
        let m = magnitude(d)
        if m > VivaldiConfig.zeroThreshold { return (d.map { $0 / m }, m) }
        let random = d.map { _ in Double.random(in: -0.5..<0.5, using: &rng) }
        let rm = magnitude(random)
        if rm > VivaldiConfig.zeroThreshold { return (random.map { $0 / rm }, 0) }
        var unit = Array(repeating: 0.0, count: d.count)
        if !unit.isEmpty { unit[0] = 1 }
        return (unit, 0)
    }
}

/// Tuning of the Vivaldi update; defaults follow Serf.
public struct VivaldiConfig: Hashable, Sendable {
    public var dimensions: Int = 8
    public var errorMax: Double = 1.5
    /// Error-estimate gain (c_e in the paper).
    public var ce: Double = 0.25
    /// Movement gain (c_c in the paper).
    public var cc: Double = 0.25
    /// Samples kept for the adjustment term; 0 disables it.
    public var adjustmentWindowSize: Int = 20
    public var heightMin: Double = 10e-6
    /// Samples per peer kept for the median latency filter.
    public var latencyFilterSize: Int = 3
    /// Gravity pulling coordinates back to the origin so the system does not drift.
    public var gravityRho: Double = 150

    static let zeroThreshold = 1.0e-6

    public init() {}
}
