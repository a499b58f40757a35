import Synchronization

/// Request coalescing: concurrent callers asking for the same key share one `fetch`.
///
/// Contract:
/// - While a fetch for `key` is in flight, every further caller for `key` waits for it and
///   gets its value or its error; `fetch` runs exactly once for all of them.
/// - Nothing is cached: once the fetch completes, the next call fetches again (the caller's
///   cache, e.g. `EdgeStore`, sits in front).
/// - The fetch runs in its own unstructured task, so cancelling one waiter (even the first)
///   does not cancel it for the others; the cancelled waiter gets `CancellationError`.
///   When every waiter has gone the fetch still finishes (its result fills no one; the
///   caller usually stores it in the cache from inside `fetch`).
///
/// Like nginx `proxy_cache_lock` without the lock timeout: put a timeout inside `fetch`.
public final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private typealias Waiter = CheckedContinuation<Value, any Error>

    private enum Role { case cancelled, leader, follower }

    private struct Flight {
        var waiters: [Int: Waiter] = [:]
    }

    private struct State {
        var flights: [Key: Flight] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Number of keys with a fetch in flight (tests, metrics).
    public var inFlight: Int { state.withLock { $0.flights.count } }

    /// Number of callers waiting on the fetch for `key` (tests).
    public func waiters(for key: Key) -> Int { state.withLock { $0.flights[key]?.waiters.count ?? 0 } }

    /// The result of `fetch` for `key`, shared with every concurrent caller for `key`.
    public func value(for key: Key, fetch: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: Waiter) in
                // The cancellation flag is set before `onCancel` runs, so checking it under
                // the lock closes the race with a handler that found nothing to remove.
                let role = state.withLock { s -> Role in
                    if Task.isCancelled { return .cancelled }
                    if s.flights[key] != nil {
                        s.flights[key]!.waiters[id] = c
                        return .follower
                    }
                    s.flights[key] = Flight(waiters: [id: c])
                    return .leader
                }
                switch role {
                case .cancelled: c.resume(throwing: CancellationError())
                case .leader: Task { await self.run(key, fetch) }
                case .follower: break
                }
            }
        } onCancel: {
            let c = state.withLock { s -> Waiter? in
                s.flights[key]?.waiters.removeValue(forKey: id)
            }
            c?.resume(throwing: CancellationError())
        }
    }

    private func run(_ key: Key, _ fetch: @Sendable () async throws -> Value) async {
        let result: Result<Value, any Error>
        do {
            result = .success(try await fetch())
        } catch {
            result = .failure(error)
        }
        let waiters = state.withLock { s in
            s.flights.removeValue(forKey: key)?.waiters.values.map { $0 } ?? []
        }
        for w in waiters { w.resume(with: result) }
    }
}
