// The operator API's requests and answers, typed: the routes encode them, the CLI decodes them.
import Foundation
import Catalog
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
    /// Optional: what viewers read, the words it is found by, who may watch, when it starts
    /// (RFC 3339, e.g. 2026-12-24T18:00:00+01:00) and the time zone it is shown in (IANA, e.g. Europe/Paris).
    package var description: String?
    package var tags: [String]?
    package var visibility: String?
    package var startsAt: String?
    package var timeZone: String?
    package var allowGuests: Bool?

    package init(title: String, ladder: String? = nil, x264Preset: String? = nil, keepSource: Bool? = nil) {
        self.title = title
        self.ladder = ladder
        self.x264Preset = x264Preset
        self.keepSource = keepSource
    }

    /// The details it sets, or why they cannot be.
    package func details() throws -> StreamDetails {
        var d = try StreamDetailsParser.details(description: description, tags: tags, visibility: visibility,
                                                startsAt: startsAt.map { .some($0) }, timeZone: timeZone.map { .some($0) })
        d.allowGuests = allowGuests
        return d
    }
}

/// `PATCH /api/streams/{id}` and `/api/v1/streams/{id}`: what changes (absent: unchanged;
/// `"startsAt": null` or `"timeZone": null`: cleared).
package struct UpdateStreamRequest: Decodable, Sendable {
    package var title: String?
    package var description: String?
    package var tags: [String]?
    package var visibility: String?
    package var startsAt: String??
    package var timeZone: String??
    package var allowGuests: Bool?
    /// Whether its live sessions are recorded; null: as its channel's default says.
    package var recorded: Bool??

    private enum CodingKeys: String, CodingKey { case title, description, tags, visibility, startsAt, timeZone, allowGuests, recorded }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        title = try c.decodeIfPresent(String.self, forKey: .title)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        tags = try c.decodeIfPresent([String].self, forKey: .tags)
        visibility = try c.decodeIfPresent(String.self, forKey: .visibility)
        allowGuests = try c.decodeIfPresent(Bool.self, forKey: .allowGuests)
        if c.contains(.startsAt) { startsAt = .some(try c.decodeNil(forKey: .startsAt) ? nil : try c.decode(String.self, forKey: .startsAt)) }
        if c.contains(.timeZone) { timeZone = .some(try c.decodeNil(forKey: .timeZone) ? nil : try c.decode(String.self, forKey: .timeZone)) }
        if c.contains(.recorded) { recorded = .some(try c.decodeNil(forKey: .recorded) ? nil : try c.decode(Bool.self, forKey: .recorded)) }
    }

    package func details() throws -> StreamDetails {
        guard title != nil || description != nil || tags != nil || visibility != nil || startsAt != nil || timeZone != nil
                || allowGuests != nil || recorded != nil else {
            throw StreamError.badDetails("nothing to change: give \"title\", \"description\", \"tags\", \"visibility\", "
                                         + "\"startsAt\", \"timeZone\", \"allowGuests\" or \"recorded\"")
        }
        var d = try StreamDetailsParser.details(description: description, tags: tags, visibility: visibility, startsAt: startsAt,
                                                timeZone: timeZone)
        d.title = title
        d.allowGuests = allowGuests
        d.record = recorded
        return d
    }
}

/// Text from a request made into checked stream details.
package enum StreamDetailsParser {
    package static func details(description: String?, tags: [String]?, visibility: String?, startsAt: String??,
                                timeZone: String??) throws -> StreamDetails {
        var d = StreamDetails(description: description, tags: tags)
        if let visibility {
            guard let v = StreamRecord.Visibility(rawValue: visibility) else {
                throw StreamError.badDetails("visibility must be one of \(StreamRecord.Visibility.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            d.visibility = v
        }
        if let startsAt {
            if let text = startsAt {
                guard let date = parseTime(text) else {
                    throw StreamError.badDetails("startsAt must be an RFC 3339 time like 2026-12-24T18:00:00+01:00, got \(text.prefix(60))")
                }
                d.startsAt = .some(date)
            } else {
                d.startsAt = .some(nil)
            }
        }
        if let timeZone { d.timeZone = .some(timeZone) }
        return d
    }

    /// RFC 3339, with or without fractional seconds, and nothing else: Foundation's ISO 8601 reading
    /// takes what follows a valid time as well (`2026-12-24T18:00:00+01:00junk`; found by fuzzing).
    package static func parseTime(_ text: String) -> Date? {
        let shape = #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/#
        guard text.utf8.count <= 40, text.wholeMatch(of: shape) != nil else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }
}

/// `GET /api/streams/{id}/playback-token` and `GET /api/v1/streams/{id}/playback-token`.
package struct PlaybackTokenResponse: Codable, Equatable, Sendable {
    package var token: String
    /// The master playlist's URL with the token: every URI its playlists list carries it on.
    package var playlistURL: String
    package var expiresAt: Date
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
    package var description: String
    package var tags: [String]
    package var visibility: String
    package var startsAt: Date?
    package var timeZone: String?
    /// Present (true) when an invite-only stream admits guests without an account.
    package var allowGuests: Bool?
    /// Whether its live sessions are recorded now (its own setting, else its channel's default).
    package var recorded: Bool
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

/// `GET /api/streams/{id}/recordings`: one of a stream's recordings, its copies merged.
package struct RecordingResponse: Codable, Equatable, Sendable {
    package var id: String
    /// `recording`, `ready` or `incomplete`.
    package var state: String
    /// Why it is incomplete.
    package var reason: String?
    package var durationSeconds: Double
    package var playlistURL: String
    /// One MP4 (answers 501 until export is made).
    package var downloadURL: String
    package var startedAt: Date
    package var endedAt: Date?
    package var bytes: Int
    package var renditions: [String]
    /// The nodes holding a copy.
    package var nodes: [String]
    /// What people set on it (`/api/v1/recordings`), and where its picture and page are.
    package var streamId: String?
    package var title: String?
    package var description: String?
    /// The visibility that applies (its own, else its stream's); `inheritsVisibility`: its stream's.
    package var visibility: String?
    package var inheritsVisibility: Bool?
    /// The effective trim (snapped to keyframes: segment boundaries), seconds from the start; absent: not trimmed.
    package var trimStart: Double?
    package var trimEnd: Double?
    /// What plays and downloads: the trimmed length (the whole when not trimmed).
    package var trimmedDurationSeconds: Double?
    package var thumbnailURL: String?
    package var pageURL: String?
}
