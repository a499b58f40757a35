// Every metric a node exports, declared once. The values are made on first use, after
// `MetricsSystem.bootstrap` (the `serve` command bootstraps before anything else runs).
import Metrics

package enum NodeMetrics {
    /// Makes the series dashboards and alerts read exist from the start, at 0, so a quiet node
    /// exports them too (a series that appears only on its first event reads as "no data", and a
    /// rate over it is missing for its first minutes). Called once the metrics system is bootstrapped.
    package static func declare(renditions: [String], providers: [String]) {
        for counter in [rtmpConnections, rtmpBytesReceived, rtmpProtocolErrors, rtmpMediaErrors, publishStarted, publishRefused(reason: "bad_key"),
                        relayConnections, relayOriginsLeft, ownershipHandovers, replicasEnded, publisherHandovers, edgeCacheHits, edgeUpstreamRequests, originEdgeRequests, viewerRedirects,
                        edgeUpstreamMediaRequests, edgeUpstreamAbandoned, edgePlaylistHits, edgePrefetches, edgePrefetchesSkipped,
                        viewerJoinsRefused(reason: "viewers"), viewerJoinsRefused(reason: "event_loop_lag"),
                        transcodeFailures, recordingObjectsWritten, recordingBytesWritten] {
            counter.increment(by: 0)
        }
        for rendition in renditions { renditionShed(rendition).increment(by: 0) }
        for provider in providers {
            paymentsCompleted(provider: provider).increment(by: 0)
            paymentsFailed(provider: provider).increment(by: 0)
        }
        relaysWithoutOrigin.record(0)
        streamsPublishing.record(0)
        // The node itself, until gossip's first count (a second after it starts).
        Gossip.members(status: "alive").record(1)
    }

    // MARK: RTMP ingest
    package static let rtmpConnections = Counter(label: "streamtube_rtmp_connections_total")
    package static let rtmpBytesReceived = Counter(label: "streamtube_rtmp_bytes_received_total")
    package static let rtmpProtocolErrors = Counter(label: "streamtube_rtmp_errors_total", dimensions: [("kind", "protocol")])
    package static let rtmpMediaErrors = Counter(label: "streamtube_rtmp_errors_total", dimensions: [("kind", "media")])
    package static let publishStarted = Counter(label: "streamtube_rtmp_publish_started_total")
    package static func publishRefused(reason: String) -> Counter {
        Counter(label: "streamtube_rtmp_publish_refused_total", dimensions: [("reason", reason)])
    }
    package static func rtmpConnectionsRefused(reason: String) -> Counter {
        Counter(label: "streamtube_rtmp_connections_refused_total", dimensions: [("reason", reason)])
    }
    package static let relayConnections = Counter(label: "streamtube_relay_connections_total")
    /// Relays that left an origin the failure detector held dead, that stopped acknowledging, or
    /// that never took the stream (not counting connections that just closed).
    package static let relayOriginsLeft = Counter(label: "streamtube_relay_origins_left_total")
    /// Streams this node published and handed to the node the ring named their owner (a node
    /// joined, a partition healed) without the broadcaster noticing.
    package static let ownershipHandovers = Counter(label: "streamtube_ownership_handovers_total")
    /// Replicas ended here because their origin sent nothing more while the stream was live
    /// (this node is no longer the standby, or no one took the stream over).
    package static let replicasEnded = Counter(label: "streamtube_replicas_ended_total")
    /// Broadcasters' relays on this node with no origin taking their stream right now (a failover
    /// takes seconds; a minute of it is a stream without an origin).
    package static let relaysWithoutOrigin = Gauge(label: "streamtube_ingest_relays_without_origin")
    /// A stream handed from one publisher to another (host and co-hosts) while it was live on this origin.
    package static let publisherHandovers = Counter(label: "streamtube_rtmp_publisher_handovers_total")
    /// Publishers closed because they are no longer a co-host of the stream.
    package static let publishersRemoved = Counter(label: "streamtube_rtmp_publishers_removed_total")

    // MARK: Transcoding
    package static func renditionShed(_ rendition: String) -> Counter {
        Counter(label: "streamtube_renditions_shed_total", dimensions: [("rendition", rendition)])
    }
    package static let transcodeFailures = Counter(label: "streamtube_transcode_failures_total")

    // MARK: Replication
    package static let replicaSnapshots = Counter(label: "streamtube_replica_snapshots_total")
    package static let replicaBatches = Counter(label: "streamtube_replica_batches_total")
    /// Batches whose media players were shown without the standby's acknowledgement (it did not come in time).
    package static let replicaUnacknowledgedShown = Counter(label: "streamtube_replica_unacknowledged_shown_total")
    package static let replicaBytesSent = Counter(label: "streamtube_replica_bytes_sent_total")

    // MARK: Recording
    /// Segments and init segments written to recordings on this node's disk, and their bytes.
    package static let recordingObjectsWritten = Counter(label: "streamtube_recording_objects_written_total")
    package static let recordingBytesWritten = Counter(label: "streamtube_recording_bytes_written_total")
    /// Objects a recording lost: a write that failed (a full or broken disk) or a queue the disk
    /// could not keep up with (`reason`: write, queue).
    package static func recordingObjectsLost(reason: String) -> Counter {
        Counter(label: "streamtube_recording_objects_lost_total", dimensions: [("reason", reason)])
    }
    /// Recordings marked incomplete on this node.
    package static let recordingsIncomplete = Counter(label: "streamtube_recordings_incomplete_total")
    /// Copies removed by retention (`reason`: age, channel-bytes, node-budget), and their bytes.
    package static func recordingsRemoved(reason: String) -> Counter {
        Counter(label: "streamtube_recordings_removed_total", dimensions: [("reason", reason)])
    }
    package static let recordingBytesRemoved = Counter(label: "streamtube_recording_bytes_removed_total")
    /// Bytes of the recording copies on this node's disk (as of the last retention pass).
    package static let recordingBytesHeld = Gauge(label: "streamtube_recording_bytes_held")

    // MARK: Edge and viewers
    package static let edgeCacheHits = Counter(label: "streamtube_edge_cache_hits_total")
    package static let edgeUpstreamRequests = Counter(label: "streamtube_edge_upstream_requests_total")
    /// Of those, the requests for media objects (init segments, parts, segments): at most one
    /// per object per edge, unless the store had let it go.
    package static let edgeUpstreamMediaRequests = Counter(label: "streamtube_edge_upstream_media_requests_total")
    /// Upstream requests given up while waiting because the cluster came to hold the node asked
    /// suspect or dead (the next holder was asked instead).
    package static let edgeUpstreamAbandoned = Counter(label: "streamtube_edge_upstream_abandoned_total")
    package static let originEdgeRequests = Counter(label: "streamtube_origin_edge_requests_total")
    package static let viewerRedirects = Counter(label: "streamtube_viewer_redirects_total")
    /// Playlist answers an edge gave from its playlist cache (not asking the origin).
    package static let edgePlaylistHits = Counter(label: "streamtube_edge_playlist_hits_total")
    /// Media objects an edge fetched because a playlist listed them, before a viewer asked (each
    /// also counts in `streamtube_edge_upstream_requests_total`), and those it left to the
    /// viewers' requests because its bound of prefetches on their way was reached.
    package static let edgePrefetches = Counter(label: "streamtube_edge_prefetches_total")
    package static let edgePrefetchesSkipped = Counter(label: "streamtube_edge_prefetches_skipped_total")
    /// Viewers turned away at their master playlist (503, Retry-After) because the node was over a
    /// bound (`reason`: viewers, event_loop_lag).
    package static func viewerJoinsRefused(reason: String) -> Counter {
        Counter(label: "streamtube_viewer_joins_refused_total", dimensions: [("reason", reason)])
    }
    /// The event loops' lag (the most any was late running a timer), as of the last sample.
    package static let eventLoopLagSeconds = Gauge(label: "streamtube_event_loop_lag_seconds")
    /// Viewer sessions this node serves now (as of its last report), and those it did not count
    /// because its table was full.
    package static let viewerSessions = Gauge(label: "streamtube_viewer_sessions")
    package static let viewerSessionsRefused = Counter(label: "streamtube_viewer_sessions_refused_total")
    /// Rounds of viewer reports the database did not take (kept for the next round).
    package static let viewerReportFailures = Counter(label: "streamtube_viewer_report_failures_total")

    // Stream records across nodes with their own databases.
    /// Questions this node sent to others about a stream it did not know (one per node asked).
    package static let recordLookupsSent = Counter(label: "streamtube_record_lookups_sent_total")
    /// Questions other nodes asked this one (`GET /internal/streams`).
    package static let recordLookupsAnswered = Counter(label: "streamtube_record_lookups_answered_total")
    /// Records this node sent to the nodes the ring places them with.
    package static let recordsPlaced = Counter(label: "streamtube_records_placed_total")
    /// Record changes and deletions other nodes told this one of, applied here.
    package static let recordChangesApplied = Counter(label: "streamtube_record_changes_applied_total")

    // MARK: Cluster TLS (node-to-node connections on the HTTP and RTMP listeners)
    /// A TLS connection on `listener` (http, rtmp): accepted (a client certificate from a cluster
    /// CA verified) or refused (no certificate, another cluster's, a bad handshake).
    package static func clusterTLSConnections(listener: String, result: String) -> Counter {
        Counter(label: "streamtube_cluster_tls_connections_total", dimensions: [("listener", listener), ("result", result)])
    }
    /// Node-to-node requests and relays that came in plaintext while cluster TLS is on.
    package static func clusterPlaintextRefused(listener: String) -> Counter {
        Counter(label: "streamtube_cluster_plaintext_refused_total", dimensions: [("listener", listener)])
    }

    // MARK: Streams (gauges set when /metrics is read)
    package static let streamsPublishing = Gauge(label: "streamtube_streams_publishing")
    /// Per-stream health gauges, dimensioned by stream (and rendition).
    package enum Stream {
        package static func inputBitrate(_ stream: String) -> Gauge { gauge("streamtube_stream_input_bitrate_bps", stream) }
        package static func frameRate(_ stream: String) -> Gauge { gauge("streamtube_stream_frame_rate", stream) }
        package static func droppedFrames(_ stream: String) -> Gauge { gauge("streamtube_stream_dropped_frames", stream) }
        package static func keyframeInterval(_ stream: String) -> Gauge { gauge("streamtube_stream_keyframe_interval_seconds", stream) }
        package static func avDrift(_ stream: String) -> Gauge { gauge("streamtube_stream_av_drift_ms", stream) }
        package static func encoderSpeed(_ stream: String) -> Gauge { gauge("streamtube_stream_encoder_speed", stream) }
        package static func renditionBitrate(_ stream: String, _ rendition: String) -> Gauge {
            Gauge(label: "streamtube_rendition_bitrate_bps", dimensions: [("stream", stream), ("rendition", rendition)])
        }
        private static func gauge(_ label: String, _ stream: String) -> Gauge { Gauge(label: label, dimensions: [("stream", stream)]) }

        /// Takes a stream's series out of the export (it ended here): a gauge left behind would
        /// go on saying its last value.
        package static func remove(_ stream: String, renditions: [String]) {
            for label in ["streamtube_stream_input_bitrate_bps", "streamtube_stream_frame_rate", "streamtube_stream_dropped_frames",
                          "streamtube_stream_keyframe_interval_seconds", "streamtube_stream_av_drift_ms", "streamtube_stream_encoder_speed"] {
                gauge(label, stream).destroy()
            }
            for rendition in renditions { renditionBitrate(stream, rendition).destroy() }
        }
    }

    // MARK: Disks (set when /metrics is read)
    /// Free and total bytes of the file system holding a folder the node writes (data, cache, recordings).
    package static func diskFreeBytes(folder: String) -> Gauge { Gauge(label: "streamtube_disk_free_bytes", dimensions: [("folder", folder)]) }
    package static func diskSizeBytes(folder: String) -> Gauge { Gauge(label: "streamtube_disk_size_bytes", dimensions: [("folder", folder)]) }

    // MARK: Payments
    /// Payments that went through (an order paid, a renewal charged), by provider.
    package static func paymentsCompleted(provider: String) -> Counter {
        Counter(label: "streamtube_payments_completed_total", dimensions: [("provider", provider)])
    }
    /// Payments that failed (declined, expired, a renewal charge refused), by provider.
    package static func paymentsFailed(provider: String) -> Counter {
        Counter(label: "streamtube_payments_failed_total", dimensions: [("provider", provider)])
    }

    // MARK: TLS
    /// When the certificate a listener serves (https, rtmps) expires, as Unix time.
    package static func tlsCertificateExpiry(listener: String) -> Gauge {
        Gauge(label: "streamtube_tls_certificate_expiry_timestamp_seconds", dimensions: [("listener", listener)])
    }

    // MARK: Readiness
    /// 1 while the node takes traffic (`/healthz/ready` says ready), 0 while it joins or hands over.
    package static let ready = Gauge(label: "streamtube_ready")

    // MARK: Gossip
    package enum Gossip {
        package static let packetsSent = Counter(label: "streamtube_gossip_packets_sent_total")
        package static let packetsReceived = Counter(label: "streamtube_gossip_packets_received_total")
        package static let bytesSent = Counter(label: "streamtube_gossip_bytes_sent_total")
        package static let bytesReceived = Counter(label: "streamtube_gossip_bytes_received_total")
        package static func messagesSent(type: String) -> Counter {
            Counter(label: "streamtube_gossip_messages_sent_total", dimensions: [("type", type)])
        }
        package static func messagesReceived(type: String) -> Counter {
            Counter(label: "streamtube_gossip_messages_received_total", dimensions: [("type", type)])
        }
        package static func packetsDropped(reason: String) -> Counter {
            Counter(label: "streamtube_gossip_packets_dropped_total", dimensions: [("reason", reason)])
        }
        package static func members(status: String) -> Gauge {
            Gauge(label: "streamtube_gossip_members", dimensions: [("status", status)])
        }
    }
}
