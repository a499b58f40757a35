// OperatorRoutes: the operator API behind the operator token — streams (made, listed,
// renamed), their live health, and the cluster as this node sees it.
import Catalog
import Cluster
import Foundation
import Gossip
import HTTPSupport
import Hummingbird
import Live
import Logging
import Origin

package struct OperatorRoutes: Sendable {
    let streams: LiveStreams
    let thumbnails: Thumbnails
    let cluster: ClusterView
    let info: NodeInfo
    let system: SystemRoutes
    /// Every playback token is made through it.
    let playback: any PlaybackIssuer
    /// The recordings the nodes report.
    let recordings: RecordingStore?
    let logger: Logger
    /// The copies of a stream's recordings its holders' databases know (nodes with databases of
    /// their own each know only their own copies); nil: this node's database knows them all.
    var peerRecordings: (@Sendable (String) async -> [RecordingCopy])? = nil
    /// What people set on recordings (titles, visibility, trims, deletions), when the node has it.
    var recordingService: RecordingService? = nil

    var catalog: StreamCatalog { streams.catalog }

    /// Mounted at `/api`, behind `OperatorAuthMiddleware`.
    package func collection(token: String) -> RouteCollection<NodeRequestContext> {
        let api = RouteCollection(context: NodeRequestContext.self)
        api.add(middleware: OperatorAuthMiddleware(token: token))
        api.post("streams") { request, context -> Response in
            let body: CreateStreamRequest
            do { body = try await request.decode(as: CreateStreamRequest.self, context: context) } catch {
                throw Problem.badRequest("expected a JSON body like {\"title\": \"My event\"} (optional: \"ladder\", \"x264Preset\", "
                                         + "\"keepSource\", \"description\", \"tags\", \"visibility\", \"startsAt\", \"timeZone\")")
            }
            let record: StreamRecord
            do {
                record = try await catalog.create(title: body.title, ladder: body.ladder, x264Preset: body.x264Preset,
                                                  keepSource: body.keepSource ?? false, details: try body.details()) { r in
                    _ = try streams.transcodeSettings(for: r)
                }
            } catch let e as StreamError {
                throw Problem.badRequest(e.description)
            }
            logger.info("stream created", metadata: ["stream": "\(record.id)"])
            return try Responses.json(describe(record, request: request), status: .created)
        }
        api.get("streams") { request, _ -> Response in
            try Responses.json(catalog.all.map { describe($0, request: request) })
        }
        api.get("streams/:id") { request, context -> Response in
            try Responses.json(describe(try await LiveRoutes.stream(context, in: catalog, here: true), request: request))
        }
        api.patch("streams/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            let body: UpdateStreamRequest
            do { body = try await request.decode(as: UpdateStreamRequest.self, context: context) } catch {
                throw Problem.badRequest("expected a JSON body like {\"title\": \"New title\"} (or \"description\", \"tags\", "
                                         + "\"visibility\", \"startsAt\", \"timeZone\")")
            }
            let record: StreamRecord?
            do {
                record = StreamIdentifiers.isWellFormed(Substring(id)) ? try await catalog.update(id: id, try body.details()) : nil
            } catch let e as StreamError {
                throw Problem.badRequest(e.description)
            }
            guard let record else { throw Problem.notFound("no stream \(id)") }
            logger.info("stream changed", metadata: ["stream": "\(record.id)"])
            return try Responses.json(describe(record, request: request))
        }
        api.delete("streams/:id") { _, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog, here: true)
            _ = try await catalog.delete(id: record.id)
            logger.info("stream deleted", metadata: ["stream": "\(record.id)"])
            return Response(status: .noContent)
        }
        api.post("streams/:id/key") { request, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog, here: true)
            guard let rotated = try await catalog.rotateKey(id: record.id) else { throw Problem.notFound("no stream \(record.id)") }
            logger.info("stream key replaced", metadata: ["stream": "\(record.id)"])
            return try Responses.json(describe(rotated, request: request))
        }
        api.get("streams/:id/health") { _, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog, here: true)
            return try Responses.json(streams.existing(id: record.id)?.health ?? LiveStream(id: record.id).health)
        }
        api.put("streams/:id/thumbnail") { request, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog)
            return try await ThumbnailUpload.put(request, id: record.id, thumbnails: thumbnails)
        }
        api.delete("streams/:id/thumbnail") { _, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog)
            return try await ThumbnailUpload.delete(id: record.id, thumbnails: thumbnails)
        }
        // A playback token for scripts and tests: `?viewer=` (default "operator"), `?ttl=` seconds.
        api.get("streams/:id/playback-token") { request, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog)
            let q = request.uri.queryParameters
            let viewer = q.get("viewer") ?? "operator"
            guard StreamIdentifiers.isWellFormed(Substring(viewer)) else {
                throw Problem.badRequest("viewer must be 1 to 64 letters, digits, '-' or '_'")
            }
            let lifetime = try Self.lifetime(q.get("ttl"))
            guard let pass = await playback.issue(for: record, to: .operator(viewer: viewer), lifetime: lifetime) else {
                throw Problem(.forbidden, "no playback token for this stream")
            }
            return try Responses.json(playbackToken(pass, record, request: request), cache: "no-store")
        }
        api.get("streams/:id/recordings") { request, context -> Response in
            let record = try await LiveRoutes.stream(context, in: catalog)
            if let service = recordingService {
                // Oldest first, deleted ones left out, with what people set on them.
                return try Responses.json(try await service.items(of: [record], holders: peerRecordings).reversed()
                    .map { service.describe($0, base: baseURL(request).base) })
            }
            var list = try await recordings?.recordings(stream: record.id) ?? []
            if let peerRecordings, let recordings {
                let copies = PeerRecordings.merged(try await recordings.copies(stream: record.id), await peerRecordings(record.id))
                list = RecordingStore.summaries(copies)
            }
            return try Responses.json(list.map { describe($0, request: request) })
        }
        api.get("metrics") { _, _ -> Response in
            system.scrape(perStream: true)
        }
        api.get("cluster") { _, _ -> Response in
            try Responses.json(clusterResponse(cluster.snapshot))
        }
        return api
    }

    /// `http://host[:port]` as the caller reached this node (or `--public-host`).
    func baseURL(_ request: Request) -> (host: String, base: String) {
        let authority = request.head.authority ?? "127.0.0.1:\(info.httpPort)"
        let host = info.publicHost ?? Self.hostOnly(authority)
        let port = authority.split(separator: "]").last.flatMap { $0.split(separator: ":").count > 1 ? Int($0.split(separator: ":").last!) : nil } ?? 80
        return (host, port == 80 ? "http://\(host)" : "http://\(host):\(port)")
    }

    func describe(_ summary: RecordingSummary, request: Request) -> RecordingResponse {
        let r = summary.recording
        let base = baseURL(request).base + "/recordings/" + r.id
        return RecordingResponse(id: r.id, state: r.state, reason: r.reason, durationSeconds: (r.durationSeconds * 1000).rounded() / 1000,
                                 playlistURL: base + "/master.m3u8", downloadURL: base + "/download.mp4", startedAt: r.startedAt,
                                 endedAt: r.endedAt, bytes: r.bytes, renditions: r.renditions, nodes: summary.nodes)
    }

    func describe(_ r: StreamRecord, request: Request) -> StreamResponse {
        let (host, base) = baseURL(request)
        return StreamResponse(
            id: r.id, title: r.title, key: r.key,
            rtmpURL: r.key.map { "rtmp://\(host):\(info.rtmpPort)/live/\($0)" },
            watchURL: "\(base)/watch/\(r.id)",
            playlistURL: "\(base)/live/\(r.id)/master.m3u8",
            createdAt: r.createdAt, ladder: r.ladder, x264Preset: r.x264Preset, keepSource: r.keepSource ? true : nil,
            owner: r.owner, live: streams.existing(id: r.id)?.status, description: r.description, tags: r.tags,
            visibility: r.visibility.rawValue, startsAt: r.startsAt, timeZone: r.timeZone, allowGuests: r.allowGuests ? true : nil,
            recorded: r.isRecorded)
    }

    /// What a playback-token route answers: the token, the playlist URL carrying it (for ffplay,
    /// VLC, Safari) and when it expires.
    func playbackToken(_ pass: PlaybackPass, _ record: StreamRecord, request: Request) -> PlaybackTokenResponse {
        PlaybackTokenResponse(token: pass.token, playlistURL: describe(record, request: request).playlistURL + "?token=" + pass.token,
                              expiresAt: pass.expiresAt)
    }

    /// A `?ttl=` in seconds, within what tokens allow; nil for none.
    static func lifetime(_ ttl: String?) throws -> Int? {
        guard let ttl else { return nil }
        guard let seconds = Int(ttl), PlaybackTokens.lifetimes.contains(seconds) else {
            throw Problem.badRequest("ttl must be a whole number of seconds from \(PlaybackTokens.lifetimes.lowerBound) to \(PlaybackTokens.lifetimes.upperBound)")
        }
        return seconds
    }

    static func hostOnly(_ authority: String) -> String {
        if authority.hasPrefix("[") { return String(authority.prefix { $0 != "]" }) + "]" }
        return String(authority.split(separator: ":").first ?? Substring(authority))
    }

    /// Members, their state and coordinates, and how many streams the ring gives each.
    func clusterResponse(_ v: ClusterView.Snapshot) -> ClusterResponse {
        let assignment = v.ring.assign(catalog.all.map(\.id))
        let members = v.members.map { m in
            ClusterResponse.MemberRow(
                id: m.id.rawValue, status: "\(m.status)", incarnation: m.incarnation, region: m.metadata.region,
                capacity: m.metadata.capacity, load: m.metadata.load, softwareVersion: m.metadata.softwareVersion,
                gossipAddress: m.metadata.gossipAddress.description, httpAddress: m.metadata.httpAddress.description,
                rtmpAddress: m.metadata.rtmpAddress.description, streamsOwned: assignment.loads[m.id, default: 0],
                isSelf: m.id == v.localID,
                coordinate: m.coordinate.map { .init(vector: $0.vector, height: $0.height, error: $0.error, adjustment: $0.adjustment) },
                rttMs: v.rtt[m.id].map { $0.seconds * 1000 })
        }
        var counts: [String: Int] = [:]
        for m in v.members { counts["\(m.status)", default: 0] += 1 }
        return ClusterResponse(
            localID: v.localID.rawValue, members: members, counts: counts, localHealth: v.healthScore,
            failureDetectionBoundSeconds: v.failureDetectionBound?.seconds ?? 0,
            packets: .init(sent: v.stats.packetsSent, received: v.stats.packetsReceived, dropped: v.stats.totalDropped),
            bytes: .init(sent: v.stats.bytesSent, received: v.stats.bytesReceived))
    }
}
