// Replication, the node's side: every stream published here is sent, as it is made, to the
// next node in its preference list (the standby that takes it over if this node dies or
// leaves), over HTTP with a key signed by the cluster key. A new standby, a lost message or
// a restart on either side costs one snapshot; nothing blocks the media path: the stream
// only queues, one task per stream sends. Players are shown what the stream makes once the
// standby acknowledges it (replicate before announce), or when the stream has gone on making
// media for `showAfter` without an answer (a standby dead or cut off: the stream goes on,
// without the guarantee, until the cluster names another); with no standby at all, at once. Never while the standby says it
// publishes the stream itself: this node is the stale one (it was frozen or cut off and the
// cluster moved on), and what it made since must not reach players.
import AsyncHTTPClient
import Cluster
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Logging
import NodeMetrics
import NIOCore
import Origin
import Synchronization

package final class Replicator: Sendable {
    package static let path = "/internal/replica/"
    /// How long what was made with nothing coming in after it waits for a standby's answer at
    /// most: far past the cluster's detection bound and the relay's silence, so a node cut off
    /// has been handed a newer state by then if the cluster went on without it (two versions of
    /// the segment in progress at the cut are possible only past it); a node left with no other
    /// (a two-node cluster whose other node died) ends its viewers' playlists this late.
    static let patience = 60.0
    /// Past this many queued batches (a standby that cannot keep up) the queue is dropped
    /// and the standby gets a snapshot instead.
    static let maxQueued = 2_000

    private struct Stream {
        weak var live: LiveStream?
        var queue: [ReplicaBatch] = []
        var target: NodeID?
        var epoch: UInt64 = 0
        var sequence: UInt64 = 0
        /// The stream's ordinal (`ReplicaBatch.ordinal`) the batches being sent reach.
        var reaches: UInt64 = 0
        var needSnapshot = true
        var sending = false
        /// Handing over (graceful leave): the standby must keep the stream live.
        var handingOver = false
        /// The standby's last answer: it publishes the stream itself, or took it over since.
        var standbyPublishes = false
    }

    private let streams = Mutex<[String: Stream]>([:])
    private let router: ClusterRouter
    private let client: HTTPClient
    private let tokens: ClusterTokens
    private let localID: String
    private let logger: Logger
    /// How much more media the stream makes, unacknowledged, before players are shown it anyway.
    package let showAfter: Duration
    private let watching = Mutex(false)

    package init(router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens, localID: String, logger: Logger,
                 showAfter: Duration = .seconds(1)) {
        self.router = router
        self.client = client
        self.tokens = tokens
        self.localID = localID
        self.logger = logger
        self.showAfter = showAfter
    }

    /// Shows players what waited too long for a standby, every tenth of `showAfter`, while
    /// this replicator lives.
    private func watchUnacknowledged() {
        guard !watching.withLock({ w in defer { w = true }; return w }) else { return }
        let seconds = Double(showAfter.components.seconds) + Double(showAfter.components.attoseconds) / 1e18
        Task { [weak self] in
            var warned = false
            var woke = ContinuousClock.now
            var holdUntil = woke
            while true {
                try? await Task.sleep(for: (self?.showAfter ?? .zero) / 10)
                guard let self else { return }
                // A wake-up far later than asked: this process was paused (SIGSTOP, a VM
                // frozen). What waited since before the pause is not shown for another
                // `showAfter`: time for the standby's answer, which may be that it took over.
                let now = ContinuousClock.now
                if now - woke > max(self.showAfter * 2, .seconds(2)) {
                    holdUntil = now + self.showAfter
                    self.logger.warning("replica: this node was paused; holding back what waits for the standby",
                                        metadata: ["paused": "\(now - woke)"])
                }
                woke = now
                guard now >= holdUntil else { continue }
                let lives = self.streams.withLock { s in s.values.filter { !$0.standbyPublishes }.compactMap(\.live) }
                var shown = 0
                for live in lives { shown += live.showUnreplicated(after: seconds, patience: Self.patience) }
                if shown > 0 {
                    NodeMetrics.replicaUnacknowledgedShown.increment(by: shown)
                    if !warned {
                        self.logger.warning("replica: media shown to players before the standby held it",
                                            metadata: ["batches": "\(shown)", "after": "\(self.showAfter)"])
                    }
                }
                warned = shown > 0
            }
        }
    }

    /// Replicates what `live` makes from now on.
    package func attach(_ live: LiveStream) {
        let id = live.id
        streams.withLock { s in
            var st = s[id] ?? Stream()
            st.live = live
            st.handingOver = false
            s[id] = st
        }
        live.replicate { [weak self] batch in self?.enqueue(id, batch) }
        watchUnacknowledged()
    }

    /// Called with the stream's lock held: queue only.
    private func enqueue(_ id: String, _ batch: ReplicaBatch) {
        let start = streams.withLock { s -> Bool in
            guard var st = s[id] else { return false }
            if !st.needSnapshot {
                st.queue.append(batch)
                if st.queue.count > Self.maxQueued {
                    st.queue = []
                    st.needSnapshot = true
                }
            }
            let start = !st.sending
            st.sending = true
            s[id] = st
            return start
        }
        if start { Task { await self.send(id) } }
    }

    /// True when no other member of the cluster could hold a replica: every other one left it or
    /// takes no streams (capacity 0, an edge only). Members held dead or suspect still count.
    private var isAlone: Bool {
        router.view.snapshot.members.allSatisfy { $0.id.rawValue == localID || $0.status == .left || $0.metadata.capacity <= 0 }
    }

    /// Where a stream's replica goes: the first node of its preference list other than this one.
    package func target(of id: String) -> Member? {
        guard let p = router.placement(of: id) else { return nil }
        return ([p.owner] + p.standbys).first { $0.id.rawValue != localID && $0.status == .alive }
    }

    /// Sends a stream's queue until it is empty; one task per stream at a time.
    private func send(_ id: String) async {
        var failures = 0
        while true {
            let standby = target(of: id)
            enum Step { case done(LiveStream?), snapshot(LiveStream, Member), batches([ReplicaBatch], Member, LiveStream) }
            let step = streams.withLock { s -> Step in
                guard var st = s[id], let live = st.live else {
                    s[id] = nil
                    return .done(nil)
                }
                defer { s[id] = st }
                guard let member = standby else {
                    // No one to replicate to (a node on its own): a snapshot when someone comes.
                    st.queue = []
                    st.needSnapshot = true
                    st.sending = false
                    return .done(live)
                }
                if st.needSnapshot || st.target != member.id { return .snapshot(live, member) }
                if st.queue.isEmpty {
                    st.sending = false
                    return .done(nil)
                }
                var out = st.queue
                st.queue = []
                for i in out.indices {
                    st.sequence += 1
                    out[i].epoch = st.epoch
                    out[i].sequence = st.sequence
                    if st.handingOver { out[i].markLive() }
                }
                st.reaches = out.last!.ordinal
                return .batches(out, member, live)
            }
            let batches: [ReplicaBatch]
            let member: Member
            let live: LiveStream
            switch step {
            case .done(let unreplicated):
                // No standby. On a node alone in its cluster (no other member that could hold a
                // replica), nothing waits to be shown. Members held dead or suspect are not gone: this node
                // may be the one cut off from them, and what it made may never reach the node that
                // takes the stream over — it waits, shown only if media goes on coming in
                // (`showAfter`), as for a standby that does not answer.
                if let unreplicated, isAlone { unreplicated.showReplicated(through: .max) }
                return
            case .snapshot(let l, let m):
                member = m
                live = l
                var snap = l.snapshot { ordinal in
                    streams.withLock { s in
                        s[id]?.reaches = ordinal
                        s[id]?.queue = []
                        s[id]?.needSnapshot = false
                        s[id]?.target = m.id
                        s[id]?.epoch = UInt64.random(in: 1...UInt64.max)
                        s[id]?.sequence = 0
                    }
                }
                let (epoch, handingOver) = streams.withLock { s in (s[id]?.epoch ?? 0, s[id]?.handingOver ?? false) }
                snap.epoch = epoch
                snap.sequence = 0
                if handingOver { snap.markLive() }
                batches = [snap]
                NodeMetrics.replicaSnapshots.increment()
            case .batches(let b, let m, let l):
                batches = b
                member = m
                live = l
            }
            let result = await post(id, batches, to: member)
            switch result {
            case .ok:
                failures = 0
                streams.withLock { $0[id]?.standbyPublishes = false }
                if let reaches = streams.withLock({ $0[id]?.reaches }) { live.showReplicated(through: reaches) }
                NodeMetrics.replicaBatches.increment(by: batches.count)
            case .needSnapshot(let why):
                // The standby publishes the stream, or took it over since: this node is the stale one.
                let publishes = why.contains(ReplicaError.publishingHere.description) || why.contains(ReplicaError.staleText)
                streams.withLock {
                    $0[id]?.needSnapshot = true
                    $0[id]?.standbyPublishes = publishes
                }
                failures += 1
                logger.info("replica: standby asks for a snapshot", metadata: ["stream": "\(id)", "standby": "\(member.id)", "why": "\(why)"])
                if failures > 1 { try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures))) }
            case .failed(let why):
                streams.withLock { $0[id]?.needSnapshot = true }
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("replica: standby unreachable", metadata: ["stream": "\(id)", "standby": "\(member.id)",
                                                                               "error": "\(why)", "attempt": "\(failures)"])
                }
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures)))
            }
        }
    }

    private enum PostResult { case ok, needSnapshot(String), failed(String) }

    private func post(_ id: String, _ batches: [ReplicaBatch], to member: Member) async -> PostResult {
        var request = HTTPClientRequest(url: router.transport.baseURL(for: member) + Self.path + id)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        var body: [UInt8] = []
        for b in batches {
            let bytes = b.encoded()
            body += [UInt8(bytes.count >> 24 & 0xFF), UInt8(bytes.count >> 16 & 0xFF), UInt8(bytes.count >> 8 & 0xFF), UInt8(bytes.count & 0xFF)]
            body += bytes
        }
        NodeMetrics.replicaBytesSent.increment(by: body.count)
        let target = "\(Self.path)\(id)"
        request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                            value: tokens.token(for: ClusterRequest(.replica, "POST", target), scope: id, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
            switch response.status.code {
            case 200..<300: return .ok
            case 409: return .needSnapshot(text)
            default: return .failed("HTTP \(response.status.code): \(text)")
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// A bundle of length-prefixed batches, as `post` sends them.
    package static func decodeBundle(_ bytes: ByteBuffer) throws(ReplicaError) -> [ReplicaBatch] {
        var buffer = bytes
        var out: [ReplicaBatch] = []
        while buffer.readableBytes > 0 {
            guard let n = buffer.readInteger(as: UInt32.self), let b = buffer.readBytes(length: Int(n)) else {
                throw .malformed("truncated bundle")
            }
            out.append(try ReplicaBatch(decoding: b))
        }
        return out
    }

    /// Graceful leave: from now on the standby is told the stream goes on (it is taking over).
    package func beginHandover() {
        streams.withLock { s in for id in s.keys { s[id]?.handingOver = true } }
    }

    /// The ring named another node a stream's owner: from now on that node (the replica's
    /// target) is told the stream goes on. Undone by `cancelHandover` or when the stream is
    /// published here again (`attach`).
    package func beginHandover(of id: String) {
        streams.withLock { s in s[id]?.handingOver = true }
    }

    package func cancelHandover(of id: String) {
        streams.withLock { s in s[id]?.handingOver = false }
    }

    /// True when everything a stream made here so far has reached `member` (a snapshot taken,
    /// every batch since sent and answered): it could take the stream over now without a gap.
    package func isCaughtUp(_ id: String, at member: NodeID) -> Bool {
        streams.withLock { s in
            guard let st = s[id] else { return false }
            return st.target == member && !st.needSnapshot && !st.sending && st.queue.isEmpty
        }
    }

    /// Waits until one stream's queue is sent (or `timeout` passes); true when it was.
    package func flush(_ id: String, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if streams.withLock({ s in s[id].map { !$0.sending && $0.queue.isEmpty } ?? true }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Waits until every queue is sent (or `timeout` passes); true when all were.
    package func flush(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if streams.withLock({ s in s.values.allSatisfy { !$0.sending && $0.queue.isEmpty } }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

extension ReplicaBatch {
    /// During a handover the standby is told every rendition goes on (it takes them over).
    package mutating func markLive() {
        for i in renditions.indices { renditions[i].live = true }
    }
}
