import Foundation
import XCTest
@testable import Edge

final class EdgeStoreTests: XCTestCase {
    var dirs: [URL] = []

    override func tearDown() {
        for d in dirs { try? FileManager.default.removeItem(at: d) }
        dirs = []
    }

    func tempDir(_ name: String = #function) -> URL {
        let d = makeTempDirectory(name)
        dirs.append(d)
        return d
    }

    func testPutGetMissAndStats() {
        let log = LogSink()
        let store = EdgeStore(directory: tempDir(), memoryBudget: 1 << 20, diskBudget: 8 << 20, logger: log.logger)
        defer { store.close() }
        let part = mediaBytes(50_000, seed: 1)
        store.put("live/1/part-1.m4s", part)
        XCTAssertSameBytes(store.get("live/1/part-1.m4s"), part)
        XCTAssertNil(store.get("live/1/part-2.m4s"))
        let s = store.stats
        XCTAssertEqual(s.memoryItems, 1)
        XCTAssertEqual(s.diskItems, 1)
        XCTAssertEqual(s.memoryBytes, part.count + "live/1/part-1.m4s".utf8.count)
        XCTAssertEqual(s.diskBytes, s.memoryBytes)
        XCTAssertEqual(s.memoryHits, 1)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(s.diskErrors, 0)
        XCTAssertTrue(s.diskAvailable)
        store.remove("live/1/part-1.m4s")
        XCTAssertNil(store.get("live/1/part-1.m4s"))
        XCTAssertEqual(store.stats.diskItems, 0)
        XCTAssertEqual(store.stats.memoryItems, 0)
        XCTAssertEqual(log.warnings, [])
    }

    func testDiskHitPromotesToMemory() {
        // Memory holds one 100 KB object; disk holds many.
        let store = EdgeStore(directory: tempDir(), memoryBudget: 150_000, diskBudget: 8 << 20, logger: { _ in })
        defer { store.close() }
        let a = mediaBytes(100_000, seed: 1), b = mediaBytes(100_000, seed: 2)
        store.put("a", a)
        store.put("b", b)          // evicts "a" from memory
        XCTAssertEqual(store.stats.memoryItems, 1)
        XCTAssertSameBytes(store.get("a"), a)   // disk hit, promoted (evicting "b" from memory)
        XCTAssertSameBytes(store.get("a"), a)   // memory hit
        let s = store.stats
        XCTAssertEqual(s.diskHits, 1)
        XCTAssertEqual(s.memoryHits, 1)
        XCTAssertEqual(s.memoryEvictions, 2)
        XCTAssertEqual(s.diskItems, 2)
    }

    func testEmptyAndSmallAndHugeValues() {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 100_000, diskBudget: 3 << 20, logger: { _ in })
        defer { store.close() }
        store.put("empty", [])
        XCTAssertSameBytes(store.get("empty"), [])
        let big = mediaBytes(1_500_000, seed: 3)   // too big for memory, fits disk
        store.put("segment", big)
        XCTAssertFalse(store.stats.memoryBytes > 100_000)
        XCTAssertSameBytes(store.get("segment"), big)
        let huge = mediaBytes(4 << 20, seed: 4)    // too big for both
        store.put("huge", huge)
        XCTAssertNil(store.get("huge"))
        XCTAssertLessThanOrEqual(store.stats.diskBytes, 3 << 20)
    }

    func testCachedMediaSurvivesRestart() {
        let dir = tempDir()
        var objects: [String: [UInt8]] = ["init.mp4": mediaBytes(1_000, seed: 10)]
        for i in 0..<20 { objects["part-\(i).m4s"] = mediaBytes(10_000 + i * 9_000, seed: UInt64(i)) }
        objects["seg-1.m4s"] = mediaBytes(1_800_000, seed: 99)
        do {
            let store = EdgeStore(directory: dir, memoryBudget: 1 << 20, diskBudget: 64 << 20, logger: { _ in })
            for (k, v) in objects { store.put(k, v) }
            store.close()
        }
        let log = LogSink()
        let store = EdgeStore(directory: dir, memoryBudget: 1 << 20, diskBudget: 64 << 20, logger: log.logger)
        defer { store.close() }
        XCTAssertEqual(store.stats.diskItems, objects.count)
        XCTAssertEqual(store.stats.memoryItems, 0)
        for (k, v) in objects { XCTAssertSameBytes(store.get(k), v, k) }
        XCTAssertEqual(store.stats.diskHits, objects.count)
        XCTAssertEqual(log.warnings, [])
    }

    func testSurvivesRestartWithoutClose() {
        // No close(): the WAL carries the writes (deinit also closes, so drop the reference).
        let dir = tempDir()
        let v = mediaBytes(300_000, seed: 5)
        do {
            let store = EdgeStore(directory: dir, memoryBudget: 1 << 20, diskBudget: 8 << 20, logger: { _ in })
            store.put("k", v)
        }
        let store = EdgeStore(directory: dir, memoryBudget: 1 << 20, diskBudget: 8 << 20, logger: { _ in })
        defer { store.close() }
        XCTAssertSameBytes(store.get("k"), v)
    }

    func testAccessOrderSurvivesRestart() {
        let dir = tempDir()
        let size = 100_000
        do {
            // Memory too small to help: every read is a disk read.
            let store = EdgeStore(directory: dir, memoryBudget: 1_000, diskBudget: 10 * size, logger: { _ in })
            for i in 0..<8 { store.put("k\(i)", mediaBytes(size - 2, seed: UInt64(i))) }
            _ = store.get("k0")
            _ = store.get("k1")
            store.close()
        }
        let store = EdgeStore(directory: dir, memoryBudget: 1_000, diskBudget: 10 * size, logger: { _ in })
        defer { store.close() }
        XCTAssertEqual(store.disk?.keysOldestFirst, ["k2", "k3", "k4", "k5", "k6", "k7", "k0", "k1"])
        for i in 8..<12 { store.put("k\(i)", mediaBytes(size - "k\(i)".utf8.count, seed: UInt64(i))) }
        XCTAssertNotNil(store.get("k0"))
        XCTAssertNotNil(store.get("k1"))
        XCTAssertNil(store.get("k2"))
        XCTAssertNil(store.get("k3"))
        XCTAssertEqual(store.stats.diskEvictions, 2)
    }

    func testMemoryHitsKeepTheDiskCopyWarm() {
        let size = 100_000
        let store = EdgeStore(directory: tempDir(), memoryBudget: 3 * size, diskBudget: 5 * size, logger: { _ in })
        defer { store.close() }
        store.put("hot", mediaBytes(size - 3, seed: 0))
        for i in 0..<10 {
            _ = store.get("hot")   // memory hit every time
            store.put("cold\(i)", mediaBytes(size - 5, seed: UInt64(i + 1)))
        }
        XCTAssertTrue(store.disk?.contains("hot") ?? false)
    }

    /// Thousands of random-size puts and reads: each tier stays within its budget after
    /// every call, and keys read often survive keys never read.
    func testEvictionKeepsBudgetsAndRecentlyReadKeys() {
        let memoryBudget = 400_000, diskBudget = 2_000_000
        let store = EdgeStore(directory: tempDir(), memoryBudget: memoryBudget, diskBudget: diskBudget,
                              logger: { _ in })
        defer { store.close() }
        var rng = SeededRandom(seed: 42)
        let hot = (0..<5).map { "hot-\($0)" }
        for (i, k) in hot.enumerated() { store.put(k, mediaBytes(20_000, seed: UInt64(1000 + i))) }
        let pool = mediaBytes(120_000, seed: 77)
        for i in 0..<3000 {
            let size = Int.random(in: 0..<5, using: &rng) == 0
                ? Int.random(in: 500...1_500, using: &rng)
                : Int.random(in: 2_000...60_000, using: &rng)
            let start = Int.random(in: 0...(pool.count - size), using: &rng)
            store.put("obj-\(i)", Array(pool[start..<start + size]))
            if i % 3 == 0 {
                for k in hot { XCTAssertNotNil(store.get(k), "\(k) at \(i)") }
            }
            if i % 7 == 0 { _ = store.get("obj-\(Int.random(in: 0...i, using: &rng))") }
            let s = store.stats
            XCTAssertLessThanOrEqual(s.memoryBytes, memoryBudget)
            XCTAssertLessThanOrEqual(s.diskBytes, diskBudget)
            if s.memoryBytes > memoryBudget || s.diskBytes > diskBudget { break }
        }
        let s = store.stats
        XCTAssertGreaterThan(s.diskEvictions, 2000)
        XCTAssertGreaterThan(s.diskBytes, diskBudget - 70_000)
        for k in hot { XCTAssertTrue(store.disk?.contains(k) ?? false, k) }
        // The oldest untouched objects are gone from both tiers.
        for i in 0..<100 { XCTAssertFalse(store.disk?.contains("obj-\(i)") ?? true) }
        XCTAssertEqual(s.diskErrors, 0)
    }

    func testConcurrentPutsAndGets() async {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 300_000, diskBudget: 1_500_000, logger: { _ in })
        defer { store.close() }
        let pool = mediaBytes(64_000, seed: 3)
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    var rng = SeededRandom(seed: UInt64(t))
                    for i in 0..<300 {
                        let key = "t\(t)-\(Int.random(in: 0..<100, using: &rng))"
                        if i % 2 == 0 {
                            let n = Int.random(in: 1_000...60_000, using: &rng)
                            var v = Array(pool[0..<n])
                            v[0] = UInt8(truncatingIfNeeded: n)
                            store.put(key, v)
                        } else if let v = store.get(key) {
                            XCTAssertEqual(v.count > 0 ? v[0] : 0, UInt8(truncatingIfNeeded: v.count))
                        }
                        let s = store.stats
                        XCTAssertLessThanOrEqual(s.memoryBytes, 300_000)
                        XCTAssertLessThanOrEqual(s.diskBytes, 1_500_000)
                    }
                }
            }
        }
        XCTAssertEqual(store.stats.diskErrors, 0)
    }

    func testUseAfterCloseServesMemoryOnly() {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 1 << 20, diskBudget: 8 << 20, logger: { _ in })
        store.put("a", [1, 2, 3])
        store.close()
        store.close()
        XCTAssertSameBytes(store.get("a"), [1, 2, 3])
        store.put("b", [4])
        XCTAssertSameBytes(store.get("b"), [4])
        XCTAssertNil(store.get("c"))
        XCTAssertEqual(store.stats.diskErrors, 0)
    }

    func testSmallerDiskBudgetAtReopenEvictsOldest() {
        let dir = tempDir()
        do {
            let store = EdgeStore(directory: dir, memoryBudget: 0, diskBudget: 1 << 20, logger: { _ in })
            for i in 0..<10 { store.put("k\(i)", mediaBytes(50_000 - 2, seed: UInt64(i))) }
            _ = store.get("k0")
            store.close()
        }
        let store = EdgeStore(directory: dir, memoryBudget: 0, diskBudget: 200_000, logger: { _ in })
        defer { store.close() }
        XCTAssertEqual(store.stats.diskItems, 4)
        XCTAssertLessThanOrEqual(store.stats.diskBytes, 200_000)
        XCTAssertEqual(store.disk?.keysOldestFirst, ["k7", "k8", "k9", "k0"])
    }

    /// The intended composition: many viewers miss at once, one upstream fetch fills the
    /// store, everyone gets the same bytes, later viewers hit the cache.
    func testViewersMissingTogetherCauseOneUpstreamFetch() async throws {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 8 << 20, diskBudget: 32 << 20, logger: { _ in })
        defer { store.close() }
        let flights = SingleFlight<String, [UInt8]>()
        let upstream = Counter()
        let segment = mediaBytes(1_200_000, seed: 8)
        @Sendable func serve(_ key: String) async throws -> [UInt8] {
            if let v = store.get(key) { return v }
            return try await flights.value(for: key) {
                if let v = store.get(key) { return v }   // filled while we queued
                upstream.increment()
                try await Task.sleep(for: .milliseconds(20))
                store.put(key, segment)
                return segment
            }
        }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<200 { group.addTask { try await serve("live/7/720p/seg-42.m4s").count } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(upstream.value, 1)
        XCTAssertTrue(results.allSatisfy { $0 == segment.count })
        XCTAssertSameBytes(try await serve("live/7/720p/seg-42.m4s"), segment)
        XCTAssertEqual(upstream.value, 1)
    }

    func testRePutOfSameObjectOnlyRefreshesRecency() {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 0, diskBudget: 1 << 20, logger: { _ in })
        defer { store.close() }
        let v = mediaBytes(100_000, seed: 1)
        store.put("a", v)
        store.put("b", v)
        store.put("a", v)
        XCTAssertEqual(store.disk?.keysOldestFirst, ["b", "a"])
        XCTAssertEqual(store.stats.diskItems, 2)
        store.put("a", Array(v.prefix(10)))   // a different size is a replacement
        XCTAssertSameBytes(store.get("a"), Array(v.prefix(10)))
    }

    /// Readers and writers racing a close: no crash, no error counted.
    func testCloseWhileBusy() async {
        let store = EdgeStore(directory: tempDir(), memoryBudget: 100_000, diskBudget: 2 << 20, logger: { _ in })
        for i in 0..<50 { store.put("k\(i)", mediaBytes(20_000, seed: UInt64(i))) }
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<400 {
                        if (i + t) % 3 == 0 { store.put("n\(t)-\(i)", [UInt8](repeating: 1, count: 5_000)) }
                        _ = store.get("k\((i * 7 + t) % 50)")
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(5))
                store.close()
            }
        }
        XCTAssertEqual(store.stats.diskErrors, 0)
    }
}
