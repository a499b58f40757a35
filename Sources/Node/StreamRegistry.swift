// StreamRegistry: the node's view of streams — records (from the store, kept in memory so
// ingest and playback never wait on the database) and the live state of each one.
import Foundation
import Logging
import Metrics
import Origin
import Synchronization

enum StreamError: Error, CustomStringConvertible, Equatable {
    case badTitle(String)
    case badLadder(String)
    var description: String {
        switch self {
        case .badTitle(let why): return "bad title: \(why)"
        case .badLadder(let why): return "bad ladder: \(why)"
        }
    }
}

final class StreamRegistry: Sendable {
    let store: StreamStore
    let packaging: PackagingSettings
    let ladder: TranscodeSettings?
    let logger: Logger

    private struct State {
        var byID: [String: StreamRecord] = [:]
        var idByKey: [String: String] = [:]
        var live: [String: LiveStream] = [:]
        var publishers: [String: UInt64] = [:]
    }
    private let state = Mutex(State())

    init(store: StreamStore, packaging: PackagingSettings, ladder: TranscodeSettings? = nil, logger: Logger = Logger(label: "streamtube")) {
        self.store = store
        self.packaging = packaging
        self.ladder = ladder
        self.logger = logger
    }

    func load() async throws {
        let records = try await store.all()
        state.withLock { s in
            for r in records {
                s.byID[r.id] = r
                s.idByKey[r.key] = r.id
            }
        }
    }

    func create(title raw: String, ladder: String? = nil, x264Preset: String? = nil) async throws -> StreamRecord {
        let title = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw StreamError.badTitle("a stream needs a title") }
        guard title.count <= 200 else { throw StreamError.badTitle("at most 200 characters, got \(title.count)") }
        guard !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StreamError.badTitle("control characters are not allowed")
        }
        let record = StreamRecord(id: Self.randomID(length: 12), key: Self.randomKey(), title: title, createdAt: Date(),
                                  ladder: ladder, x264Preset: x264Preset)
        if ladder != nil || x264Preset != nil {
            do { _ = try transcodeSettings(for: record) } catch { throw StreamError.badLadder("\(error)") }
        }
        try await store.insert(record)
        state.withLock { s in
            s.byID[record.id] = record
            s.idByKey[record.key] = record.id
        }
        return record
    }

    func record(id: String) -> StreamRecord? { state.withLock { $0.byID[id] } }

    /// A record, reloading from the database when it is not known here yet (nodes that share
    /// a database see each other's new streams), then asking the other nodes (each node with
    /// its own database: the record is kept here from then on).
    func find(id: String) async -> StreamRecord? {
        if let r = record(id: id) { return r }
        try? await reloadIfStale()
        if let r = record(id: id) { return r }
        return await askPeers(.id(id))
    }

    func find(key: String) async -> StreamRecord? {
        if let r = record(key: key) { return r }
        try? await reloadIfStale()
        if let r = record(key: key) { return r }
        return await askPeers(.key(key))
    }

    enum Query: Hashable, Sendable {
        case id(String)
        case key(String)
    }

    /// How this node asks the others for a record (set once the cluster is up).
    typealias PeerLookup = @Sendable (Query) async -> StreamRecord?
    private let peerLookup = Mutex<PeerLookup?>(nil)
    /// Queries the peers did not know, and when: asked again at most once a second.
    private let peerMisses = Mutex<[Query: Double]>([:])

    func lookUpPeers(with lookup: @escaping PeerLookup) { peerLookup.withLock { $0 = lookup } }

    private func askPeers(_ query: Query) async -> StreamRecord? {
        guard let lookup = peerLookup.withLock({ $0 }) else { return nil }
        let now = Date().timeIntervalSince1970
        let due = peerMisses.withLock { m -> Bool in
            if m.count > 10_000 { m = m.filter { now - $0.value < 1 } }
            if let last = m[query], now - last < 1 { return false }
            m[query] = now
            return true
        }
        guard due, let record = await lookup(query) else { return nil }
        peerMisses.withLock { _ = $0.removeValue(forKey: query) }
        await adopt(record)
        return record
    }

    /// Keeps a record another node made: in memory, and in this node's database.
    func adopt(_ record: StreamRecord) async {
        let known = state.withLock { s -> Bool in
            if s.byID[record.id] != nil { return true }
            s.byID[record.id] = record
            s.idByKey[record.key] = record.id
            return false
        }
        guard !known else { return }
        do { try await store.insert(record) } catch {
            // Already there (a database shared with the node that made it) is fine.
            logger.debug("stream record from a peer not stored", metadata: ["stream": "\(record.id)", "error": "\(error)"])
        }
        logger.info("stream record learned from a peer", metadata: ["stream": "\(record.id)"])
    }

    private let lastReload = Mutex<Double>(0)

    /// Reloads at most twice a second, so unknown ids cannot hammer the database.
    private func reloadIfStale() async throws {
        let now = Date().timeIntervalSince1970
        let due = lastReload.withLock { last -> Bool in
            guard now - last > 0.5 else { return false }
            last = now
            return true
        }
        if due { try await load() }
    }
    func record(key: String) -> StreamRecord? { state.withLock { s in s.idByKey[key].flatMap { s.byID[$0] } } }
    var all: [StreamRecord] { state.withLock { Array($0.byID.values).sorted { $0.createdAt < $1.createdAt } } }

    /// The live state of a stream that exists, made on first use.
    func live(id: String) -> LiveStream? {
        state.withLock { s in
            guard s.byID[id] != nil else { return nil }
            if let l = s.live[id] { return l }
            var streamLogger = logger
            streamLogger[metadataKey: "stream"] = "\(id)"
            let l = LiveStream(id: id, settings: packaging, ladder: (try? transcodeSettings(for: s.byID[id]!)) ?? ladder) { [streamLogger] event in
                switch event {
                case .transcodeStarted(let rungs):
                    streamLogger.info("transcoding started", metadata: ["rungs": "\(rungs.joined(separator: ","))"])
                case .renditionShed(let rendition, let reason):
                    streamLogger.warning("rendition shed: encoding cannot keep up", metadata: ["rendition": "\(rendition)", "reason": "\(reason)"])
                    Counter(label: "streamtube_renditions_shed_total", dimensions: [("rendition", rendition)]).increment()
                case .transcodeFailed(let reason):
                    streamLogger.error("transcoding failed; serving the source only", metadata: ["error": "\(reason)"])
                    Counter(label: "streamtube_transcode_failures_total").increment()
                }
            }
            s.live[id] = l
            return l
        }
    }

    /// The stream's own ladder and preset over the node's.
    func transcodeSettings(for r: StreamRecord) throws -> TranscodeSettings? {
        guard r.ladder != nil || r.x264Preset != nil else { return ladder }
        var t = ladder ?? TranscodeSettings.default
        if let text = r.ladder {
            guard let rungs = try NodeConfiguration.parseLadder(text) else { return nil }
            t.rungs = rungs
        }
        if let preset = r.x264Preset { t.preset = preset }
        try t.validate()
        return t
    }

    /// The live state only if the stream has ever been published on this node.
    func existingLive(id: String) -> LiveStream? { state.withLock { $0.live[id] } }

    var liveCount: Int { state.withLock { $0.publishers.count } }
    /// Streams published on this node since it started.
    var liveStreams: [(String, LiveStream)] { state.withLock { $0.live.map { ($0.key, $0.value) } } }

    /// Takes the publisher slot of a stream; false if another connection holds it.
    func claimPublisher(id: String, connection: UInt64) -> Bool {
        state.withLock { s in
            if s.publishers[id] != nil { return false }
            s.publishers[id] = connection
            return true
        }
    }

    func releasePublisher(id: String, connection: UInt64) {
        state.withLock { s in
            if s.publishers[id] == connection { s.publishers[id] = nil }
        }
    }

    static func randomID(length: Int) -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyz23456789")
        var g = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(g.next(upperBound: UInt32(alphabet.count)))] })
    }

    static func randomKey() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// Stream ids and keys are short, URL-safe tokens; anything else is refused before lookup.
    static func isWellFormedToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}
