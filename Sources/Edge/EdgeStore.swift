// Edge: the edge node's two-tier cache for immutable media objects. Owns its directory's
// `db` folder; knows nothing of HTTP or playlists. See README.md.
import Foundation
import NIOCore
import Synchronization

/// A two-tier cache for immutable media objects keyed by `String`: a memory tier over a
/// RocksDB disk tier, each with its own byte budget and least-recently-used eviction.
///
/// Contract:
/// - `put` stores in both tiers (an object larger than a tier's budget skips that tier).
/// - `get` looks in memory, then on disk; a disk hit is copied into memory. A memory hit
///   also counts as a use of the disk copy, so hot objects stay on disk too.
/// - Each tier's charged bytes (key + value) stay within its budget after every call.
/// - What is on disk survives `close()` and a reopen of the same directory.
/// - Disk trouble never fails a call: a corrupt or unopenable database is rebuilt empty
///   with a warning; if even that fails, or writes fail (full disk), the store runs on the
///   memory tier, counts `diskErrors` and warns once per kind of failure.
///
/// Thread-safe: the memory tier is behind a `Mutex`, the disk tier has its own lock and
/// reads RocksDB outside it.
public final class EdgeStore: Sendable {
    /// Counters and gauges; bytes are charged bytes (key + value).
    public struct Stats: Sendable, Equatable, CustomStringConvertible {
        public var memoryBytes = 0
        public var memoryItems = 0
        public var diskBytes = 0
        public var diskItems = 0
        public var memoryHits = 0
        public var diskHits = 0
        public var misses = 0
        public var memoryEvictions = 0
        public var diskEvictions = 0
        public var diskErrors = 0
        /// False when the disk tier could not be opened at all (memory only).
        public var diskAvailable = false

        public var evictions: Int { memoryEvictions + diskEvictions }

        public var description: String {
            "memory \(memoryItems) items/\(memoryBytes) B, disk \(diskItems) items/\(diskBytes) B, "
                + "hits \(memoryHits) memory/\(diskHits) disk, misses \(misses), "
                + "evictions \(memoryEvictions) memory/\(diskEvictions) disk, disk errors \(diskErrors)"
        }
    }

    private struct Counters {
        var memoryHits = 0, diskHits = 0, misses = 0
        var memoryEvictions = 0, diskEvictions = 0, diskErrors = 0
        var warnedWrite = false, warnedRead = false
    }

    public let directory: URL
    public let memoryBudget: Int
    public let diskBudget: Int
    private let logger: @Sendable (String) -> Void
    private let memory: Mutex<MemoryTier>
    private let counters = Mutex(Counters())
    let disk: DiskTier?

    /// Opens (or creates) the store in `directory`; the database lives in `directory/db`.
    public convenience init(directory: URL, memoryBudget: Int, diskBudget: Int,
                            logger: @escaping @Sendable (String) -> Void) {
        self.init(directory: directory, memoryBudget: memoryBudget, diskBudget: diskBudget,
                  rocksOptions: RocksDatabase.Options(), logger: logger)
    }

    /// `rocksOptions` is for tests and the bench (BlobDB on or off, memtable size, WAL).
    init(directory: URL, memoryBudget: Int, diskBudget: Int, rocksOptions: RocksDatabase.Options,
         logger: @escaping @Sendable (String) -> Void) {
        self.directory = directory
        self.memoryBudget = max(0, memoryBudget)
        self.diskBudget = max(0, diskBudget)
        self.logger = logger
        self.memory = Mutex(MemoryTier(budget: memoryBudget))
        var options = rocksOptions
        if options.blobFileSize == nil {
            options.blobFileSize = UInt64(min(max(diskBudget / 16, 1 << 20), 256 << 20))
        }
        self.disk = Self.openDisk(directory: directory, budget: max(0, diskBudget), options: options, logger: logger)
    }

    deinit { disk?.close() }

    /// Whether the RocksDB tier opened (else the store runs on memory alone).
    public var hasDiskTier: Bool { disk != nil }

    /// Opens the disk tier, rebuilding the database once if it is corrupt or unreadable.
    private static func openDisk(directory: URL, budget: Int, options: RocksDatabase.Options,
                                 logger: @Sendable (String) -> Void) -> DiskTier? {
        let dbURL = directory.appendingPathComponent("db", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: dbURL, withIntermediateDirectories: true)
        } catch {
            logger("warning: edge cache: cannot create \(dbURL.path) (\(error)); running on the memory tier only")
            return nil
        }
        do {
            return try DiskTier.open(path: dbURL.path, budget: budget, options: options)
        } catch let first {
            // Another live store holds the lock: rebuilding would delete its files.
            // A full disk is no reason to delete the cache either.
            if first.kind == .noSpace {
                logger("warning: edge cache: disk full at \(dbURL.path) (\(first)); running on the memory tier only")
                return nil
            }
            if first.message.localizedCaseInsensitiveContains("lock") {
                logger("warning: edge cache: database \(dbURL.path) is in use (\(first)); running on the memory tier only")
                return nil
            }
            logger("warning: edge cache: database \(dbURL.path) is unusable (\(first)); rebuilding it empty")
            do {
                try RocksDatabase.destroy(path: dbURL.path)
            } catch {
                // DestroyDB reads the same broken files; fall through to removing the folder.
            }
            try? FileManager.default.removeItem(at: dbURL)
            do {
                try FileManager.default.createDirectory(at: dbURL, withIntermediateDirectories: true)
                return try DiskTier.open(path: dbURL.path, budget: budget, options: options)
            } catch {
                logger("warning: edge cache: rebuilding \(dbURL.path) failed (\(error)); running on the memory tier only")
                return nil
            }
        }
    }

    /// The object for `key`: memory first, then disk (promoting to memory); nil on a miss.
    /// A memory hit is the stored buffer itself (no copy).
    public func buffer(_ key: String) -> ByteBuffer? {
        if let v = memoryBuffer(key) { return v }
        if let disk {
            do {
                if let bytes = try disk.get(key) {
                    let v = ByteBuffer(bytes: bytes)
                    let evicted = memory.withLock { $0.insert(key, v) }
                    counters.withLock { $0.diskHits += 1; $0.memoryEvictions += evicted }
                    return v
                }
            } catch {
                diskReadFailed(key, error, disk: disk)
            }
        }
        counters.withLock { $0.misses += 1 }
        return nil
    }

    /// The object for `key` if the memory tier holds it; never touches the disk's data (a
    /// hit only marks the disk copy as used), so it is safe on an event loop. A miss here
    /// is not counted: the caller goes on to `buffer(_:)`.
    public func memoryBuffer(_ key: String) -> ByteBuffer? {
        guard let v = memory.withLock({ $0.get(key) }) else { return nil }
        counters.withLock { $0.memoryHits += 1 }
        disk?.touch(key)
        return v
    }

    /// `buffer(_:)` as bytes.
    public func get(_ key: String) -> [UInt8]? {
        buffer(key).map { Array($0.readableBytesView) }
    }

    /// Stores `value` under `key` in both tiers. Never fails: a disk error leaves the object
    /// in memory only.
    public func put(_ key: String, _ value: ByteBuffer) {
        let evicted = memory.withLock { $0.insert(key, value) }
        if evicted > 0 { counters.withLock { $0.memoryEvictions += evicted } }
        guard let disk else { return }
        do {
            let diskEvicted = try disk.put(key, Array(value.readableBytesView))
            if diskEvicted > 0 { counters.withLock { $0.diskEvictions += diskEvicted } }
        } catch {
            diskWriteFailed(error)
        }
    }

    /// `put(_:_:)` from bytes.
    public func put(_ key: String, _ value: [UInt8]) {
        put(key, ByteBuffer(bytes: value))
    }

    /// Removes `key` from both tiers.
    public func remove(_ key: String) {
        memory.withLock { $0.remove(key) }
        do {
            try disk?.remove(key)
        } catch {
            diskWriteFailed(error)
        }
    }

    /// A snapshot of the counters and tier sizes.
    public var stats: Stats {
        let c = counters.withLock { $0 }
        let (mb, mi) = memory.withLock { ($0.bytes, $0.count) }
        var s = Stats()
        s.memoryBytes = mb
        s.memoryItems = mi
        if let disk {
            s.diskBytes = disk.bytes
            s.diskItems = disk.count
            s.diskAvailable = true
        }
        s.memoryHits = c.memoryHits
        s.diskHits = c.diskHits
        s.misses = c.misses
        s.memoryEvictions = c.memoryEvictions
        s.diskEvictions = c.diskEvictions
        s.diskErrors = c.diskErrors
        return s
    }

    /// Persists the disk tier's access order and closes RocksDB. Afterwards the store keeps
    /// serving (and accepting) objects from memory only. Idempotent.
    public func close() {
        disk?.close()
    }

    private func diskWriteFailed(_ error: RocksError) {
        if error.kind == .closed { return }
        let warn = counters.withLock { c -> Bool in
            c.diskErrors += 1
            defer { c.warnedWrite = true }
            return !c.warnedWrite
        }
        if warn {
            let why = error.kind == .noSpace ? "disk full" : "write error"
            logger("warning: edge cache: \(why) writing to \(directory.path) (\(error)); objects are kept in memory only until the disk recovers")
        }
    }

    private func diskReadFailed(_ key: String, _ error: RocksError, disk: DiskTier) {
        if error.kind == .closed { return }
        let warn = counters.withLock { c -> Bool in
            c.diskErrors += 1
            defer { c.warnedRead = true }
            return !c.warnedRead
        }
        if warn {
            logger("warning: edge cache: read error for \(key) in \(directory.path) (\(error)); treating as a miss")
        }
        // A corrupt object will not heal: drop it so the next request refetches it.
        if error.kind == .corruption { try? disk.remove(key) }
    }
}
