// SystemRoutes: `/healthz` and `/metrics`.
import Cluster
import Foundation
import HTTPSupport
import Hummingbird
import Live
import NodeMetrics
import NIOCore
import Origin
import Prometheus
import Transcode

package struct SystemRoutes: Sendable {
    let streams: LiveStreams
    let info: NodeInfo
    let metrics: PrometheusCollectorRegistry

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/healthz") { _, _ -> Response in
            try Responses.json(HealthResponse(status: "ok", nodeID: info.nodeID, region: info.region,
                                              uptimeSeconds: Int(Date().timeIntervalSince(info.startedAt)),
                                              streamsPublishing: streams.publishingCount, media: MediaLibraries.versions))
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

    /// Per-stream gauges, set from the streams' health as the scrape reads them.
    func recordStreamGauges() {
        NodeMetrics.streamsPublishing.record(streams.publishingCount)
        for (id, live) in streams.all {
            let h = live.health
            guard h.state == .live else { continue }
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
    }
}
