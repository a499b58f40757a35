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
        routes.get("/metrics") { _, _ -> Response in
            recordStreamGauges()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        }
        return routes
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
