import Foundation
import XCTest
@testable import Edge

/// Rough write amplification, space amplification and eviction cost of the disk tier,
/// BlobDB against values inline in the LSM tree, on a churn workload of incompressible
/// media (init segments, parts, segments) several times the disk budget.
///
/// The small version always runs and asserts, from the bytes the database itself reports
/// writing (RocksDB's statistics, which belong to that one database whatever else runs in
/// the process), what makes BlobDB write less: with blob files the values stay out of the
/// LSM tree (flush and compaction write almost nothing but blob files), inline they go
/// through it. At this small size the totals are still about equal (a value inline is
/// flushed once and seldom compacted), so the ordering of the totals is asserted by the
/// bigger run only: `EDGE_BENCH=1 swift test --filter StoreBench`, which also prints the
/// table for the report, with the whole process's written bytes (`/proc/self/io`).
final class StoreBench: XCTestCase {
    struct Result: CustomStringConvertible {
        var label = ""
        var userBytes = 0           // value bytes handed to put
        var written: UInt64 = 0     // bytes the process wrote (wchar), all files
        var tickers: [String: UInt64] = [:]
        var seconds = 0.0
        var maxPutMs = 0.0
        var logicalBytes = 0        // store's charged bytes at the end
        var sst: UInt64 = 0, blob: UInt64 = 0
        var peak: UInt64 = 0        // largest sst + blob seen during the run
        var reopenMs = 0.0
        var items = 0

        var writeAmp: Double { Double(written) / Double(userBytes) }
        /// Write amplification from the database's own counters (flush and compaction
        /// bytes include the blob files they write).
        var databaseWriteAmp: Double {
            let names = ["rocksdb.wal.bytes", "rocksdb.flush.write.bytes", "rocksdb.compact.write.bytes"]
            return Double(names.reduce(0) { $0 + (tickers[$1] ?? 0) }) / Double(userBytes)
        }
        /// Bytes flush and compaction wrote into the LSM tree's own files (not blob files), per user byte.
        var lsmWriteAmp: Double {
            let all = (tickers["rocksdb.flush.write.bytes"] ?? 0) + (tickers["rocksdb.compact.write.bytes"] ?? 0)
            let blob = tickers["rocksdb.blobdb.blob.file.bytes.written"] ?? 0
            return Double(all > blob ? all - blob : 0) / Double(userBytes)
        }
        var spaceAmp: Double { Double(sst + blob) / Double(max(1, logicalBytes)) }

        func t(_ name: String) -> String { String(format: "%.2f", Double(tickers[name] ?? 0) / Double(userBytes)) }

        var description: String {
            String(format: "%@: user %d MB in %.2f s (max put %.1f ms); write amp %.2f (wal %@ flush %@ compaction %@ blob %@); "
                   + "on disk sst %.1f MB + blob %.1f MB for %.1f MB cached (%d items): space amp %.2f (peak %.2f); reopen %.1f ms",
                   label, userBytes >> 20, seconds, maxPutMs, writeAmp, t("rocksdb.wal.bytes"), t("rocksdb.flush.write.bytes"),
                   t("rocksdb.compact.write.bytes"), t("rocksdb.blobdb.blob.file.bytes.written"),
                   Double(sst) / 1_048_576, Double(blob) / 1_048_576, Double(logicalBytes) / 1_048_576, items, spaceAmp, Double(peak) / Double(max(1, logicalBytes)), reopenMs)
        }
    }

    static func processWrittenBytes() -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return UInt64(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    static func tickers(_ stats: String?) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in (stats ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 4, parts[1] == "COUNT", let v = UInt64(parts[3]) { out[String(parts[0])] = v }
        }
        return out
    }

    func run(label: String, blobFiles: Bool, totalBytes: Int, diskBudget: Int, seed: UInt64,
             hotEvery: Int? = nil, tune: (inout RocksDatabase.Options) -> Void = { _ in }) -> Result {
        let dir = makeTempDirectory("bench-\(label)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = RocksDatabase.Options()
        options.blobFiles = blobFiles
        options.statistics = true
        options.writeBufferSize = 8 << 20
        tune(&options)
        let store = EdgeStore(directory: dir, memoryBudget: 4 << 20, diskBudget: diskBudget,
                              rocksOptions: options, logger: { print("bench:", $0) })
        var rng = SeededRandom(seed: seed)
        let pool = mediaBytes(4 << 20, seed: seed)
        var r = Result(label: label)
        let w0 = Self.processWrittenBytes()
        let t0 = ContinuousClock.now
        var i = 0
        while r.userBytes < totalBytes {
            let kind = Int.random(in: 0..<20, using: &rng)
            let size = kind == 0 ? 1_000
                : kind < 15 ? Int.random(in: 10_000...200_000, using: &rng)
                : Int.random(in: 200_000...2_000_000, using: &rng)
            let start = Int.random(in: 0...(pool.count - size), using: &rng)
            var v = Array(pool[start..<start + size])
            withUnsafeBytes(of: i) { for (j, b) in $0.enumerated() where j < v.count { v[j] = b } }
            let p0 = ContinuousClock.now
            store.put("live/s\(i % 7)/obj-\(i)", v)
            let d = ContinuousClock.now - p0
            r.maxPutMs = max(r.maxPutMs, Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000)
            if i > 10 { _ = store.get("live/s\((i - 3) % 7)/obj-\(i - 3)") }
            // A small hot set (a popular VOD) stays cached for the whole run.
            if i % 20 == 0 { for h in 0..<min(i, 10) { _ = store.get("live/s\(h % 7)/obj-\(h)") } }
            // Optionally, every hotEvery-th object stays hot for good: each pins its blob file.
            if let hotEvery, i % 20 == 0 {
                for h in stride(from: hotEvery, to: i, by: hotEvery) { _ = store.get("live/s\(h % 7)/obj-\(h)") }
            }
            r.userBytes += size
            if i % 25 == 0, let fp = store.disk?.footprint { r.peak = max(r.peak, fp.sst + fp.blob) }
            i += 1
        }
        try? store.disk?.database.flush()
        let el = ContinuousClock.now - t0
        r.seconds = Double(el.components.seconds) + Double(el.components.attoseconds) / 1e18
        r.written = Self.processWrittenBytes() - w0
        r.tickers = Self.tickers(store.disk?.database.statisticsString())
        let fp = store.disk?.footprint ?? (sst: 0, blob: 0)
        r.sst = fp.sst
        r.blob = fp.blob
        r.logicalBytes = store.stats.diskBytes
        r.items = store.stats.diskItems
        XCTAssertEqual(store.stats.diskErrors, 0)
        store.close()
        let o0 = ContinuousClock.now
        let reopened = EdgeStore(directory: dir, memoryBudget: 4 << 20, diskBudget: diskBudget,
                                 rocksOptions: options, logger: { _ in })
        let od = ContinuousClock.now - o0
        r.reopenMs = Double(od.components.seconds) * 1000 + Double(od.components.attoseconds) / 1e15
        XCTAssertEqual(reopened.stats.diskItems, r.items)
        reopened.close()
        return r
    }

    func testBlobDBWritesLessThanInlineValues() {
        let big = ProcessInfo.processInfo.environment["EDGE_BENCH"] == "1"
        let total = big ? 1 << 30 : 48 << 20
        let budget = big ? 128 << 20 : 8 << 20
        let blob = run(label: "BlobDB", blobFiles: true, totalBytes: total, diskBudget: budget, seed: 1)
        let inline = run(label: "inline", blobFiles: false, totalBytes: total, diskBudget: budget, seed: 1)
        print(blob)
        print(inline)
        if big {
            let variants: [(String, Bool, (inout RocksDatabase.Options) -> Void)] = [
                ("BlobDB + WAL", true, { $0.disableWAL = false }),
                ("BlobDB GC off", true, { $0.blobGCAgeCutoff = 0 }),
                ("BlobDB GC 0.25 force 0.5", true, { $0.blobGCAgeCutoff = 0.25; $0.blobGCForceThreshold = 0.5 }),
                ("inline + WAL", false, { $0.disableWAL = false }),
            ]
            for (label, blobFiles, tune) in variants {
                print(run(label: label, blobFiles: blobFiles, totalBytes: total, diskBudget: budget, seed: 1, tune: tune))
            }
            // Long-lived hot objects spread over time pin old blob files unless GC moves them.
            print(run(label: "hot-spread BlobDB default", blobFiles: true, totalBytes: total, diskBudget: budget, seed: 1, hotEvery: 50))
            print(run(label: "hot-spread BlobDB GC off", blobFiles: true, totalBytes: total, diskBudget: budget, seed: 1, hotEvery: 50) {
                $0.blobGCAgeCutoff = 0
            })
        }
        // The process-wide figure (`writeAmp`) is for the benchmark run (EDGE_BENCH=1, the
        // machine otherwise idle): a unit test shares the process with others.
        print(String(format: "database write amp: BlobDB %.2f (LSM %.2f), inline %.2f (LSM %.2f)",
                     blob.databaseWriteAmp, blob.lsmWriteAmp, inline.databaseWriteAmp, inline.lsmWriteAmp))
        if big {
            XCTAssertLessThan(blob.writeAmp, inline.writeAmp)
            XCTAssertLessThan(blob.databaseWriteAmp, inline.databaseWriteAmp)
        }
        // Always: the values go to blob files and stay out of the LSM tree, where inline
        // values are written at least once (the counters are read: inline shows them).
        XCTAssertGreaterThan(inline.lsmWriteAmp, 0.5, "\(inline.tickers)")
        XCTAssertLessThan(blob.lsmWriteAmp, 0.1 * inline.lsmWriteAmp, "\(blob.tickers)")
        XCTAssertGreaterThan(blob.tickers["rocksdb.blobdb.blob.file.bytes.written", default: 0], UInt64(blob.userBytes / 2))
        XCTAssertGreaterThan(blob.blob, 0)
        XCTAssertEqual(inline.blob, 0)
    }

    /// How long the index rebuild at open takes per cached object.
    func testIndexRebuildTime() {
        let n = ProcessInfo.processInfo.environment["EDGE_BENCH"] == "1" ? 100_000 : 10_000
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let store = EdgeStore(directory: dir, memoryBudget: 0, diskBudget: 1 << 40, logger: { _ in })
            for i in 0..<n { store.put("live/stream-\(i % 50)/720p/part-\(i).m4s", [UInt8(truncatingIfNeeded: i)]) }
            store.close()
        }
        let t0 = ContinuousClock.now
        let store = EdgeStore(directory: dir, memoryBudget: 0, diskBudget: 1 << 40, logger: { _ in })
        let d = ContinuousClock.now - t0
        XCTAssertEqual(store.stats.diskItems, n)
        store.close()
        print("index rebuild: \(n) objects in \(d)")
    }
}
