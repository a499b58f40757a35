// StreamCatalog: the node's stream records, kept in memory so ingest and playback never wait
// on the database; a record not known here is looked for again in the database (nodes that
// share one) and then asked of the other nodes (nodes with their own). A record changed by
// another node sharing the database is reloaded when the database says so (`followChanges`).
import Crypto
import Foundation
import Logging
import Synchronization

package final class StreamCatalog: Sendable {
    package let store: StreamStore
    private let logger: Logger

    private struct Records {
        var byID: [String: StreamRecord] = [:]
        var idByKeyDigest: [String: String] = [:]
        /// Counts changes to memory; `stamps` says when each record last changed (or went), so
        /// that rows read from the database before a change cannot undo it.
        var generation: UInt64 = 0
        var stamps: [String: UInt64] = [:]

        mutating func add(_ r: StreamRecord) {
            // A key that was replaced (the stream's, or a co-host's; or a co-host removed) opens nothing any more.
            if let old = byID[r.id] {
                let now = Set([r.keyDigest] + r.cohosts.map(\.keyDigest))
                for digest in [old.keyDigest] + old.cohosts.map(\.keyDigest) where !now.contains(digest) && idByKeyDigest[digest] == r.id {
                    idByKeyDigest[digest] = nil
                }
            }
            byID[r.id] = r
            idByKeyDigest[r.keyDigest] = r.id
            for c in r.cohosts { idByKeyDigest[c.keyDigest] = r.id }
            stamp(r.id)
        }

        mutating func remove(_ id: String) {
            stamp(id)
            guard let r = byID.removeValue(forKey: id) else { return }
            for digest in [r.keyDigest] + r.cohosts.map(\.keyDigest) where idByKeyDigest[digest] == id { idByKeyDigest[digest] = nil }
        }

        private mutating func stamp(_ id: String) {
            generation += 1
            stamps[id] = generation
        }

        /// Whether memory changed the record since `generation` (what was read before is older).
        func changed(_ id: String, since generation: UInt64) -> Bool { (stamps[id] ?? 0) > generation }
    }
    private let records = Mutex(Records())

    /// Seconds, injected so tests control time.
    private let now: @Sendable () -> Double

    package init(store: StreamStore, logger: Logger = Logger(label: "streamtube"),
                 now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.store = store
        self.logger = logger
        self.now = now
    }

    /// Reads every record from the database: new ones are added, changed ones replace what
    /// memory held.
    /// A record changed here while the rows were being read keeps its change (the rows are older).
    package func load() async throws {
        let before = records.withLock { $0.generation }
        let all = try await store.all()
        let ids = Set(all.map(\.id))
        records.withLock { s in
            for r in all where !s.changed(r.id, since: before) { s.add(Self.keepingLearnedKey(r, from: s.byID[r.id])) }
            // Deleted by another node (every record this node keeps is in its database).
            for id in s.byID.keys where !ids.contains(id) && !s.changed(id, since: before) { s.remove(id) }
        }
    }

    /// Reads one record again (another node changed or deleted it).
    package func reload(id: String) async throws {
        let before = records.withLock { $0.generation }
        let r = try await store.record(id: id)
        records.withLock { s in
            guard !s.changed(id, since: before) else { return }
            if let r { s.add(Self.keepingLearnedKey(r, from: s.byID[r.id])) } else { s.remove(id) }
        }
    }

    /// A key learned since the row was read stays (unless the key was replaced since); so do co-hosts' keys.
    private static func keepingLearnedKey(_ r: StreamRecord, from known: StreamRecord?) -> StreamRecord {
        var r = r
        if r.key == nil, known?.keyDigest == r.keyDigest { r.key = known?.key }
        for i in r.cohosts.indices where r.cohosts[i].key == nil {
            if let k = known?.cohost(account: r.cohosts[i].account), k.keyDigest == r.cohosts[i].keyDigest { r.cohosts[i].key = k.key }
        }
        return r
    }

    /// Makes and keeps a stream. `validate` checks what the catalog cannot judge (a ladder).
    /// `owner`: the account making it; nil for the operator.
    package func create(title raw: String, ladder: String? = nil, x264Preset: String? = nil, keepSource: Bool = false,
                        owner: String? = nil, details: StreamDetails = StreamDetails(),
                        validate: (StreamRecord) throws -> Void = { _ in }) async throws -> StreamRecord {
        let title = try Self.checkedTitle(raw)
        let id = StreamIdentifiers.randomID()
        var record = StreamRecord(id: id, key: StreamIdentifiers.randomKey(for: id), title: title,
                                  createdAt: Date(), ladder: ladder, x264Preset: x264Preset, keepSource: keepSource, owner: owner)
        record = try details.applied(to: record)
        do { try validate(record) } catch { throw StreamError.badLadder("\(error)") }
        try await store.insert(record)
        records.withLock { $0.add(record) }
        tell(.made(record))
        return record
    }

    /// Gives a stream a new title, in the database (every node sharing it sees it) and here;
    /// nil when there is no such stream.
    package func rename(id: String, title raw: String) async throws -> StreamRecord? {
        let title = try Self.checkedTitle(raw)
        guard let r = try await store.rename(id: id, title: title) else { return nil }
        let record = records.withLock { s -> StreamRecord in
            let r = Self.keepingLearnedKey(r, from: s.byID[r.id])
            s.add(r)
            return r
        }
        tell(.changed(record))
        return record
    }

    /// Changes what a person sets on a stream, in the database (every node sharing it sees it)
    /// and here; nil when there is no such stream.
    package func update(id: String, _ details: StreamDetails) async throws -> StreamRecord? {
        guard let current = try await store.record(id: id) else { return nil }
        let changed = try details.applied(to: current)
        try await store.update(changed)
        let r = records.withLock { s -> StreamRecord in
            let r = Self.keepingLearnedKey(changed, from: s.byID[id])
            s.add(r)
            return r
        }
        // Nodes with databases of their own hear of it: a stream made private must be private
        // wherever its record is kept.
        if changed != current { tell(.changed(r)) }
        return r
    }

    /// Gives every stream of `owner` its channel's recording settings as they are now, so each
    /// node holding one applies them (recorded or not, retention); the records changed.
    package func setChannelRecording(owner: String, _ settings: ChannelRecording) async throws -> [StreamRecord] {
        let ids = records.withLock { s in s.byID.values.filter { $0.owner == owner && $0.channelRecording != settings }.map(\.id) }
        var out: [StreamRecord] = []
        for id in ids.sorted() {
            if let r = try await update(id: id, StreamDetails(channelRecording: settings)) { out.append(r) }
        }
        return out
    }

    /// Gives a stream a new key: the old one opens nothing from now on, here and (through the
    /// database's change notices) on every node sharing it. A broadcaster live on the old key
    /// goes on until they reconnect. The record with its new key; nil when there is no such stream.
    package func rotateKey(id: String) async throws -> StreamRecord? {
        guard var r = try await store.record(id: id) else { return nil }
        let key = StreamIdentifiers.randomKey(for: id)
        try await store.replaceKey(id: id, key: key)
        r.key = key
        r.keyDigest = StreamIdentifiers.digest(key)
        records.withLock { $0.add(r) }
        tell(.changed(r))
        return r
    }

    // MARK: Co-hosts

    /// Adds `account` as a co-host of stream `id`, with a key of their own; the record as it is
    /// now. Every node sharing the database hears of it at once, and the ring's holders are sent it.
    package func addCohost(id: String, account: String) async throws -> StreamRecord? {
        guard let r = try await store.record(id: id) else { return nil }
        guard account != r.owner else { throw StreamError.badCohost("the stream's owner is its host already") }
        guard r.cohost(account: account) == nil else { throw StreamError.badCohost("already a co-host of this stream") }
        guard r.cohosts.count < CoHost.maxPerStream else {
            throw StreamError.badCohost("a stream has at most \(CoHost.maxPerStream) co-hosts: remove one first")
        }
        try await store.addCohost(stream: id, CoHost(account: account, key: StreamIdentifiers.randomKey(for: id), addedAt: Date()))
        return try await changed(id)
    }

    /// Removes a co-host: their key opens nothing from now on, on every node; a stream handed to
    /// them goes back to its host. The record; nil when there is no such stream or co-host.
    package func removeCohost(id: String, account: String) async throws -> StreamRecord? {
        guard try await store.removeCohost(stream: id, account: account) else { return nil }
        return try await changed(id)
    }

    /// A co-host's new key: the old one opens nothing from now on (a broadcast live on it goes on
    /// until it reconnects). The record; nil when there is no such stream or co-host.
    package func rotateCohostKey(id: String, account: String) async throws -> StreamRecord? {
        guard try await store.replaceCohostKey(stream: id, account: account, key: StreamIdentifiers.randomKey(for: id)) else { return nil }
        return try await changed(id)
    }

    /// Hands the stream to co-host `account`, or back to its host (nil): from now on only their
    /// key is admitted, and their next publish takes over from whoever publishes now.
    package func handOver(id: String, to account: String?) async throws -> StreamRecord? {
        guard let r = try await store.record(id: id) else { return nil }
        if let account, r.cohost(account: account) == nil { throw StreamError.badCohost("not a co-host of this stream") }
        try await store.setOnAir(stream: id, account: account)
        return try await changed(id)
    }

    /// The record as the database has it now, kept here and sent to the ring's holders (nodes
    /// with databases of their own learn of the change as they do of a new key).
    private func changed(_ id: String) async throws -> StreamRecord? {
        guard let fresh = try await store.record(id: id) else { return nil }
        let r = records.withLock { s -> StreamRecord in
            let r = Self.keepingLearnedKey(fresh, from: s.byID[id])
            s.add(r)
            return r
        }
        tell(.changed(r))
        return r
    }

    /// Deletes a stream's record, here and in the database (which keeps a tombstone); false
    /// when there was none.
    package func delete(id: String) async throws -> Bool {
        guard try await store.record(id: id) != nil else { return false }
        try await store.delete(id: id)
        records.withLock { $0.remove(id) }
        tell(.deleted(id))
        return true
    }

    /// A stream another node deleted: gone from here too, and remembered as deleted so that
    /// no node that was away can place it here again.
    package func forget(id: String) async {
        do {
            try await store.delete(id: id)
        } catch {
            logger.warning("deleted stream not forgotten", metadata: ["stream": "\(id)", "error": "\(Database.explain(error))"])
        }
        let known = records.withLock { s -> Bool in
            defer { s.remove(id) }
            return s.byID[id] != nil
        }
        if known { logger.info("stream record deleted by a peer", metadata: ["stream": "\(id)"]) }
    }

    /// The streams deleted here or told of, in the last `days`; older tombstones are forgotten.
    package func deletedStreams(keeping days: Double = StreamCatalog.tombstoneDays) async throws -> [String] {
        let since = Date(timeIntervalSince1970: now() - days * 86_400)
        try await store.purgeDeleted(before: since)
        return try await store.deleted(since: since)
    }

    /// How long a deletion is remembered: a node away longer than this may bring a deleted
    /// stream's record back until the record's holders refuse it.
    package static let tombstoneDays = 30.0

    // MARK: Uploaded thumbnails

    /// An uploaded picture: the version its record names, and the JPEG.
    package struct Thumbnail: Sendable, Equatable {
        package var version: String
        package var jpeg: [UInt8]
        package init(version: String, jpeg: [UInt8]) {
            self.version = version
            self.jpeg = jpeg
        }
    }

    /// A picture's version: the first 64 bits of its SHA-256, hex. The same bytes have the same
    /// version on every node, so a version names one picture everywhere and a node handed bytes
    /// for a version can check them.
    package static func thumbnailVersion(_ jpeg: [UInt8]) -> String {
        SHA256.hash(data: jpeg).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    package static func isThumbnailVersion(_ s: String) -> Bool {
        s.utf8.count == 16 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Makes `jpeg` (already re-encoded by the node) the stream's picture: kept in the database,
    /// its version in the record, here and (change notices, placement) on every node. Nil when
    /// there is no such stream.
    package func setThumbnail(id: String, jpeg: [UInt8]) async throws -> StreamRecord? {
        guard var r = try await store.record(id: id) else { return nil }
        let version = Self.thumbnailVersion(jpeg), at = Date(timeIntervalSince1970: now())
        try await store.putThumbnail(id: id, version: version, jpeg: jpeg)
        try await store.setThumbnailVersion(id: id, version: version, at: at)
        (r.thumbnail, r.thumbnailChangedAt) = (version, at)
        remember(Thumbnail(version: version, jpeg: jpeg), id: id)
        return changedThumbnail(r)
    }

    /// Forgets the uploaded picture: pictures of the live stream show again. Nil when there is no such stream.
    package func removeThumbnail(id: String) async throws -> StreamRecord? {
        guard var r = try await store.record(id: id) else { return nil }
        let at = Date(timeIntervalSince1970: now())
        try await store.setThumbnailVersion(id: id, version: nil, at: at)
        (r.thumbnail, r.thumbnailChangedAt) = (nil, at)
        _ = pictures.withLock { $0.removeValue(forKey: id) }
        return changedThumbnail(r)
    }

    private func changedThumbnail(_ changed: StreamRecord) -> StreamRecord {
        let r = records.withLock { s -> StreamRecord in
            let r = Self.keepingLearnedKey(changed, from: s.byID[changed.id])
            s.add(r)
            return r
        }
        // Nodes with databases of their own hear of it (the picture follows to the holders).
        tell(.changed(r))
        return r
    }

    /// The uploaded picture `record` names: from memory, this node's database, or (nodes with
    /// databases of their own) the stream's holders, kept here once fetched. Nil when the record
    /// names none or no one has it.
    package func uploadedThumbnail(of record: StreamRecord) async -> Thumbnail? {
        guard let version = record.thumbnail else { return nil }
        if let kept = pictures.withLock({ $0[record.id] }), kept.version == version { return kept }
        if let kept = try? await store.thumbnail(id: record.id), kept.version == version {
            let t = Thumbnail(version: kept.version, jpeg: kept.jpeg)
            remember(t, id: record.id)
            return t
        }
        guard let lookup = thumbnailLookup.withLock({ $0 }) else { return nil }
        let t = now()
        let ask = pictureMisses.withLock { misses -> Bool in
            if let missed = misses[record.id], missed.version == version, t - missed.at < Self.missMemory { return false }
            if misses.count >= Self.maxMisses { misses = misses.filter { t - $0.value.at < Self.missMemory } }
            misses[record.id] = (version, t)
            return true
        }
        guard ask, let jpeg = await lookup(record.id, version), Self.thumbnailVersion(jpeg) == version else { return nil }
        pictureMisses.withLock { _ = $0.removeValue(forKey: record.id) }
        await keepThumbnail(id: record.id, version: version, jpeg: jpeg)
        return Thumbnail(version: version, jpeg: jpeg)
    }

    /// Keeps a picture another node sent or gave (nodes with databases of their own), when its
    /// bytes are the version named and this node knows the stream. False when refused.
    @discardableResult
    package func keepThumbnail(id: String, version: String, jpeg: [UInt8]) async -> Bool {
        guard Self.thumbnailVersion(jpeg) == version, record(id: id) != nil else { return false }
        do { try await store.putThumbnail(id: id, version: version, jpeg: jpeg) } catch {
            logger.warning("thumbnail from a peer not stored", metadata: ["stream": "\(id)", "error": "\(Database.explain(error))"])
        }
        if record(id: id)?.thumbnail == version { remember(Thumbnail(version: version, jpeg: jpeg), id: id) }
        return true
    }

    /// How this node asks the stream's holders for an uploaded picture (set once the cluster is up,
    /// on nodes with databases of their own): the JPEG of that version, or nil.
    package typealias ThumbnailLookup = @Sendable (_ id: String, _ version: String) async -> [UInt8]?
    private let thumbnailLookup = Mutex<ThumbnailLookup?>(nil)
    package func lookUpThumbnails(with lookup: @escaping ThumbnailLookup) { thumbnailLookup.withLock { $0 = lookup } }
    private let pictureMisses = Mutex<[String: (version: String, at: Double)]>([:])

    /// Pictures served lately, in memory up to `pictureBudget` bytes (then the cache starts over:
    /// the database has them all).
    package static let pictureBudget = 32 << 20
    private let pictures = Mutex<[String: Thumbnail]>([:])

    private func remember(_ t: Thumbnail, id: String) {
        pictures.withLock { p in
            if p.values.reduce(0, { $0 + $1.jpeg.count }) + t.jpeg.count > Self.pictureBudget { p.removeAll() }
            p[id] = t
        }
    }

    /// A title trimmed, or why it cannot be one.
    package static func checkedTitle(_ raw: String) throws -> String {
        let title = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw StreamError.badTitle("a stream needs a title") }
        guard title.count <= 200 else { throw StreamError.badTitle("at most 200 characters, got \(title.count)") }
        guard !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StreamError.badTitle("control characters are not allowed")
        }
        return title
    }

    /// Keeps the records in step with changes other nodes make, until cancelled: a record a
    /// notice names is read again; when anything may have changed (an SQLite file written by
    /// another node, PostgreSQL notices that may have been missed) every record is. Every
    /// `refresh` all are read again whatever was said: what a lost notice costs is bounded.
    package func followChanges(refresh: Duration = .seconds(60)) async {
        let changes = store.database.changes(on: StreamStore.changes)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await change in changes {
                    do {
                        switch change {
                        case .changed(let id): try await self.reload(id: id)
                        case .unknown: try await self.load()
                        }
                    } catch {
                        self.logger.warning("stream records not reloaded", metadata: ["error": "\(Database.explain(error))"])
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: refresh)
                    if Task.isCancelled { break }
                    do { try await self.load() } catch {
                        self.logger.warning("stream records not reloaded", metadata: ["error": "\(Database.explain(error))"])
                    }
                }
            }
            await group.waitForAll()
        }
    }

    package func record(id: String) -> StreamRecord? { records.withLock { $0.byID[id] } }
    /// The record a presented stream key opens.
    package func record(key: String) -> StreamRecord? {
        let digest = StreamIdentifiers.digest(key)
        return records.withLock { s in s.idByKeyDigest[digest].flatMap { s.byID[$0] } }
    }
    package var all: [StreamRecord] { records.withLock { Array($0.byID.values).sorted { $0.createdAt < $1.createdAt } } }

    /// A record by id or key, from memory, the database, or another node.
    package func find(_ query: Query) async -> StreamRecord? {
        if let r = record(query) {
            // Known by id until now: a broadcaster presenting the key teaches it to this node.
            if case .key(let key) = query, r.key == nil { await learnKey(key, of: r) }
            return record(query)
        }
        try? await reloadIfStale()
        if let r = record(query) { return r }
        return await askPeers(query)
    }

    package func find(id: String) async -> StreamRecord? { await find(.id(id)) }
    package func find(key: String) async -> StreamRecord? { await find(.key(key)) }

    private func record(_ query: Query) -> StreamRecord? {
        switch query {
        case .id(let id): return record(id: id)
        case .key(let key): return record(key: key)
        }
    }

    package enum Query: Hashable, Sendable {
        case id(String)
        case key(String)
    }

    /// How this node asks the others for a record (set once the cluster is up).
    package typealias PeerLookup = @Sendable (Query) async -> StreamRecord?
    private let peerLookup = Mutex<PeerLookup?>(nil)

    /// Unknown ids and keys cost the other nodes a bounded number of questions: a query the
    /// peers did not know is not asked again for `missMemory` seconds, and all questions
    /// together are held to `lookupsPerSecond` (a bucket of `lookupBurst`).
    package static let missMemory = 30.0
    package static let maxMisses = 10_000
    package static let lookupsPerSecond = 10.0
    package static let lookupBurst = 20.0
    private struct Budget {
        var misses: [Query: Double] = [:]
        var tokens = StreamCatalog.lookupBurst
        var refilled = 0.0
    }
    private let budget = Mutex(Budget())

    package func lookUpPeers(with lookup: @escaping PeerLookup) { peerLookup.withLock { $0 = lookup } }

    /// What this node did to a record, for the nodes that keep a copy of it.
    package enum RecordChange: Equatable, Sendable {
        case made(StreamRecord)
        case changed(StreamRecord)
        case deleted(String)
    }

    /// Told of every stream made, changed or deleted on this node (set once the cluster is
    /// up): the cluster places a new record with the nodes other nodes will ask, and tells the
    /// nodes keeping a copy of a change. Must not block.
    package func whenChanged(_ body: @escaping @Sendable (RecordChange) -> Void) { onChange.withLock { $0 = body } }
    private let onChange = Mutex<(@Sendable (RecordChange) -> Void)?>(nil)
    private func tell(_ change: RecordChange) { onChange.withLock({ $0 })?(change) }

    private func askPeers(_ query: Query) async -> StreamRecord? {
        guard let lookup = peerLookup.withLock({ $0 }) else { return nil }
        let t = now()
        let allowed = budget.withLock { b -> Bool in
            if let missed = b.misses[query], t - missed < Self.missMemory { return false }
            b.tokens = min(Self.lookupBurst, b.tokens + (t - b.refilled) * Self.lookupsPerSecond)
            b.refilled = t
            guard b.tokens >= 1 else { return false }
            b.tokens -= 1
            if b.misses.count >= Self.maxMisses { b.misses = b.misses.filter { t - $0.value < Self.missMemory } }
            if b.misses.count < Self.maxMisses { b.misses[query] = t }
            return true
        }
        guard allowed, let record = await lookup(query) else { return nil }
        budget.withLock { _ = $0.misses.removeValue(forKey: query) }
        await adopt(record)
        // What was adopted (nothing, for a stream deleted here).
        return self.record(query)
    }

    private func learnKey(_ key: String, of record: StreamRecord) async {
        guard StreamIdentifiers.digest(key) == record.keyDigest else { return }
        records.withLock { $0.byID[record.id]?.key = key }
        do { try await store.storeKey(id: record.id, key: key) } catch {
            logger.warning("stream key not stored", metadata: ["stream": "\(record.id)", "error": "\(error)"])
        }
    }

    /// Keeps a record another node made: in memory, and in this node's database. `onlyIfKnown`:
    /// a change told to every node, taken only by those that keep the record already. A
    /// deleted stream's record is refused (a node that was away may still offer it).
    package func adopt(_ record: StreamRecord, onlyIfKnown: Bool = false) async {
        if onlyIfKnown, self.record(id: record.id) == nil { return }
        if (try? await store.isDeleted(id: record.id)) == true {
            logger.debug("record of a deleted stream refused", metadata: ["stream": "\(record.id)"])
            return
        }
        let known = records.withLock { s -> StreamRecord? in
            if let r = s.byID[record.id] { return r }
            s.add(record)
            return nil
        }
        if let known {
            if known.keyDigest == record.keyDigest, known.key == nil, let key = record.key { await learnKey(key, of: known) }
            // The maker changed it since (new details, a new key): what it says now wins.
            var theirs = Self.keepingLearnedKey(record, from: known)
            theirs.key = known.keyDigest == record.keyDigest ? known.key : record.key
            // Except an older copy of the picture's change (placements may arrive out of order).
            if let mine = known.thumbnailChangedAt, mine > (record.thumbnailChangedAt ?? .distantPast) {
                (theirs.thumbnail, theirs.thumbnailChangedAt) = (known.thumbnail, mine)
            }
            if theirs != known {
                do {
                    if known.keyDigest != record.keyDigest { try await store.replaceDigest(id: record.id, digest: record.keyDigest) }
                    if theirs.cohosts != known.cohosts { try await store.replaceCohosts(stream: record.id, theirs.cohosts) }
                    if theirs.onAir != known.onAir { try await store.setOnAir(stream: record.id, account: theirs.onAir) }
                    try await store.update(theirs)
                    // What the database holds now: keys it kept sealed (a database shared with the
                    // node that made them: the stream's new key, co-hosts' keys) open here too.
                    if theirs.cohosts != known.cohosts || known.keyDigest != record.keyDigest,
                       (try? await reload(id: record.id)) != nil { return }
                } catch {
                    logger.warning("stream record from a peer not updated", metadata: ["stream": "\(record.id)", "error": "\(Database.explain(error))"])
                }
                records.withLock { $0.add(theirs) }
            }
            return
        }
        do { try await store.insert(record) } catch {
            // Already there (a database shared with the node that made it) is fine: what the
            // database holds (the key too, sealed) is what this node keeps.
            logger.debug("stream record from a peer not stored", metadata: ["stream": "\(record.id)", "error": "\(Database.explain(error))"])
            try? await reload(id: record.id)
        }
        logger.info("stream record learned from a peer", metadata: ["stream": "\(record.id)"])
    }

    private let lastReload = Mutex<Double>(0)

    /// Reloads at most twice a second, so unknown ids cannot hammer the database.
    private func reloadIfStale() async throws {
        let now = self.now()
        let due = lastReload.withLock { last -> Bool in
            guard now - last > 0.5 else { return false }
            last = now
            return true
        }
        if due { try await load() }
    }
}
