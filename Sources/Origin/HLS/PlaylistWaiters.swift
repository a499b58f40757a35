// PlaylistWaiters: the viewers waiting for a part or segment that does not exist yet
// (LL-HLS blocking playlist reload). A value type held under the stream's lock: it takes
// waiters out with their answers, and the stream resumes them once the lock is released.

/// The blocking requests of a stream, each waiting for a `LiveTarget` in one rendition.
struct PlaylistWaiters {
    struct Waiter {
        var rendition: String
        var target: LiveTarget
        var continuation: CheckedContinuation<Bool, Never>
    }

    /// A waiter taken out with its answer (true: its target exists), to resume outside the lock.
    struct Answer {
        var continuation: CheckedContinuation<Bool, Never>
        var found: Bool
    }

    private var waiting: [UInt64: Waiter] = [:]
    private var lastID: UInt64 = 0

    var count: Int { waiting.count }

    /// A new waiter's id, taken before it waits so that its timeout and cancellation can name it.
    mutating func nextID() -> UInt64 {
        lastID += 1
        return lastID
    }

    mutating func add(_ waiter: Waiter, id: UInt64) { waiting[id] = waiter }

    /// Takes a waiter out (timed out or cancelled): its answer is no.
    mutating func remove(_ id: UInt64) -> Answer? {
        waiting.removeValue(forKey: id).map { Answer(continuation: $0.continuation, found: false) }
    }

    /// Takes out the waiters of `rendition` whose target it now has.
    mutating func takeSatisfied(by rendition: LiveRendition) -> [Answer] {
        var out: [Answer] = []
        for (id, w) in waiting where w.rendition == rendition.name && rendition.isSatisfied(w.target) {
            out.append(Answer(continuation: w.continuation, found: true))
            waiting[id] = nil
        }
        return out
    }

    /// Takes out every waiter of `rendition` (it ended): yes if it has their target, else no.
    mutating func takeAll(of rendition: LiveRendition) -> [Answer] {
        var out: [Answer] = []
        for (id, w) in waiting where w.rendition == rendition.name {
            waiting[id] = nil
            out.append(Answer(continuation: w.continuation, found: rendition.isSatisfied(w.target)))
        }
        return out
    }
}

extension [PlaylistWaiters.Answer] {
    /// Resumes the waiters; called with the stream's lock released.
    func resume() {
        for a in self { a.continuation.resume(returning: a.found) }
    }
}
