// HTTP routes: the operator API, health and metrics, LL-HLS delivery and the watch page.
// Routes are thin: they parse, ask the registry or the stream's live state, and encode.
import Foundation
import Gossip
import Hummingbird
import Logging
import NIOCore
import Origin
import Metrics
import Prometheus

struct NodeInfo: Sendable {
    var nodeID: String
    var region: String
    var rtmpPort: Int
    var httpPort: Int
    var publicHost: String?
    var startedAt = Date()
}

/// Guards the operator API with `Authorization: Bearer <admin token>`.
struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), Array(token.utf8)) else {
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer realm=\"streamtube\""
            headers[.contentType] = "application/json"
            return Response(status: .unauthorized, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"missing or wrong admin token: send Authorization: Bearer <token>"}}"#)))
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

struct CreateStreamRequest: Decodable {
    var title: String
    /// Optional: this stream's ladder ("name:height:kbps[:maxkbps],..." or "none") and x264 preset.
    var ladder: String?
    var x264Preset: String?
}

struct StreamResponse: ResponseEncodable {
    var id: String
    var title: String
    var key: String
    var rtmpURL: String
    var watchURL: String
    var playlistURL: String
    var createdAt: Date
    var ladder: String?
    var x264Preset: String?
    var live: LiveStreamStatus?
}

enum HTTPRoutes {
    static let playlistType = "application/vnd.apple.mpegurl"

    static func build(registry: StreamRegistry, info: NodeInfo, adminToken: String,
                      metrics: PrometheusCollectorRegistry, cluster: ClusterView, edge: EdgeProxy? = nil,
                      replicaAuth: RelayAuth? = nil, logger: Logger) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: CORSMiddleware(allowOrigin: .all, allowHeaders: [.accept, .authorization, .contentType, .origin, .range],
                                              allowMethods: [.get, .head, .post, .options], maxAge: .seconds(3600)))

        router.get("/healthz") { _, _ -> Response in
            let body: [String: Any] = [
                "status": "ok", "nodeID": info.nodeID, "region": info.region,
                "uptimeSeconds": Int(Date().timeIntervalSince(info.startedAt)),
                "streamsPublishing": registry.liveCount, "media": MediaLibraries.versions,
            ]
            return json(body)
        }
        router.get("/metrics") { _, _ -> Response in
            Metrics.Gauge(label: "streamtube_streams_publishing").record(registry.liveCount)
            for (id, live) in registry.liveStreams {
                let h = live.health
                guard h.state == "live" else { continue }
                let stream = [("stream", id)]
                Metrics.Gauge(label: "streamtube_stream_input_bitrate_bps", dimensions: stream).record(h.inputBitrate)
                Metrics.Gauge(label: "streamtube_stream_frame_rate", dimensions: stream).record(h.frameRate)
                Metrics.Gauge(label: "streamtube_stream_dropped_frames", dimensions: stream).record(h.droppedFrames)
                if let k = h.keyframeInterval { Metrics.Gauge(label: "streamtube_stream_keyframe_interval_seconds", dimensions: stream).record(k) }
                if let d = h.audioVideoDriftMs { Metrics.Gauge(label: "streamtube_stream_av_drift_ms", dimensions: stream).record(d) }
                if let e = h.encoderSpeed { Metrics.Gauge(label: "streamtube_stream_encoder_speed", dimensions: stream).record(e) }
                for o in h.outputs {
                    if let b = o.lastSegmentBitrate {
                        Metrics.Gauge(label: "streamtube_rendition_bitrate_bps", dimensions: stream + [("rendition", o.rendition)]).record(b)
                    }
                }
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        }

        // Operator API.
        let api = router.group("api").add(middleware: AdminAuthMiddleware(token: adminToken))
        api.post("streams") { request, context -> EditedResponse<StreamResponse> in
            let body: CreateStreamRequest
            do { body = try await request.decode(as: CreateStreamRequest.self, context: context) } catch {
                throw HTTPError(.badRequest, message: "expected a JSON body like {\"title\": \"My event\"} (optional: \"ladder\", \"x264Preset\")")
            }
            let record: StreamRecord
            do { record = try await registry.create(title: body.title, ladder: body.ladder, x264Preset: body.x264Preset) } catch let e as StreamError {
                throw HTTPError(.badRequest, message: e.description)
            }
            logger.info("stream created", metadata: ["stream": "\(record.id)"])
            return EditedResponse(status: .created, response: describe(record, request: request, info: info, registry: registry))
        }
        api.get("streams") { request, _ -> [StreamResponse] in
            registry.all.map { describe($0, request: request, info: info, registry: registry) }
        }
        api.get("cluster") { _, _ -> Response in
            json(clusterJSON(cluster.snapshot, registry: registry))
        }
        api.get("streams/:id") { request, context -> StreamResponse in
            let id = try context.parameters.require("id")
            guard let record = registry.record(id: id) else { throw HTTPError(.notFound, message: "no stream \(id)") }
            return describe(record, request: request, info: info, registry: registry)
        }

        // A stream's origin replicating to this node, its standby.
        if let replicaAuth {
            router.post("\(Replicator.path):id") { request, context -> Response in
                let id = try context.parameters.require("id")
                guard let key = header(request, Replicator.authHeader.lowercased()), replicaAuth.verify(key) == id else {
                    return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: "bad replica key\n")))
                }
                guard let record = await registry.find(id: id), let live = registry.live(id: record.id) else { return notFound("no stream \(id)") }
                let body = try await request.body.collect(upTo: 256 << 20)  // a snapshot of a whole ladder's window fits
                do throws(ReplicaError) {
                    for batch in try Replicator.decodeBundle(body) { try live.applyReplica(batch) }
                } catch {
                    switch error {
                    case .malformed: return badRequest("\(error)")
                    case .outOfSequence, .publishingHere:
                        return Response(status: .conflict, body: .init(byteBuffer: ByteBuffer(string: "\(error)\n")))
                    }
                }
                return Response(status: .noContent)
            }
        }

        // Another node asking for a stream record it does not have (this node's own only).
        if let replicaAuth {
            router.get(RouterPath(PeerRecords.path)) { request, _ -> Response in
                guard let key = header(request, Replicator.authHeader.lowercased()), replicaAuth.verify(key) == PeerRecords.scope else {
                    return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: "bad cluster key\n")))
                }
                let q = request.uri.queryParameters
                let record = q.get("id").flatMap { registry.record(id: $0) } ?? q.get("key").flatMap { registry.record(key: $0) }
                guard let record, let data = try? PeerRecords.encoder.encode(record) else { return notFound("no such stream here") }
                return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                                body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
        }

        // LL-HLS delivery.
        router.get("/live/:id/master.m3u8") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamRegistry.isWellFormedToken(Substring(id)), let record = await registry.find(id: id) else {
                return notFound("no stream \(id)")
            }
            if let edge, let redirect = redirectToEdge(edge, request: request) { return redirect }
            if let edge, let upstream = await fromOrigin(edge, registry, record.id, request, query: nil, immutable: false) {
                return upstream
            }
            noteEdgeRequest(request)
            guard let live = registry.live(id: record.id) else { return notFound("no stream \(id)") }
            let renditions = live.renditions
            guard !renditions.isEmpty else { return notFound("stream \(id) is offline") }
            var lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
            for r in renditions {
                var attrs = "BANDWIDTH=\(r.bandwidth),AVERAGE-BANDWIDTH=\(r.averageBandwidth),CODECS=\"\(r.codecs)\""
                if let w = r.width, let h = r.height { attrs += ",RESOLUTION=\(w)x\(h)" }
                if let f = r.frameRate { attrs += ",FRAME-RATE=\(String(format: "%.3f", f))" }
                lines.append("#EXT-X-STREAM-INF:\(attrs)")
                lines.append("\(r.name)/index.m3u8")
            }
            return text(lines.joined(separator: "\n") + "\n", type: playlistType, cache: "public, max-age=1")
        }
        router.get("/live/:id/:rendition/:file") { request, context -> Response in
            let id = try context.parameters.require("id")
            let rendition = try context.parameters.require("rendition")
            let file = try context.parameters.require("file")
            guard StreamRegistry.isWellFormedToken(Substring(rendition)), StreamRegistry.isWellFormedToken(Substring(id)),
                  let record = await registry.find(id: id) else { return notFound("no such rendition") }
            if let edge, let upstream = await fromOrigin(edge, registry, record.id, request, query: request.uri.query,
                                                         immutable: file != "index.m3u8") {
                return upstream
            }
            noteEdgeRequest(request)
            guard let live = registry.live(id: record.id), live.hasRendition(rendition) else { return notFound("no such rendition") }
            if file == "index.m3u8" { return try await mediaPlaylist(live, rendition: rendition, request: request) }
            return try await mediaObject(live, rendition: rendition, file: file)
        }
        router.get("/api/route/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamRegistry.isWellFormedToken(Substring(id)), let record = await registry.find(id: id) else {
                return json(["error": ["message": "no stream \(id)"]], status: .notFound)
            }
            let hint = regionHint(request)
            guard let edge, let member = edge.router.chooseEdge(regionHint: hint) else {
                let authority = request.head.authority ?? "127.0.0.1:\(info.httpPort)"
                return json(["stream": record.id, "edge": info.nodeID, "region": info.region,
                             "watchURL": "http://\(authority)/watch/\(record.id)",
                             "playlistURL": "http://\(authority)/live/\(record.id)/master.m3u8"])
            }
            let snap = edge.router.view.snapshot
            var body: [String: Any] = [
                "stream": record.id, "edge": member.id.rawValue, "region": member.metadata.region,
                "watchURL": "http://\(member.metadata.httpAddress)/watch/\(record.id)",
                "playlistURL": "http://\(member.metadata.httpAddress)/live/\(record.id)/master.m3u8",
                "load": member.metadata.load,
            ]
            if let placement = edge.router.placement(of: record.id) {
                body["origin"] = placement.owner.id.rawValue
                body["standbys"] = placement.standbys.map(\.id.rawValue)  // the first holds the replica
            }
            if let rtt = member.id == snap.localID ? Duration.zero : snap.rtt[member.id] { body["rttMs"] = rtt.seconds * 1000 }
            return json(body)
        }
        api.get("streams/:id/health") { _, context -> Response in
            let id = try context.parameters.require("id")
            guard registry.record(id: id) != nil else { throw HTTPError(.notFound, message: "no stream \(id)") }
            let health = registry.existingLive(id: id)?.health
            let data = try JSONEncoder().encode(health ?? LiveStream(id: id).health)
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }

        router.get("/watch/:id") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamRegistry.isWellFormedToken(Substring(id)), let record = await registry.find(id: id) else {
                return Response(status: .notFound, headers: [.contentType: "text/html; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: WatchPage.notFound)))
            }
            if let edge, let redirect = redirectToEdge(edge, request: request) { return redirect }
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: WatchPage.render(id: record.id, title: record.title))))
        }
        return router
    }

    /// The viewer's region, if it says: `?region=` or the `X-StreamTube-Region` header.
    static func regionHint(_ request: Request) -> String? {
        if let r = request.uri.queryParameters.get("region"), !r.isEmpty { return r }
        return header(request, "x-streamtube-region").flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A header by its lower-case name.
    static func header(_ request: Request, _ name: String) -> String? {
        request.headers.first { $0.name.canonicalName == name }?.value
    }

    /// Sends a viewer to the nearest healthy edge unless that is this node (or the viewer
    /// was sent here already: `routed=1`).
    static func redirectToEdge(_ edge: EdgeProxy, request: Request) -> Response? {
        guard request.uri.queryParameters.get("routed") == nil,
              header(request, EdgeProxy.edgeHeader.lowercased()) == nil,  // an edge asking its origin
              let member = edge.router.chooseEdge(regionHint: regionHint(request)),
              member.id.rawValue != edge.localID else { return nil }
        var query = request.uri.query.map { $0 + "&" } ?? ""
        query += "routed=1"
        Counter(label: "streamtube_viewer_redirects_total").increment()
        return Response(status: .found, headers: [.location: "http://\(member.metadata.httpAddress)\(request.uri.path)?\(query)",
                                                  .cacheControl: "no-cache", .accessControlAllowOrigin: "*"])
    }

    /// Counts what edges ask of this node as an origin.
    /// For a stream owned elsewhere: the origin's answer through the edge, or nil when this
    /// node answers itself — it is the stream's owner, or it holds the stream's replica (it is
    /// the standby) and a node whose origin failed asks it, or the origin cannot be reached.
    static func fromOrigin(_ edge: EdgeProxy, _ registry: StreamRegistry, _ id: String, _ request: Request,
                           query: String?, immutable: Bool) async -> Response? {
        guard !edge.router.ownsLocally(id) else { return nil }
        let replica = registry.existingLive(id: id).flatMap { $0.hasMedia ? $0 : nil }
        if replica != nil, header(request, EdgeProxy.edgeHeader.lowercased()) != nil { return nil }
        let upstream = await edge.serve(streamID: id, path: request.uri.path, query: query, immutable: immutable)
        return upstream.status == .serviceUnavailable && replica != nil ? nil : upstream
    }

    static func noteEdgeRequest(_ request: Request) {
        if header(request, EdgeProxy.edgeHeader.lowercased()) != nil {
            Counter(label: "streamtube_origin_edge_requests_total").increment()
        }
    }

    /// Members, their state and coordinates, and how many streams the ring gives each.
    static func clusterJSON(_ v: ClusterView.Snapshot, registry: StreamRegistry) -> [String: Any] {
        let assignment = v.ring.assign(registry.all.map(\.id))
        let members: [[String: Any]] = v.members.map { m in
            var row: [String: Any] = [
                "id": m.id.rawValue, "status": "\(m.status)", "incarnation": m.incarnation,
                "region": m.metadata.region, "capacity": m.metadata.capacity, "load": m.metadata.load,
                "softwareVersion": m.metadata.softwareVersion, "gossipAddress": m.metadata.gossipAddress.description,
                "httpAddress": m.metadata.httpAddress.description, "rtmpAddress": m.metadata.rtmpAddress.description,
                "streamsOwned": assignment.loads[m.id, default: 0], "self": m.id == v.localID,
            ]
            if let c = m.coordinate {
                row["coordinate"] = ["vector": c.vector, "height": c.height, "error": c.error, "adjustment": c.adjustment]
            }
            if let rtt = v.rtt[m.id] { row["rttMs"] = rtt.seconds * 1000 }
            return row
        }
        var counts: [String: Int] = [:]
        for m in v.members { counts["\(m.status)", default: 0] += 1 }
        return [
            "self": v.localID.rawValue, "members": members, "counts": counts, "localHealth": v.healthScore,
            "failureDetectionBoundSeconds": v.failureDetectionBound?.seconds ?? 0,
            "packets": ["sent": v.stats.packetsSent, "received": v.stats.packetsReceived, "dropped": v.stats.totalDropped],
            "bytes": ["sent": v.stats.bytesSent, "received": v.stats.bytesReceived],
        ]
    }

    static func liveStream(_ id: String, _ registry: StreamRegistry) -> LiveStream? {
        guard StreamRegistry.isWellFormedToken(Substring(id)) else { return nil }
        return registry.live(id: id)
    }

    /// Media playlist, with LL-HLS blocking reload (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip`).
    static func mediaPlaylist(_ live: LiveStream, rendition: String, request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let msn = q.get("_HLS_msn").map { Int($0) }
        let part = q.get("_HLS_part").map { Int($0) }
        let skip = q.get("_HLS_skip").map { $0 == "YES" || $0 == "v2" } ?? false
        if case .some(nil) = msn { return badRequest("_HLS_msn must be a whole number") }
        if case .some(nil) = part { return badRequest("_HLS_part must be a whole number") }
        if part != nil && msn == nil { return badRequest("_HLS_part needs _HLS_msn") }
        if let m = msn ?? nil {
            let target: LiveTarget = (part ?? nil).map { .part(sequence: m, index: $0) } ?? .segment(sequence: m)
            if m < 0 || (part ?? nil).map({ $0 < 0 }) == true { return badRequest("_HLS_msn and _HLS_part cannot be negative") }
            guard live.isWithinReach(target, rendition: rendition) else { return badRequest("_HLS_msn \(m) is more than two segments ahead of the live edge") }
            let timeout = Duration.milliseconds(Int(live.settings.segmentTarget * 3 * 1000))
            let ok = await live.wait(for: target, rendition: rendition, timeout: timeout)
            if !ok && live.isLive(rendition: rendition) {
                return Response(status: .serviceUnavailable, headers: [.cacheControl: "no-cache", .retryAfter: "1"],
                                body: .init(byteBuffer: ByteBuffer(string: "the requested part did not arrive in time\n")))
            }
        }
        guard let body = live.mediaPlaylist(rendition: rendition, skip: skip) else { return notFound("stream is offline") }
        let ended = !live.isLive(rendition: rendition)
        return text(body, type: playlistType, cache: ended ? "public, max-age=10" : "public, max-age=1")
    }

    /// Init segments, segments and parts: immutable. The next part (the preload hint) is waited for.
    static func mediaObject(_ live: LiveStream, rendition: String, file: String) async throws -> Response {
        if file.hasPrefix("init"), file.hasSuffix(".mp4"), let v = Int(file.dropFirst(4).dropLast(4)) {
            guard let bytes = live.initSegment(rendition: rendition, version: v) else { return notFound("no such init segment") }
            return media(bytes)
        }
        if file.hasPrefix("seg"), file.hasSuffix(".m4s"), let n = Int(file.dropFirst(3).dropLast(4)) {
            guard let bytes = live.segment(rendition: rendition, sequence: n) else { return notFound("no such segment") }
            return media(bytes)
        }
        if file.hasPrefix("part"), file.hasSuffix(".m4s") {
            let numbers = file.dropFirst(4).dropLast(4).split(separator: ".", omittingEmptySubsequences: false)
            guard numbers.count == 2, let n = Int(numbers[0]), let i = Int(numbers[1]), n >= 0, i >= 0 else {
                return notFound("no such part")
            }
            if let bytes = live.part(rendition: rendition, sequence: n, index: i) { return media(bytes) }
            // A request for the part that is being made now (the preload hint) waits for it.
            if live.isWithinReach(.part(sequence: n, index: i), rendition: rendition) {
                let timeout = Duration.milliseconds(Int(live.settings.partTarget * 6 * 1000))
                if await live.wait(for: .part(sequence: n, index: i), rendition: rendition, timeout: timeout), let bytes = live.part(rendition: rendition, sequence: n, index: i) {
                    return media(bytes)
                }
            }
            return notFound("no such part")
        }
        return notFound("no such file")
    }

    static func describe(_ r: StreamRecord, request: Request, info: NodeInfo, registry: StreamRegistry) -> StreamResponse {
        let authority = request.head.authority ?? "127.0.0.1:\(info.httpPort)"
        let host = info.publicHost ?? hostOnly(authority)
        let port = authority.split(separator: "]").last.flatMap { $0.split(separator: ":").count > 1 ? Int($0.split(separator: ":").last!) : nil } ?? 80
        let base = port == 80 ? "http://\(host)" : "http://\(host):\(port)"
        return StreamResponse(
            id: r.id, title: r.title, key: r.key,
            rtmpURL: "rtmp://\(host):\(info.rtmpPort)/live/\(r.key)",
            watchURL: "\(base)/watch/\(r.id)",
            playlistURL: "\(base)/live/\(r.id)/master.m3u8",
            createdAt: r.createdAt, ladder: r.ladder, x264Preset: r.x264Preset,
            live: registry.existingLive(id: r.id)?.status)
    }

    static func hostOnly(_ authority: String) -> String {
        if authority.hasPrefix("[") { return String(authority.prefix { $0 != "]" }) + "]" }
        return String(authority.split(separator: ":").first ?? Substring(authority))
    }

    static func media(_ bytes: [UInt8]) -> Response {
        media(ByteBuffer(bytes: bytes))
    }

    static func media(_ bytes: ByteBuffer) -> Response {
        Response(status: .ok,
                 headers: [.contentType: "video/mp4", .cacheControl: "public, max-age=31536000, immutable",
                           .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: bytes))
    }

    static func text(_ body: String, type: String, cache: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: cache, .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func notFound(_ message: String) -> Response {
        Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-cache",
                                              .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    static func badRequest(_ message: String) -> Response {
        Response(status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-cache",
                                                .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
