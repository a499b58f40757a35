// StreamCatalog: the node's stream records, kept in memory so ingest and playback never wait
// on the database; a record not known here is looked for again in the database (nodes that
// share one) and then asked of the other nodes (nodes with their own). A record changed by
// another node sharing the database is reloaded when the database says so (`followChanges`).
import Foundation
import Logging
import Synchronization

package final class StreamCatalog: Sendable {
    package let store: StreamStore
    private let logger: Logger

    private struct Records {
        var byID: [String: StreamRecord] = [:]
        var idByKeyDigest: [String: String] = [:]

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
        }

        mutating func remove(_ id: String) {
            guard let r = byID.removeValue(forKey: id) else { return }
            for digest in [r.keyDigest] + r.cohosts.map(\.keyDigest) where idByKeyDigest[digest] == id { idByKeyDigest[digest] = nil }
        }
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
    package func load() async throws {
        let all = try await store.all()
        let ids = Set(all.map(\.id))
        records.withLock { s in
            for r in all { s.add(Self.keepingLearnedKey(r, from: s.byID[r.id])) }
            // Deleted by another node (every record this node keeps is in its database).
            for id in s.byID.keys where !ids.contains(id) { s.remove(id) }
        }
    }

    /// Reads one record again (another node changed or deleted it).
    package func reload(id: String) async throws {
        guard let r = try await store.record(id: id) else {
            records.withLock { $0.remove(id) }
            return
        }
        records.withLock { s in s.add(Self.keepingLearnedKey(r, from: s.byID[r.id])) }
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
        if let created = onCreate.withLock({ $0 }) { created(record) }
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
        // Nodes with databases of their own hear of it from the ring's holders: a stream made
        // private must be private wherever its record is asked for.
        if changed != current, let placed = onCreate.withLock({ $0 }) { placed(r) }
        return r
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
        if let created = onCreate.withLock({ $0 }) { created(r) }
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
        if let placed = onCreate.withLock({ $0 }) { placed(r) }
        return r
    }

    /// Deletes a stream's record, here and in the database; false when there was none.
    package func delete(id: String) async throws -> Bool {
        guard try await store.record(id: id) != nil else { return false }
        try await store.delete(id: id)
        records.withLock { $0.remove(id) }
        return true
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

    /// Told of every stream made on this node (set once the cluster is up): the cluster
    /// places the record with the nodes other nodes will ask. Must not block.
    package func whenCreated(_ body: @escaping @Sendable (StreamRecord) -> Void) { onCreate.withLock { $0 = body } }
    private let onCreate = Mutex<(@Sendable (StreamRecord) -> Void)?>(nil)

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
        return record
    }

    private func learnKey(_ key: String, of record: StreamRecord) async {
        guard StreamIdentifiers.digest(key) == record.keyDigest else { return }
        records.withLock { $0.byID[record.id]?.key = key }
        do { try await store.storeKey(id: record.id, key: key) } catch {
            logger.warning("stream key not stored", metadata: ["stream": "\(record.id)", "error": "\(error)"])
        }
    }

    /// Keeps a record another node made: in memory, and in this node's database.
    package func adopt(_ record: StreamRecord) async {
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
            if theirs != known {
                do {
                    if known.keyDigest != record.keyDigest { try await store.replaceDigest(id: record.id, digest: record.keyDigest) }
                    if theirs.cohosts != known.cohosts { try await store.replaceCohosts(stream: record.id, theirs.cohosts) }
                    if theirs.onAir != known.onAir { try await store.setOnAir(stream: record.id, account: theirs.onAir) }
                    try await store.update(theirs)
                    // What the database holds now: co-hosts' keys it kept sealed (a database shared
                    // with the node that made them) open here too.
                    if theirs.cohosts != known.cohosts, (try? await reload(id: record.id)) != nil { return }
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
