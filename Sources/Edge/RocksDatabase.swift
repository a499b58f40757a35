import CRocksDB
import Foundation

/// A RocksDB failure, classified from the status string the C API returns, so that callers
/// can tell a full disk from a corrupt database.
struct RocksError: Error, CustomStringConvertible, Sendable {
    enum Kind: Sendable { case corruption, noSpace, io, closed, other }
    var kind: Kind
    var message: String

    init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    init(status: String) {
        let kind: Kind
        if status.contains("No space left") || status.contains("NoSpace") {
            kind = .noSpace
        } else if status.hasPrefix("Corruption") || status.contains("orrupt") {
            kind = .corruption
        } else if status.hasPrefix("IO error") {
            kind = .io
        } else {
            kind = .other
        }
        self.init(kind: kind, message: status)
    }

    var description: String { message }
}

/// Thin, thread-safe Swift face of one RocksDB database opened through the C API.
///
/// Owns the `rocksdb_t` handle and its option objects. RocksDB itself is safe for
/// concurrent reads and writes; the read-write lock here only guards the handle's lifetime,
/// so that `close()` cannot free it under a reader (readers share the lock, `close` takes it
/// exclusively). Knows nothing of caching.
final class RocksDatabase: @unchecked Sendable {
    /// The tuning the edge store exposes; everything else is RocksDB's default. The
    /// defaults come from `StoreBench` (1 GB of media churned through a 128 MB budget):
    /// see the README for the figures.
    struct Options: Sendable {
        /// Keep values of at least `minBlobSize` bytes in blob files (BlobDB) instead of the
        /// LSM tree, so compaction never rewrites media payloads (inline: write amp 3.5).
        var blobFiles = true
        var minBlobSize: UInt64 = 4096
        /// nil: the disk budget / 16, within 1...256 MB (a blob file is the unit in which
        /// space comes back, so it bounds the garbage held).
        var blobFileSize: UInt64? = nil
        /// Blob GC: relocate live blobs out of the oldest `blobGCAgeCutoff` fraction of blob
        /// files during compaction; force compaction of those files once their garbage
        /// ratio passes `blobGCForceThreshold`. An age cutoff of 0 turns blob GC off.
        /// LRU eviction is nearly FIFO, so old files die whole and GC mostly rewrites blobs
        /// that would die soon anyway (0.25 cost 0.65× the user bytes in rewrites); a small
        /// cutoff only rescues long-lived hot objects pinning old files (0.04×).
        var blobGCAgeCutoff = 0.1
        var blobGCForceThreshold = 0.9
        var writeBufferSize = 16 << 20
        /// The WAL writes every object a second time. A cache can lose the last memtable
        /// (at most `writeBufferSize`) in a crash; `close()` and deinit flush it.
        var disableWAL = true
        var statistics = false
        /// Disk writes stop (the store degrades to memory) while the filesystem has less
        /// free space than this; nil: 2 × `writeBufferSize` + 256 KB, room for a flush.
        /// Why: Debian's librocksdb 7.8 is built with assertions on, and a write to a file
        /// writer after an ENOSPC (e.g. its info LOG) aborts the process
        /// (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`), seen here on a
        /// 2 MB tmpfs. Keeping RocksDB away from ENOSPC is the only defence from the C API.
        var freeSpaceReserve: Int? = nil

        var effectiveFreeSpaceReserve: Int { freeSpaceReserve ?? (2 * writeBufferSize + (256 << 10)) }
    }

    /// Free bytes for unprivileged writers on the filesystem holding `path`, nil if unknown.
    static func freeBytes(at path: String) -> Int? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        let free = UInt64(st.f_bavail) * UInt64(st.f_frsize)
        return Int(clamping: free)
    }

    let path: String
    private var handle: OpaquePointer?
    private let options: OpaquePointer
    private let readOptions: OpaquePointer
    private let writeOptions: OpaquePointer
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    private init(path: String, handle: OpaquePointer, options: OpaquePointer) {
        self.path = path
        self.handle = handle
        self.options = options
        readOptions = rocksdb_readoptions_create()
        // Media payloads are large and read once per promotion: keep them out of the block
        // cache (metadata blocks still use it via the iterator at open).
        rocksdb_readoptions_set_fill_cache(readOptions, 0)
        writeOptions = rocksdb_writeoptions_create()
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    private static func makeOptions(_ o: Options) -> OpaquePointer {
        let opt = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(opt, 1)
        rocksdb_options_set_paranoid_checks(opt, 1)
        rocksdb_options_set_compression(opt, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_write_buffer_size(opt, o.writeBufferSize)
        // Keep RocksDB's own LOG small: warnings and errors only, two files of 1 MB.
        rocksdb_options_set_info_log_level(opt, 2)
        rocksdb_options_set_max_log_file_size(opt, 1 << 20)
        rocksdb_options_set_keep_log_file_num(opt, 2)
        rocksdb_options_set_max_background_jobs(opt, 2)
        // The default 4 MB MANIFEST preallocation alone can fill a small or nearly full disk.
        rocksdb_options_set_manifest_preallocation_size(opt, 64 << 10)
        if o.blobFiles {
            rocksdb_options_set_enable_blob_files(opt, 1)
            rocksdb_options_set_min_blob_size(opt, o.minBlobSize)
            rocksdb_options_set_blob_file_size(opt, o.blobFileSize ?? 64 << 20)
            // Media is already compressed (H.264/AAC in fMP4): compressing blobs gains little.
            rocksdb_options_set_blob_compression_type(opt, Int32(rocksdb_no_compression))
            rocksdb_options_set_enable_blob_gc(opt, o.blobGCAgeCutoff > 0 ? 1 : 0)
            rocksdb_options_set_blob_gc_age_cutoff(opt, o.blobGCAgeCutoff)
            rocksdb_options_set_blob_gc_force_threshold(opt, o.blobGCForceThreshold)
        }
        if o.statistics { rocksdb_options_enable_statistics(opt) }
        return opt
    }

    /// Opens (creating if missing) the database in `path`.
    static func open(path: String, options o: Options = Options()) throws(RocksError) -> RocksDatabase {
        let opt = makeOptions(o)
        var err: UnsafeMutablePointer<CChar>?
        let db = rocksdb_open(opt, path, &err)
        if let err {
            let e = RocksError(status: String(cString: err))
            rocksdb_free(err)
            if let db { rocksdb_close(db) }
            rocksdb_options_destroy(opt)
            throw e
        }
        guard let db else {
            rocksdb_options_destroy(opt)
            throw RocksError(kind: .other, message: "rocksdb_open returned no handle")
        }
        let r = RocksDatabase(path: path, handle: db, options: opt)
        if o.disableWAL { rocksdb_writeoptions_disable_WAL(r.writeOptions, 1) }
        return r
    }

    /// Deletes the database files in `path` (RocksDB's own DestroyDB).
    static func destroy(path: String) throws(RocksError) {
        let opt = rocksdb_options_create()
        defer { rocksdb_options_destroy(opt) }
        var err: UnsafeMutablePointer<CChar>?
        rocksdb_destroy_db(opt, path, &err)
        if let err {
            let e = RocksError(status: String(cString: err))
            rocksdb_free(err)
            throw e
        }
    }

    deinit {
        close()
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_options_destroy(options)
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Closes the handle; later calls throw `.closed`. Idempotent.
    func close() {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        if let h = handle {
            rocksdb_close(h)
            handle = nil
        }
    }

    private func withHandle<T>(_ body: (OpaquePointer) throws(RocksError) -> T) throws(RocksError) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard let h = handle else { throw RocksError(kind: .closed, message: "database closed") }
        return try body(h)
    }

    private static func check(_ err: UnsafeMutablePointer<CChar>?) throws(RocksError) {
        if let err {
            let e = RocksError(status: String(cString: err))
            rocksdb_free(err)
            throw e
        }
    }

    /// The value for `key`, or nil when absent.
    func get(_ key: [UInt8]) throws(RocksError) -> [UInt8]? {
        try withHandle { (h) throws(RocksError) -> [UInt8]? in
            var err: UnsafeMutablePointer<CChar>?
            let slice = key.withUnsafeBufferPointer { k in
                k.withMemoryRebound(to: CChar.self) { rocksdb_get_pinned(h, readOptions, $0.baseAddress, $0.count, &err) }
            }
            try Self.check(err)
            guard let slice else { return nil }
            defer { rocksdb_pinnableslice_destroy(slice) }
            var len = 0
            guard let p = rocksdb_pinnableslice_value(slice, &len) else { return [] }
            return [UInt8](UnsafeRawBufferPointer(start: p, count: len))
        }
    }

    /// Applies `batch` atomically.
    func write(_ batch: WriteBatch) throws(RocksError) {
        try withHandle { (h) throws(RocksError) in
            var err: UnsafeMutablePointer<CChar>?
            rocksdb_write(h, writeOptions, batch.raw, &err)
            try Self.check(err)
        }
    }

    /// Calls `body` for each key starting with `prefix`, in key order, with the key minus the
    /// prefix and the value. Throws if the iterator reports an error (e.g. a corrupt block).
    func scan(prefix: [UInt8], _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(RocksError) {
        try withHandle { (h) throws(RocksError) in
            let ro = rocksdb_readoptions_create()
            defer { rocksdb_readoptions_destroy(ro) }
            let it = rocksdb_create_iterator(h, ro)
            defer { rocksdb_iter_destroy(it) }
            prefix.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(it, $0.baseAddress, $0.count) }
            }
            while rocksdb_iter_valid(it) != 0 {
                var klen = 0, vlen = 0
                let k = rocksdb_iter_key(it, &klen)!
                let key = UnsafeRawBufferPointer(start: k, count: klen)
                if klen < prefix.count || !prefix.elementsEqual(key.prefix(prefix.count)) { break }
                let v = rocksdb_iter_value(it, &vlen)
                body(UnsafeRawBufferPointer(rebasing: key[prefix.count...]), UnsafeRawBufferPointer(start: v, count: vlen))
                rocksdb_iter_next(it)
            }
            var err: UnsafeMutablePointer<CChar>?
            rocksdb_iter_get_error(it, &err)
            try Self.check(err)
        }
    }

    /// Flushes the memtable to table (and blob) files and waits for it.
    func flush() throws(RocksError) {
        try withHandle { (h) throws(RocksError) in
            let fo = rocksdb_flushoptions_create()
            defer { rocksdb_flushoptions_destroy(fo) }
            rocksdb_flushoptions_set_wait(fo, 1)
            var err: UnsafeMutablePointer<CChar>?
            rocksdb_flush(h, fo, &err)
            try Self.check(err)
        }
    }

    /// Full manual compaction (bench and tests only).
    func compactAll() {
        try? withHandle { (h) throws(RocksError) in
            rocksdb_compact_range(h, nil, 0, nil, 0)
        }
    }

    /// A RocksDB property as a string (e.g. `rocksdb.stats`), nil if unknown.
    func property(_ name: String) -> String? {
        try? withHandle { (h) throws(RocksError) -> String? in
            guard let p = rocksdb_property_value(h, name) else { return nil }
            defer { rocksdb_free(p) }
            return String(cString: p)
        }
    }

    /// A numeric RocksDB property (e.g. `rocksdb.total-blob-file-size`), nil if unknown.
    func propertyInt(_ name: String) -> UInt64? {
        try? withHandle { (h) throws(RocksError) -> UInt64? in
            var v: UInt64 = 0
            return rocksdb_property_int(h, name, &v) == 0 ? v : nil
        }
    }

    /// The statistics dump (only when opened with `statistics: true`).
    func statisticsString() -> String? {
        guard let p = rocksdb_options_statistics_get_string(options) else { return nil }
        defer { rocksdb_free(p) }
        return String(cString: p)
    }
}

/// An atomic group of puts and deletes (`rocksdb_writebatch_t`).
final class WriteBatch {
    let raw: OpaquePointer
    init() { raw = rocksdb_writebatch_create() }
    deinit { rocksdb_writebatch_destroy(raw) }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { kc in
                    v.withMemoryRebound(to: CChar.self) { vc in
                        rocksdb_writebatch_put(raw, kc.baseAddress, kc.count, vc.baseAddress, vc.count)
                    }
                }
            }
        }
    }

    func delete(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_writebatch_delete(raw, $0.baseAddress, $0.count) }
        }
    }
}
