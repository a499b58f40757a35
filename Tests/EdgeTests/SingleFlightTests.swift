import Synchronization
import XCTest
@testable import Edge

final class SingleFlightTests: XCTestCase {
    struct UpstreamError: Error, Equatable { var code: Int }

    /// Waits (cooperatively) until `n` callers are parked on `key`.
    static func waitForWaiters<K, V>(_ sf: SingleFlight<K, V>, _ key: K, _ n: Int) async {
        while sf.waiters(for: key) < n { try? await Task.sleep(for: .milliseconds(1)) }
    }

    func testThousandConcurrentCallersShareOneFetch() async throws {
        let sf = SingleFlight<String, [UInt8]>()
        let fetches = Counter()
        let n = 1000
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<n {
                group.addTask {
                    try await sf.value(for: "seg-1") {
                        fetches.increment()
                        // Stay in flight until every caller has joined.
                        await Self.waitForWaiters(sf, "seg-1", n)
                        return [1, 2, 3]
                    }
                }
            }
            var out: [[UInt8]] = []
            for try await r in group { out.append(r) }
            return out
        }
        XCTAssertEqual(fetches.value, 1)
        XCTAssertEqual(results.count, n)
        XCTAssertTrue(results.allSatisfy { $0 == [1, 2, 3] })
        XCTAssertEqual(sf.inFlight, 0)
    }

    func testErrorReachesEveryWaiter() async {
        let sf = SingleFlight<String, Int>()
        let fetches = Counter()
        let n = 200
        let errors = await withTaskGroup(of: UpstreamError?.self) { group in
            for _ in 0..<n {
                group.addTask {
                    do {
                        _ = try await sf.value(for: "k") {
                            fetches.increment()
                            await Self.waitForWaiters(sf, "k", n)
                            throw UpstreamError(code: 502)
                        }
                        return nil
                    } catch {
                        return error as? UpstreamError
                    }
                }
            }
            var out: [UpstreamError?] = []
            for await e in group { out.append(e) }
            return out
        }
        XCTAssertEqual(fetches.value, 1)
        XCTAssertEqual(errors.count, n)
        XCTAssertTrue(errors.allSatisfy { $0 == UpstreamError(code: 502) })
    }

    func testNoCachingAfterCompletion() async throws {
        let sf = SingleFlight<Int, Int>()
        let fetches = Counter()
        let a = try await sf.value(for: 1) { fetches.increment() }
        let b = try await sf.value(for: 1) { fetches.increment() }
        XCTAssertEqual(a, 1)
        XCTAssertEqual(b, 2)
        XCTAssertEqual(fetches.value, 2)
        // A failure is not remembered either.
        do {
            _ = try await sf.value(for: 1) { throw UpstreamError(code: 1) }
            XCTFail("expected an error")
        } catch {}
        let c = try await sf.value(for: 1) { 42 }
        XCTAssertEqual(c, 42)
    }

    func testDistinctKeysFetchIndependently() async throws {
        let sf = SingleFlight<Int, Int>()
        let fetches = Counter()
        let sum = try await withThrowingTaskGroup(of: Int.self) { group in
            for k in 0..<10 {
                group.addTask { try await sf.value(for: k) { fetches.increment(); return k } }
            }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(sum, 45)
        XCTAssertEqual(fetches.value, 10)
    }

    /// Cancelling the caller that started the fetch (and another waiter) does not cancel the
    /// fetch: the others get the value, and the cancelled ones get CancellationError.
    func testCancellingOneWaiterDoesNotCancelTheFetch() async throws {
        let sf = SingleFlight<String, String>()
        let fetches = Counter()
        let fetchSawCancel = Flag()
        let release = Flag()
        let fetch: @Sendable () async throws -> String = {
            fetches.increment()
            while !release.isSet { try? await Task.sleep(for: .milliseconds(1)) }
            if Task.isCancelled { fetchSawCancel.set() }
            return "part"
        }
        let leader = Task { try await sf.value(for: "p", fetch: fetch) }
        await Self.waitForWaiters(sf, "p", 1)
        let others = (0..<20).map { _ in Task { try await sf.value(for: "p", fetch: fetch) } }
        let victim = Task { try await sf.value(for: "p", fetch: fetch) }
        await Self.waitForWaiters(sf, "p", 22)
        leader.cancel()
        victim.cancel()
        do {
            _ = try await leader.value
            XCTFail("the cancelled leader should get CancellationError")
        } catch is CancellationError {}
        do {
            _ = try await victim.value
            XCTFail("the cancelled waiter should get CancellationError")
        } catch is CancellationError {}
        XCTAssertEqual(sf.waiters(for: "p"), 20)
        release.set()
        for t in others { let v = try await t.value; XCTAssertEqual(v, "part") }
        XCTAssertEqual(fetches.value, 1)
        XCTAssertFalse(fetchSawCancel.isSet)
    }

    func testAlreadyCancelledCallerDoesNotStartAFetch() async {
        let sf = SingleFlight<Int, Int>()
        let fetches = Counter()
        let t = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await sf.value(for: 1) { fetches.increment(); return 1 }
        }
        do {
            _ = try await t.value
            XCTFail("expected CancellationError")
        } catch {
            XCTAssertTrue(error is CancellationError)
        }
        XCTAssertEqual(fetches.value, 0)
        XCTAssertEqual(sf.inFlight, 0)
    }
}
