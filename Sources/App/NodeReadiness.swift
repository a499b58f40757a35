// NodeReadiness: whether the node should be sent traffic now, for `/healthz/ready` (load
// balancers' health checks, Kubernetes' readiness probe). `/healthz` says the process is alive;
// this says it is worth routing to. Not ready: while it joins the cluster (it does not yet know
// the ring, so it would send viewers and broadcasters to the wrong owners) and once it hands over
// (SIGTERM: its streams go to their standbys; new work belongs elsewhere). Before the database is
// migrated nothing listens, which a probe reads as not ready too.
import Foundation
import NodeMetrics
import Synchronization

package final class NodeReadiness: Sendable {
    package enum State: Equatable, Sendable {
        case ready
        case joining
        case handingOver

        package var reason: String? {
            switch self {
            case .ready: nil
            case .joining: "joining the cluster: no other member answered yet"
            case .handingOver: "handing its streams over and leaving the cluster"
            }
        }
    }

    private let started = ContinuousClock.now
    private let hasSeeds: Bool
    /// A node whose seeds never answer stops waiting after this (it may be the first of its cluster).
    private let joinWait: Duration
    private let otherMembersAlive: @Sendable () -> Int
    private let joined = Atomic<Bool>(false)
    private let handingOver = Atomic<Bool>(false)

    package init(hasSeeds: Bool, joinWait: Duration = .seconds(10), otherMembersAlive: @escaping @Sendable () -> Int) {
        self.hasSeeds = hasSeeds
        self.joinWait = joinWait
        self.otherMembersAlive = otherMembersAlive
    }

    /// SIGTERM: from now on, not ready.
    package func handoverBegan() {
        handingOver.store(true, ordering: .relaxed)
        NodeMetrics.ready.record(0)
    }

    package var state: State {
        if handingOver.load(ordering: .relaxed) { return .handingOver }
        if !joined.load(ordering: .relaxed) {
            // Once joined, a node stays joined: members coming and going later is the cluster's life, not a reason to stop traffic.
            guard !hasSeeds || otherMembersAlive() > 0 || ContinuousClock.now - started >= joinWait else { return .joining }
            joined.store(true, ordering: .relaxed)
        }
        return .ready
    }
}
