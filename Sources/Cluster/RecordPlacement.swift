// RecordPlacement: keeps every stream record with the nodes the ring places its stream on
// (owner and standbys), for clusters whose nodes each keep their own database. A record made
// here is sent to them at once; when the ring changes, a node that held a record under the
// old ring sends it to the nodes that hold it under the new one and did not before. A node
// starting up held everything it has (its old ring was itself alone), so its records reach
// their holders once the cluster forms. Lookups (`PeerRecords.lookup`) then ask those holders
// and no one else. A record changed here (details, visibility, a new key) goes to its holders
// and to every other node, which takes it if it keeps a copy (learned by a lookup); a deletion
// goes to every node, and its tombstone moves with the ring like a record, so a holder that was
// away is told too and no node brings the stream back.
// An uploaded picture a record names follows it to its holders (`PeerThumbnails`).
import AsyncHTTPClient
import Catalog
import Gossip
import Logging
import ServiceLifecycle

package struct RecordPlacement: Service {
    let catalog: StreamCatalog
    let router: ClusterRouter
    let client: HTTPClient
    let tokens: ClusterTokens
    let localID: String
    let logger: Logger
    /// How often the ring is looked at.
    let interval: Duration
    /// False when every node reads the same database (PostgreSQL): each has every record already.
    let enabled: Bool

    package init(catalog: StreamCatalog, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens, localID: String,
                 logger: Logger, interval: Duration = .seconds(1), enabled: Bool = true) {
        self.enabled = enabled
        self.catalog = catalog
        self.router = router
        self.client = client
        self.tokens = tokens
        self.localID = localID
        self.logger = logger
        self.interval = interval
    }

    /// Sends what happened to a record here to the nodes that keep it (without waiting for them).
    package func tell(_ change: StreamCatalog.RecordChange) {
        guard enabled else { return }
        let view = router.view.snapshot
        let others = view.members.filter { $0.id.rawValue != localID && $0.status == .alive }
        switch change {
        case .made(let record), .changed(let record):
            let holders = PeerRecords.holders(of: record.id, ring: view.ring, members: view.members).filter { $0.id.rawValue != localID }
            let rest: [Member]
            if case .changed = change { rest = others.filter { m in !holders.contains { $0.id == m.id } } } else { rest = [] }
            guard !holders.isEmpty || !rest.isEmpty else { return }
            Task {
                for member in holders where !(await place([record], at: member)) {
                    logger.warning("stream record not placed", metadata: ["stream": "\(record.id)", "at": "\(member.id)"])
                }
                await tellAll(rest, changed: [record], deleted: [], stream: record.id)
            }
        case .deleted(let id):
            guard !others.isEmpty else { return }
            Task { await tellAll(others, changed: [], deleted: [id], stream: id) }
        }
    }

    /// Tells `members` at once, a few at a time.
    private func tellAll(_ members: [Member], changed: [StreamRecord], deleted: [String], stream: String) async {
        var failed = 0
        for start in stride(from: 0, to: members.count, by: 16) {
            await withTaskGroup(of: Bool.self) { group in
                for member in members[start..<min(start + 16, members.count)] {
                    group.addTask {
                        await PeerRecords.tell(changed: changed, deleted: deleted, at: member, transport: router.transport,
                                               client: client, tokens: tokens)
                    }
                }
                for await ok in group where !ok { failed += 1 }
            }
        }
        if failed > 0 {
            logger.warning("stream record change not told to every node", metadata: ["stream": "\(stream)", "failed": "\(failed)"])
        }
    }

    package func run() async throws {
        guard enabled else {
            try? await gracefulShutdown()
            return
        }
        var previous = HashRing(nodes: [.init(id: NodeID(localID))])
        while !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            let view = router.view.snapshot
            guard !view.ring.isEmpty, view.ring.nodes != previous.nodes else { continue }
            let moves = Self.moves(catalog.all, from: previous, to: view.ring, members: view.members, localID: localID)
            // Deletions move like records: a holder that was away hears of them from the others.
            let deleted = (try? await catalog.deletedStreams()) ?? []
            let tombstones = Self.moves(deleted, id: { $0 }, from: previous, to: view.ring, members: view.members, localID: localID)
            previous = view.ring
            for (member, ids) in tombstones where !(await PeerRecords.tell(deleted: ids, at: member, transport: router.transport,
                                                                               client: client, tokens: tokens)) {
                logger.warning("stream deletions not told", metadata: ["at": "\(member.id)", "streams": "\(ids.count)"])
            }
            guard !moves.isEmpty else { continue }
            var placed = 0
            for (member, records) in moves {
                if await place(records, at: member) {
                    placed += records.count
                } else {
                    logger.warning("stream records not placed", metadata: ["at": "\(member.id)", "records": "\(records.count)"])
                }
            }
            logger.info("stream records placed after a ring change", metadata: ["records": "\(placed)", "nodes": "\(moves.count)"])
        }
    }

    /// Sends `records` to `member`, then the uploaded pictures they name; true when it took them all.
    private func place(_ records: [StreamRecord], at member: Member) async -> Bool {
        guard await PeerRecords.place(records, at: member, transport: router.transport, client: client, tokens: tokens) else { return false }
        var ok = true
        for record in records where record.thumbnail != nil {
            guard let picture = await catalog.uploadedThumbnail(of: record),
                  await PeerThumbnails.place(id: record.id, picture: picture, at: member, transport: router.transport, client: client,
                                             tokens: tokens) else {
                logger.warning("uploaded thumbnail not placed", metadata: ["stream": "\(record.id)", "at": "\(member.id)"])
                ok = false
                continue
            }
        }
        return ok
    }

    /// What to send where after the ring went from `old` to `new`: each record this node held
    /// under `old` goes to its holders under `new` that were not holders under `old`.
    package static func moves(_ records: [StreamRecord], from old: HashRing, to new: HashRing, members: [Member],
                              localID: String) -> [(Member, [StreamRecord])] {
        moves(records, id: \.id, from: old, to: new, members: members, localID: localID)
    }

    /// The same for anything kept per stream (`id` names its stream): records, tombstones.
    package static func moves<Item>(_ items: [Item], id: (Item) -> String, from old: HashRing, to new: HashRing, members: [Member],
                                    localID: String) -> [(Member, [Item])] {
        let local = NodeID(localID)
        var byMember: [NodeID: [Item]] = [:]
        for record in items {
            guard let was = old.placement(for: id(record)), was.owner == local || was.standbys.contains(local),
                  let now = new.placement(for: id(record)) else { continue }
            let before = Set([was.owner] + was.standbys)
            for holder in [now.owner] + now.standbys where holder != local && !before.contains(holder) {
                byMember[holder, default: []].append(record)
            }
        }
        return byMember.sorted { $0.key < $1.key }.compactMap { node, items in
            members.first { $0.id == node && $0.status == .alive }.map { ($0, items) }
        }
    }
}
