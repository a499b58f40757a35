import Foundation
import Synchronization

/// The disk tier of `EdgeStore`: media objects in RocksDB, evicted least-recently-used by
/// bytes, with the order kept across restarts.
///
/// Layout (one column family, two key prefixes):
/// - `d:<key>` → the object bytes. Values of `minBlobSize` bytes and more live in BlobDB
///   blob files, so compaction moves only small blob references, never the media.
/// - `m:<key>` → 16 bytes: charged size (UInt64 LE) and last-access stamp (UInt64 LE).
///
/// The authoritative access order while running is an in-memory `LRUIndex`, rebuilt at open
/// by scanning the `m:` prefix (the scan also reads every metadata block, so a corrupt table
/// is found at open rather than mid-flight). A put writes data, metadata and the deletions
/// of its victims in one atomic batch, so the index and the database never disagree about
/// what is stored. Access stamps of reads are persisted lazily, in batches of
/// `stampFlushThreshold` and at `close()`: after a crash the order is slightly stale, which
/// a cache can afford, and reads do not turn into RocksDB writes one for one.
///
/// Thread safety: the index is behind a `Mutex`; RocksDB reads run outside it.
final class DiskTier: Sendable {
    static let dataPrefix: [UInt8] = Array("d:".utf8)
    static let metaPrefix: [UInt8] = Array("m:".utf8)
    static let stampFlushThreshold = 1024

    struct State: Sendable {
        var index = LRUIndex<String>()
        var dirty = Set<String>()
        var closed = false
    }

    let budget: Int
    let database: RocksDatabase
    /// Free filesystem bytes below which writes are refused (see `RocksDatabase.Options`).
    let freeSpaceReserve: Int
    private let state: Mutex<State>

    private init(budget: Int, database: RocksDatabase, index: LRUIndex<String>, freeSpaceReserve: Int) {
        self.budget = budget
        self.database = database
        self.freeSpaceReserve = freeSpaceReserve
        self.state = Mutex(State(index: index))
    }

    static func dataKey(_ key: String) -> [UInt8] { dataPrefix + Array(key.utf8) }
    static func metaKey(_ key: String) -> [UInt8] { metaPrefix + Array(key.utf8) }

    static func encodeMeta(size: Int, stamp: UInt64) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        withUnsafeBytes(of: UInt64(size).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: stamp.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    static func decodeMeta(_ b: UnsafeRawBufferPointer) -> (size: Int, stamp: UInt64)? {
        guard b.count == 16 else { return nil }
        let size = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        let stamp = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard size <= UInt64(Int.max) else { return nil }
        return (Int(size), stamp)
    }

    /// Bytes charged to the budget for one object.
    static func charge(_ key: String, _ value: [UInt8]) -> Int { key.utf8.count + value.count }

    /// Opens the database in `path` and rebuilds the index. Throws what RocksDB reported;
    /// the caller decides whether to rebuild.
    static func open(path: String, budget: Int, options: RocksDatabase.Options) throws(RocksError) -> DiskTier {
        // Opening writes a MANIFEST, an OPTIONS file and the LOG: refuse rather than let
        // RocksDB meet ENOSPC (see `freeSpaceReserve`).
        if let free = RocksDatabase.freeBytes(at: path), free < 256 << 10 {
            throw RocksError(kind: .noSpace, message: "only \(free) bytes free on the filesystem of \(path)")
        }
        let db = try RocksDatabase.open(path: path, options: options)
        var entries: [(key: String, size: Int, stamp: UInt64)] = []
        var malformed: [[UInt8]] = []
        do {
            try db.scan(prefix: metaPrefix) { k, v in
                if let meta = decodeMeta(v), let key = String(validating: k, as: UTF8.self) {
                    entries.append((key, meta.size, meta.stamp))
                } else {
                    malformed.append(metaPrefix + Array(k))
                }
            }
        } catch {
            db.close()
            throw error
        }
        entries.sort { $0.stamp < $1.stamp }
        var index = LRUIndex<String>()
        for e in entries { index.insert(e.key, size: e.size, stamp: e.stamp) }
        let tier = DiskTier(budget: budget, database: db, index: index,
                            freeSpaceReserve: options.effectiveFreeSpaceReserve)
        if !malformed.isEmpty {
            let batch = WriteBatch()
            for m in malformed {
                batch.delete(m)
                batch.delete(dataPrefix + m.dropFirst(metaPrefix.count))
            }
            try? db.write(batch)
        }
        // The budget may have shrunk since the last run.
        _ = try? tier.shrink(to: budget)
        return tier
    }

    var bytes: Int { state.withLock { $0.index.bytes } }
    var count: Int { state.withLock { $0.index.count } }

    func contains(_ key: String) -> Bool { state.withLock { $0.index.contains(key) } }

    /// Keys from least to most recently used (tests).
    var keysOldestFirst: [String] { state.withLock { $0.index.keysOldestFirst } }

    /// The object for `key`, or nil if the tier does not hold it. Marks it recently used.
    func get(_ key: String) throws(RocksError) -> [UInt8]? {
        let known = state.withLock { !$0.closed && $0.index.contains(key) }
        guard known else { return nil }
        guard let value = try database.get(Self.dataKey(key)) else {
            // Index says present, RocksDB says absent: trust RocksDB and forget the key.
            state.withLock { _ = $0.index.remove(key); $0.dirty.remove(key) }
            return nil
        }
        touch(key)
        return value
    }

    /// Marks `key` as recently used (a memory-tier hit counts as a use of the disk copy
    /// too, or a hot object would look cold here). In memory; persisted in batches.
    func touch(_ key: String) {
        state.withLock { s in
            guard !s.closed, s.index.touch(key) != nil else { return }
            s.dirty.insert(key)
            if s.dirty.count >= Self.stampFlushThreshold { persistStamps(&s) }
        }
    }

    private func persistStamps(_ s: inout State) {
        guard !s.dirty.isEmpty else { return }
        let batch = WriteBatch()
        for key in s.dirty {
            if let size = s.index.size(of: key), let stamp = s.index.stamp(of: key) {
                batch.put(Self.metaKey(key), Self.encodeMeta(size: size, stamp: stamp))
            }
        }
        // Failure only loses recency information; keep the set to retry next time.
        if (try? database.write(batch)) != nil { s.dirty.removeAll(keepingCapacity: true) }
    }

    /// Stores `value`, evicting least recently used objects to stay within the budget.
    /// A key already stored at the same size is only marked recently used (immutable media).
    /// Returns the number of evicted objects. An object larger than the whole budget is not
    /// stored (and any older copy is removed). On a write error nothing changes.
    @discardableResult
    func put(_ key: String, _ value: [UInt8]) throws(RocksError) -> Int {
        let size = Self.charge(key, value)
        if size > budget {
            try remove(key)
            return 0
        }
        return try state.withLock { (s) throws(RocksError) -> Int in
            guard !s.closed else { throw RocksError(kind: .closed, message: "disk tier closed") }
            // Objects are immutable: the same key at the same size is the same object (two
            // fetches that raced); refresh its recency instead of writing it again.
            if s.index.size(of: key) == size {
                s.index.touch(key)
                s.dirty.insert(key)
                return 0
            }
            if let free = RocksDatabase.freeBytes(at: database.path), free < freeSpaceReserve + size {
                throw RocksError(kind: .noSpace, message: "No space left: \(free) bytes free on the filesystem of "
                                 + "\(database.path), keeping \(freeSpaceReserve) in reserve for RocksDB")
            }
            let victims = s.index.victims(toFit: size, budget: budget, excluding: key)
            let stamp = s.index.clock
            let batch = WriteBatch()
            for v in victims {
                batch.delete(Self.dataKey(v))
                batch.delete(Self.metaKey(v))
            }
            batch.put(Self.dataKey(key), value)
            batch.put(Self.metaKey(key), Self.encodeMeta(size: size, stamp: stamp))
            try database.write(batch)
            for v in victims {
                s.index.remove(v)
                s.dirty.remove(v)
            }
            s.index.insert(key, size: size, stamp: stamp)
            s.dirty.remove(key)
            return victims.count
        }
    }

    /// Removes `key` if present.
    func remove(_ key: String) throws(RocksError) {
        try state.withLock { (s) throws(RocksError) in
            guard !s.closed, s.index.contains(key) else { return }
            let batch = WriteBatch()
            batch.delete(Self.dataKey(key))
            batch.delete(Self.metaKey(key))
            try database.write(batch)
            s.index.remove(key)
            s.dirty.remove(key)
        }
    }

    /// Evicts least recently used objects until at most `limit` bytes remain.
    @discardableResult
    func shrink(to limit: Int) throws(RocksError) -> Int {
        try state.withLock { (s) throws(RocksError) -> Int in
            guard !s.closed else { return 0 }
            let victims = s.index.victims(toFit: 0, budget: limit)
            guard !victims.isEmpty else { return 0 }
            let batch = WriteBatch()
            for v in victims {
                batch.delete(Self.dataKey(v))
                batch.delete(Self.metaKey(v))
            }
            try database.write(batch)
            for v in victims {
                s.index.remove(v)
                s.dirty.remove(v)
            }
            return victims.count
        }
    }

    /// Persists pending access stamps, flushes the memtable and closes RocksDB. Idempotent.
    func close() {
        let wasOpen = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            persistStamps(&s)
            s.closed = true
            return true
        }
        guard wasOpen else { return }
        try? database.flush()
        database.close()
    }

    /// Bytes RocksDB occupies on disk: SST files plus blob files (garbage included).
    var footprint: (sst: UInt64, blob: UInt64) {
        (database.propertyInt("rocksdb.total-sst-files-size") ?? 0,
         database.propertyInt("rocksdb.total-blob-file-size") ?? 0)
    }
}
