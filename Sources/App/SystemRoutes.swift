// SystemRoutes: `/healthz` (alive), `/healthz/ready` (worth routing to) and `/metrics`.
import Cluster
import Foundation
import HTTPSupport
import Hummingbird
import Live
import NodeMetrics
import NIOCore
import Origin
import Prometheus
import Synchronization
import Transcode

package struct SystemRoutes: Sendable {
    let streams: LiveStreams
    let info: NodeInfo
    let metrics: PrometheusCollectorRegistry
    let readiness: NodeReadiness
    /// The folders the node writes, by the name their disk gauges carry (data, cache, recordings).
    let folders: [(name: String, path: String)]
    /// The streams (and their renditions) that have per-stream gauges, so an ended one's are taken out.
    private let gauged = GaugedStreams()

    init(streams: LiveStreams, info: NodeInfo, metrics: PrometheusCollectorRegistry, readiness: NodeReadiness,
         folders: [(name: String, path: String)]) {
        self.streams = streams
        self.info = info
        self.metrics = metrics
        self.readiness = readiness
        self.folders = folders
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/healthz") { _, _ -> Response in
            try Responses.json(HealthResponse(status: "ok", nodeID: info.nodeID, region: info.region,
                                              uptimeSeconds: Int(Date().timeIntervalSince(info.startedAt)),
                                              streamsPublishing: streams.publishingCount, media: MediaLibraries.versions))
        }
        routes.get("/healthz/ready") { _, _ -> Response in
            let state = readiness.state
            let body = ReadinessResponse(ready: state == .ready, reason: state.reason, nodeID: info.nodeID)
            var response = try Responses.json(body)
            if state != .ready {
                response.status = .serviceUnavailable
                response.headers[.retryAfter] = "2"
            }
            response.headers[.cacheControl] = "no-store"
            return response
        }
        // Public: the node's own series. Per-stream series name streams, which may be private:
        // those are at /api/metrics, behind the operator token.
        routes.get("/metrics") { _, _ -> Response in
            scrape(perStream: false)
        }
        return routes
    }

    /// The Prometheus text; without the series labelled by stream unless `perStream`.
    func scrape(perStream: Bool) -> Response {
        recordStreamGauges()
        var bytes = metrics.emitToBuffer()
        if !perStream {
            let text = String(decoding: bytes, as: UTF8.self)
            bytes = Array(text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.contains("stream=\"") }.joined(separator: "\n").utf8)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Per-stream gauges, set from the streams' health as the scrape reads them; a stream no
    /// longer live here loses its series. And the gauges read from the system: disks, readiness.
    func recordStreamGauges() {
        NodeMetrics.streamsPublishing.record(streams.publishingCount)
        NodeMetrics.ready.record(readiness.state == .ready ? 1 : 0)
        for folder in folders {
            var fs = statvfs()
            guard statvfs(folder.path, &fs) == 0 else { continue }
            NodeMetrics.diskFreeBytes(folder: folder.name).record(Int(fs.f_bavail) * Int(fs.f_frsize))
            NodeMetrics.diskSizeBytes(folder: folder.name).record(Int(fs.f_blocks) * Int(fs.f_frsize))
        }
        var live: [String: Set<String>] = [:]
        for (id, stream) in streams.all {
            let h = stream.health
            guard h.state == .live else { continue }
            live[id] = Set(h.outputs.compactMap { $0.lastSegmentBitrate == nil ? nil : $0.rendition })
            NodeMetrics.Stream.inputBitrate(id).record(h.inputBitrate)
            NodeMetrics.Stream.frameRate(id).record(h.frameRate)
            NodeMetrics.Stream.droppedFrames(id).record(h.droppedFrames)
            if let k = h.keyframeInterval { NodeMetrics.Stream.keyframeInterval(id).record(k) }
            if let d = h.audioVideoDriftMs { NodeMetrics.Stream.avDrift(id).record(d) }
            if let e = h.encoderSpeed { NodeMetrics.Stream.encoderSpeed(id).record(e) }
            for o in h.outputs {
                if let b = o.lastSegmentBitrate { NodeMetrics.Stream.renditionBitrate(id, o.rendition).record(b) }
            }
        }
        // What had series at the last scrape and has not now: a stream that ended here (all its
        // series go), or a rendition it no longer makes (shed: that series goes).
        let before = gauged.replace(with: live)
        for (id, renditions) in before {
            guard let now = live[id] else {
                NodeMetrics.Stream.remove(id, renditions: Array(renditions))
                continue
            }
            for r in renditions.subtracting(now) { NodeMetrics.Stream.renditionBitrate(id, r).destroy() }
        }
    }
}

/// The streams (and renditions) given series at the last scrape.
final class GaugedStreams: Sendable {
    private let state = Mutex<[String: Set<String>]>([:])
    /// Keeps `now`; returns what was kept before.
    func replace(with now: [String: Set<String>]) -> [String: Set<String>] {
        state.withLock { g in
            defer { g = now }
            return g
        }
    }
}

/// `/healthz/ready`: 200 when ready, 503 with the reason otherwise.
package struct ReadinessResponse: Codable, Equatable, Sendable {
    package var ready: Bool
    package var reason: String?
    package var nodeID: String
}
