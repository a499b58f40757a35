// A point in time as the caller's clock sees it. The state machine never reads a clock:
// every handler takes `now`, so a virtual clock in tests replays a run exactly.

/// A monotonic instant, in nanoseconds since an arbitrary epoch chosen by the caller.
public struct GossipInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = GossipInstant(nanoseconds: 0)

    public static func < (lhs: GossipInstant, rhs: GossipInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: GossipInstant, rhs: Duration) -> GossipInstant {
        GossipInstant(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }

    public static func - (lhs: GossipInstant, rhs: Duration) -> GossipInstant {
        GossipInstant(nanoseconds: lhs.nanoseconds &- rhs.nanoseconds)
    }

    public static func - (lhs: GossipInstant, rhs: GossipInstant) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String { "t+\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// Whole nanoseconds (truncating), the unit the state machine computes in.
    public var nanoseconds: Int64 {
        let c = components
        return c.seconds &* 1_000_000_000 &+ c.attoseconds / 1_000_000_000
    }

    /// Seconds as a floating point number.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// Builds a duration from floating point seconds, rounded to the nanosecond.
    public static func seconds(double value: Double) -> Duration {
        .nanoseconds(Int64((value * 1e9).rounded()))
    }
}
