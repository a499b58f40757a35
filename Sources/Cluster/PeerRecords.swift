// PeerRecords: stream records across nodes that each keep their own database. A record is
// placed where the ring puts its stream (owner and standbys): the node that makes a stream
// sends the record there, and when the ring changes the nodes that held a record send it on
// to the ones that hold it now (`RecordPlacement`). A node asked for a stream it does not
// know (a broadcaster's key, a viewer's stream id) asks those nodes only, over HTTP with a
// cluster token, and keeps what it learns. The same file answers both requests (`routes`).
import AsyncHTTPClient
import Catalog
import Foundation
import Gossip
import HTTPSupport
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NodeMetrics

package enum PeerRecords {
    package static let path = "/internal/streams"
    /// Where a node tells the others of records changed or deleted on it.
    package static let changesPath = "/internal/streams/changes"
    /// What the cluster token is good for (relay and replica tokens name a stream instead).
    package static let scope = "records"
    /// Records in one placement request, and its largest body.
    package static let maxBatch = 500
    package static let maxBody = 1 << 20

    /// Whom to ask about `query`: the holders of its stream by the ring (owner, then standbys)
    /// when the query names the stream (an id, or a key made with the id in front); every
    /// other alive member only for a key from before keys carried their stream's id.
    package static func targets(_ query: StreamCatalog.Query, view: ClusterView.Snapshot, localID: String) -> [Member] {
        let id: String?
        switch query {
        case .id(let i): id = i
        case .key(let key): id = StreamIdentifiers.streamID(inKey: key)
        }
        guard let id else { return view.members.filter { $0.id.rawValue != localID && $0.status == .alive } }
        return holders(of: id, ring: view.ring, members: view.members).filter { $0.id.rawValue != localID }
    }

    /// The alive members that keep the record of stream `id`: its owner and standbys.
    package static func holders(of id: String, ring: HashRing, members: [Member]) -> [Member] {
        guard let p = ring.placement(for: id) else { return [] }
        return ([p.owner] + p.standbys).compactMap { holder in members.first { $0.id == holder && $0.status == .alive } }
    }

    /// Asks the nodes `targets` names, all at once; the first that knows the record answers.
    package static func lookup(_ query: StreamCatalog.Query, router: ClusterRouter, client: HTTPClient, tokens: ClusterTokens,
                               localID: String) async -> StreamRecord? {
        let peers = targets(query, view: router.view.snapshot, localID: localID)
        guard !peers.isEmpty else { return nil }
        let parameter: String
        switch query {
        case .id(let id): parameter = "id=\(id)"
        case .key(let key): parameter = "key=\(key)"
        }
        return await withTaskGroup(of: StreamRecord?.self) { group in
            for peer in peers {
                NodeMetrics.recordLookupsSent.increment()
                group.addTask {
                    let target = "\(path)?\(parameter)"
                    var request = HTTPClientRequest(url: router.transport.baseURL(for: peer) + target)
                    request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                                        value: tokens.token(for: ClusterRequest(.records, "GET", target), scope: scope))
                    guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
                          let body = try? await response.body.collect(upTo: 1 << 16),
                          let peer = try? decoder.decode(PeerRecord.self, from: Data(buffer: body)) else { return nil }
                    return peer.record(for: query)
                }
            }
            for await record in group where record != nil {
                group.cancelAll()
                return record
            }
            return nil
        }
    }

    /// Sends `records` to `member` (in batches); true when it took them all.
    @discardableResult
    package static func place(_ records: [StreamRecord], at member: Member, transport: ClusterTransport, client: HTTPClient,
                              tokens: ClusterTokens) async -> Bool {
        var ok = true
        for start in stride(from: 0, to: records.count, by: maxBatch) {
            let batch = records[start..<min(start + maxBatch, records.count)].map(PeerRecord.init)
            guard let body = try? encoder.encode(batch) else { return false }
            guard await post(body, to: path, at: member, transport: transport, client: client, tokens: tokens) else {
                ok = false
                continue
            }
            NodeMetrics.recordsPlaced.increment(by: batch.count)
        }
        return ok
    }

    /// Tells `member` of records changed and streams deleted (in batches); true when it took them all.
    @discardableResult
    package static func tell(changed: [StreamRecord] = [], deleted: [String] = [], at member: Member, transport: ClusterTransport,
                             client: HTTPClient, tokens: ClusterTokens) async -> Bool {
        var ok = true
        let batches = stride(from: 0, to: changed.count, by: maxBatch).map {
            RecordChanges(changed: changed[$0..<min($0 + maxBatch, changed.count)].map(PeerRecord.init), deleted: [])
        } + stride(from: 0, to: deleted.count, by: maxBatch).map {
            RecordChanges(changed: [], deleted: Array(deleted[$0..<min($0 + maxBatch, deleted.count)]))
        }
        for batch in batches {
            guard let body = try? encoder.encode(batch),
                  await post(body, to: changesPath, at: member, transport: transport, client: client, tokens: tokens) else {
                ok = false
                continue
            }
        }
        return ok
    }

    /// A signed POST of `body` to another node's `target`; true on 204.
    private static func post(_ body: Data, to target: String, at member: Member, transport: ClusterTransport, client: HTTPClient,
                             tokens: ClusterTokens) async -> Bool {
        var request = HTTPClientRequest(url: transport.baseURL(for: member) + target)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: HTTPField.Name.streamTubeClusterToken.rawName,
                            value: tokens.token(for: ClusterRequest(.records, "POST", target), scope: scope, body: Array(body)))
        request.body = .bytes(ByteBuffer(bytes: body))
        guard let response = try? await client.execute(request, timeout: .seconds(10)) else { return false }
        return response.status == .noContent
    }

    /// `GET /internal/streams?id=|key=`: this node's own record; `POST /internal/streams`: records
    /// placed here; `POST /internal/streams/changes`: records changed and streams deleted on
    /// another node (a change is taken only for a record kept here). All for a node holding a
    /// token for `records`, whose token covers the body.
    package static func routes(catalog: StreamCatalog, tokens: ClusterTokens) -> RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.add(middleware: ClusterTokenMiddleware(tokens: tokens, purpose: .records))
        routes.get(RouterPath(path)) { request, _ -> Response in
            NodeMetrics.recordLookupsAnswered.increment()
            let q = request.uri.queryParameters
            let record = q.get("id").flatMap { catalog.record(id: $0) } ?? q.get("key").flatMap { catalog.record(key: $0) }
            guard let record else { throw Problem.notFound("no such stream here") }
            let data = try encoder.encode(PeerRecord(record))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        routes.post(RouterPath(path)) { request, context -> Response in
            let body = try await signedBody(request, context)
            let placed: [PeerRecord]
            do { placed = try decoder.decode([PeerRecord].self, from: Data(buffer: body)) } catch {
                throw Problem.badRequest("not a list of stream records: \(error)")
            }
            try check(placed, deleted: [])
            for r in placed {
                var record = r.record
                // A node from before co-hosts knows nothing of them: what this node knows stands.
                if r.cohosts == nil, let known = catalog.record(id: r.id) { (record.cohosts, record.onAir) = (known.cohosts, known.onAir) }
                await catalog.adopt(record)
            }
            return Response(status: .noContent)
        }
        routes.post(RouterPath(changesPath)) { request, context -> Response in
            let body = try await signedBody(request, context)
            let changes: RecordChanges
            do { changes = try decoder.decode(RecordChanges.self, from: Data(buffer: body)) } catch {
                throw Problem.badRequest("not a list of record changes: \(error)")
            }
            try check(changes.changed, deleted: changes.deleted)
            for id in changes.deleted { await catalog.forget(id: id) }
            for r in changes.changed { await catalog.adopt(r.record, onlyIfKnown: true) }
            NodeMetrics.recordChangesApplied.increment(by: changes.changed.count + changes.deleted.count)
            return Response(status: .noContent)
        }
        return routes
    }

    /// The body of a request whose cluster token covers it (by its digest), bounded.
    package static func signedBody(_ request: Request, _ context: NodeRequestContext) async throws -> ByteBuffer {
        guard case .node(_, _, _, let digest?) = context.caller else { throw Problem(.unauthorized, "the cluster token names no body") }
        let body = try await request.body.collect(upTo: maxBody)
        guard ClusterTokens.digest(body.readableBytesView) == digest else {
            throw Problem(.unauthorized, ClusterTokenError.wrongBody.description)
        }
        return body
    }

    /// Refuses a batch too big or naming malformed streams, before anything of it is kept.
    private static func check(_ records: [PeerRecord], deleted: [String]) throws {
        guard records.count <= maxBatch, deleted.count <= maxBatch else { throw Problem.badRequest("at most \(maxBatch) records at once") }
        for r in records {
            guard StreamIdentifiers.isWellFormed(Substring(r.id)), r.keyDigest.count == 64,
                  r.owner.map({ StreamIdentifiers.isWellFormed(Substring($0)) }) ?? true,
                  r.thumbnail.map(StreamCatalog.isThumbnailVersion) ?? true,
                  (r.cohosts ?? []).count <= CoHost.maxPerStream,
                  (r.cohosts ?? []).allSatisfy({ StreamIdentifiers.isWellFormed(Substring($0.account)) && $0.keyDigest.count == 64 }),
                  r.onAir.map({ StreamIdentifiers.isWellFormed(Substring($0)) }) ?? true else {
                throw Problem.badRequest("malformed record \(r.id.prefix(64))")
            }
        }
        for id in deleted where !StreamIdentifiers.isWellFormed(Substring(id)) {
            throw Problem.badRequest("malformed stream id \(id.prefix(64))")
        }
    }

    package static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()

    package static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()
}

/// Records changed and streams deleted on one node, told to the others.
package struct RecordChanges: Codable, Equatable, Sendable {
    package var changed: [PeerRecord]
    package var deleted: [String]
}

/// A stream record as one node tells another: the key's digest, never the key.
package struct PeerRecord: Codable, Equatable, Sendable {
    package var id: String
    package var keyDigest: String
    package var title: String
    package var createdAt: Date
    package var ladder: String?
    package var x264Preset: String?
    /// Optional on the wire: nodes from before it sent none.
    package var keepSource: Bool?
    /// The owning account's id; none for the operator's streams (and from nodes before accounts).
    package var owner: String?
    /// Optional on the wire: nodes from before them sent none (public, unscheduled).
    package var description: String?
    package var tags: [String]?
    package var visibility: StreamRecord.Visibility?
    package var startsAt: Date?
    package var timeZone: String?
    package var allowGuests: Bool?
    /// The uploaded picture's version (its bytes go in their own request, `PeerThumbnails`).
    package var thumbnail: String?
    package var thumbnailChangedAt: Date?
    /// Co-hosts (their accounts and keys' digests) and the one on the air. Always sent (empty
    /// for none): absent, from a node before co-hosts, it says nothing of them.
    package var cohosts: [PeerCoHost]?
    package var onAir: String?
    /// Recording: the stream's own setting and its channel's (absent from nodes before them: recorded, kept).
    package var recorded: Bool?
    package var channelRecording: ChannelRecording?

    /// A co-host as one node tells another: the key's digest, never the key.
    package struct PeerCoHost: Codable, Equatable, Sendable {
        package var account: String
        package var keyDigest: String
        package var addedAt: Date
    }

    package init(_ r: StreamRecord) {
        (id, keyDigest, title, createdAt, ladder, x264Preset) = (r.id, r.keyDigest, r.title, r.createdAt, r.ladder, r.x264Preset)
        keepSource = r.keepSource ? true : nil
        owner = r.owner
        description = r.description.isEmpty ? nil : r.description
        tags = r.tags.isEmpty ? nil : r.tags
        visibility = r.visibility
        startsAt = r.startsAt
        timeZone = r.timeZone
        allowGuests = r.allowGuests ? true : nil
        thumbnail = r.thumbnail
        thumbnailChangedAt = r.thumbnailChangedAt
        cohosts = r.cohosts.map { PeerCoHost(account: $0.account, keyDigest: $0.keyDigest, addedAt: $0.addedAt) }
        onAir = r.onAir
        recorded = r.record
        channelRecording = r.channelRecording == ChannelRecording() ? nil : r.channelRecording
    }

    /// The record as this node keeps one another node placed here: without the key.
    package var record: StreamRecord {
        StreamRecord(id: id, key: nil, keyDigest: keyDigest, title: title, createdAt: createdAt, ladder: ladder, x264Preset: x264Preset,
                     keepSource: keepSource ?? false, owner: owner, description: description ?? "", tags: tags ?? [],
                     visibility: visibility ?? .public, startsAt: startsAt, timeZone: timeZone, allowGuests: allowGuests ?? false,
                     thumbnail: thumbnail, thumbnailChangedAt: thumbnailChangedAt,
                     cohosts: (cohosts ?? []).map { CoHost(account: $0.account, key: nil, keyDigest: $0.keyDigest, addedAt: $0.addedAt) },
                     onAir: onAir, record: recorded, channelRecording: channelRecording ?? ChannelRecording())
    }

    /// The record this answer gives for `query`: with the key when the asker presented it (and
    /// it matches), nil when the answer is not for the question.
    package func record(for query: StreamCatalog.Query) -> StreamRecord? {
        switch query {
        case .id(let asked):
            return asked == id ? record : nil
        case .key(let key):
            var r = record
            // A co-host's key finds the record too; only the stream's own key is the record's key.
            guard let publisher = r.publisher(key: key) else { return nil }
            if publisher == .host { r.key = key }
            return r
        }
    }
}

/// Lets through a request carrying a cluster token made for it (purpose, method, path and
/// query); marks the caller as that node. A token is checked before anything of the body is
/// read; the route checks the body against the digest the token carries.
package struct ClusterTokenMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    let tokens: ClusterTokens
    let purpose: ClusterPurpose

    package init(tokens: ClusterTokens, purpose: ClusterPurpose) {
        self.tokens = tokens
        self.purpose = purpose
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = request.headers[.streamTubeClusterToken] else { throw Problem(.unauthorized, "missing cluster token") }
        let grant: ClusterGrant
        do throws(ClusterTokenError) {
            grant = try tokens.verify(token, for: ClusterRequest(purpose, request.method.rawValue, request.uri.description))
        } catch {
            context.logger.warning("cluster token refused", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            throw Problem(.unauthorized, error.description)
        }
        var context = context
        context.caller = .node(id: grant.from, purpose: purpose.rawValue, scope: grant.scope, bodyDigest: grant.bodyDigest)
        return try await next(request, context)
    }
}
