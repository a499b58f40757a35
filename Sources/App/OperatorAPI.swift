// The operator API's requests and answers, typed: the routes encode them, the CLI decodes them.
import Foundation
import Origin

package struct CreateStreamRequest: Codable, Sendable {
    package var title: String
    /// Optional: this stream's ladder ("name:height:kbps[:maxkbps],..." or "none") and x264 preset.
    package var ladder: String?
    package var x264Preset: String?
    /// Optional: keep the source rendition in the master playlist even when the broadcaster's
    /// keyframes are far apart (by default it leaves, the ladder standing in).
    package var keepSource: Bool?

    package init(title: String, ladder: String? = nil, x264Preset: String? = nil, keepSource: Bool? = nil) {
        self.title = title
        self.ladder = ladder
        self.x264Preset = x264Preset
        self.keepSource = keepSource
    }
}

/// `PATCH /api/streams/{id}`: what changes.
package struct RenameStreamRequest: Codable, Sendable {
    package var title: String

    package init(title: String) {
        self.title = title
    }
}

package struct StreamResponse: Codable, Equatable, Sendable {
    package var id: String
    package var title: String
    /// nil on a node that learned the stream from another and was never shown its key.
    package var key: String?
    package var rtmpURL: String?
    package var watchURL: String
    package var playlistURL: String
    package var createdAt: Date
    package var ladder: String?
    package var x264Preset: String?
    package var keepSource: Bool?
    /// The account that owns the stream; absent for streams made with the operator token.
    package var owner: String?
    package var live: LiveStreamStatus?
}

/// `GET /api/cluster`.
package struct ClusterResponse: Codable, Equatable, Sendable {
    package struct Coordinate: Codable, Equatable, Sendable {
        package var vector: [Double]
        package var height: Double
        package var error: Double
        package var adjustment: Double
    }

    package struct MemberRow: Codable, Equatable, Sendable {
        package var id: String
        package var status: String
        package var incarnation: UInt64
        package var region: String
        package var capacity: UInt32
        package var load: UInt32
        package var softwareVersion: String
        package var gossipAddress: String
        package var httpAddress: String
        package var rtmpAddress: String
        package var streamsOwned: Int
        package var isSelf: Bool
        package var coordinate: Coordinate?
        package var rttMs: Double?

        enum CodingKeys: String, CodingKey {
            case id, status, incarnation, region, capacity, load, softwareVersion, gossipAddress, httpAddress, rtmpAddress,
                 streamsOwned, coordinate, rttMs
            case isSelf = "self"
        }
    }

    package struct Packets: Codable, Equatable, Sendable {
        package var sent: UInt64
        package var received: UInt64
        package var dropped: UInt64
    }

    package struct Bytes: Codable, Equatable, Sendable {
        package var sent: UInt64
        package var received: UInt64
    }

    package var localID: String
    package var members: [MemberRow]
    package var counts: [String: Int]
    package var localHealth: Int
    package var failureDetectionBoundSeconds: Double
    package var packets: Packets
    package var bytes: Bytes

    enum CodingKeys: String, CodingKey {
        case members, counts, localHealth, failureDetectionBoundSeconds, packets, bytes
        case localID = "self"
    }
}

/// `GET /healthz`.
package struct HealthResponse: Codable, Equatable, Sendable {
    package var status: String
    package var nodeID: String
    package var region: String
    package var uptimeSeconds: Int
    package var streamsPublishing: Int
    package var media: [String: String]
}
