// JoinAdmission: whether a node takes one more viewer. An overloaded edge that takes every
// join stalls them all (measured: 5,000 viewers arriving in 10 s at an edge that holds 1,400 —
// joins p99 18 s, client timeouts, and not one 4xx or 5xx to tell a player or a load balancer
// to go elsewhere). Over a bound, a new viewer's master playlist is answered 503 with
// Retry-After at once; viewers already watching are served as before (they hold what is cached).
//
// `JoinAdmission` is the policy (a value, no clock); `JoinGate` applies it for the routes with
// the node's figures, counts refusals and warns at most once per `warnEvery` seconds.
// `EventLoopLag` measures how late the event loops run their timers: the sign of a node that
// has more work than CPU, whatever the work is.
import Foundation
import HTTPSupport
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NodeMetrics
import Synchronization

package struct JoinAdmission: Sendable, Equatable {
    package enum Refusal: String, Sendable {
        case viewers
        case eventLoopLag = "event_loop_lag"
    }

    /// Viewer sessions this node serves at most; 0: no bound.
    package var maxViewers: Int
    /// Seconds the event loops may run late before joins are refused; 0: no bound.
    package var maxLag: Double

    package init(maxViewers: Int = 0, maxLag: Double = 0) {
        self.maxViewers = maxViewers
        self.maxLag = maxLag
    }

    /// Why a join is refused with `viewers` served and the loops `lag` seconds late; nil: taken.
    package func refusal(viewers: Int, lag: Double) -> Refusal? {
        if maxViewers > 0, viewers >= maxViewers { return .viewers }
        if maxLag > 0, lag > maxLag { return .eventLoopLag }
        return nil
    }
}

package final class JoinGate: Sendable {
    package let policy: JoinAdmission
    private let viewers: @Sendable () -> Int
    private let lag: @Sendable () -> Double
    private let clock: @Sendable () -> Double
    private let logger: Logger
    package let warnEvery: Double
    /// When the last warning went out, and the refusals since.
    private let warned = Mutex<(at: Double?, since: Int)>((nil, 0))

    package init(policy: JoinAdmission, viewers: @escaping @Sendable () -> Int, lag: @escaping @Sendable () -> Double,
                 logger: Logger, warnEvery: Double = 10,
                 clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.policy = policy
        self.viewers = viewers
        self.lag = lag
        self.logger = logger
        self.warnEvery = warnEvery
        self.clock = clock
    }

    /// The answer to a joining viewer when the node is over a bound (counted, warned), else nil.
    package func refuse() -> Response? {
        let viewers = policy.maxViewers > 0 ? viewers() : 0
        let lag = policy.maxLag > 0 ? lag() : 0
        guard let refusal = policy.refusal(viewers: viewers, lag: lag) else { return nil }
        NodeMetrics.viewerJoinsRefused(reason: refusal.rawValue).increment()
        let now = clock()
        let warn = warned.withLock { w -> Int? in
            w.since += 1
            guard w.at.map({ now - $0 >= warnEvery }) ?? true else { return nil }
            defer { w = (now, 0) }
            return w.since
        }
        if let refused = warn {
            logger.warning("node over its viewer bound: joins refused with 503", metadata: [
                "reason": "\(refusal.rawValue)", "viewers": "\(viewers)", "maxViewers": "\(policy.maxViewers)",
                "eventLoopLagMs": "\(Int(lag * 1000))", "refusedSinceLastWarning": "\(refused)",
            ])
        }
        let detail = refusal == .viewers ? "this node serves as many viewers as it may" : "this node is overloaded"
        return Problem(.serviceUnavailable, detail + "; try again shortly or another node",
                       headers: [.retryAfter: "2", .cacheControl: "no-store"]).response
    }
}

/// How late the event loops of a group run a timer, sampled every `interval`: each loop runs a
/// repeated task and notes by how much it came later than asked. `current` is the most any
/// loop was late at its last sample (a loop busy for a second reads ~1 s until it runs again;
/// one that never gets to run its timer again is read from the time since its last run).
package final class EventLoopLag: Sendable {
    private let lastRun: Mutex<[UInt64]>
    private let lateBy: Mutex<[Double]>
    private let interval: TimeAmount
    private let tasks: Mutex<[RepeatedTask]>

    package init(loops: [any EventLoop], interval: TimeAmount = .milliseconds(100)) {
        self.interval = interval
        let start = DispatchTime.now().uptimeNanoseconds
        lastRun = Mutex(Array(repeating: start, count: loops.count))
        lateBy = Mutex(Array(repeating: 0, count: loops.count))
        tasks = Mutex([])
        let every = UInt64(interval.nanoseconds)
        var started: [RepeatedTask] = []
        for (i, loop) in loops.enumerated() {
            started.append(loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
                let now = DispatchTime.now().uptimeNanoseconds
                let previous = lastRun.withLock { runs in defer { runs[i] = now }; return runs[i] }
                let late = Double(now &- previous &- min(every, now &- previous)) / 1e9
                lateBy.withLock { $0[i] = late }
            })
        }
        tasks.withLock { $0 = started }
    }

    /// Seconds the latest loop is behind (see above).
    package var current: Double {
        let now = DispatchTime.now().uptimeNanoseconds
        let every = UInt64(interval.nanoseconds)
        let sinceRun = lastRun.withLock { $0.map { Double(now &- min($0, now) &- min(every, now &- min($0, now))) / 1e9 } }
        let late = lateBy.withLock { $0 }
        let worst = max(sinceRun.max() ?? 0, late.max() ?? 0)
        NodeMetrics.eventLoopLagSeconds.record(worst)
        return worst
    }

    package func stop() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }
}
