// A stream as the platform records it.
import Crypto
import Foundation

package struct StreamRecord: Codable, Equatable, Sendable {
    package var id: String
    /// The stream key, when this node knows it: it made the stream, or a broadcaster presented
    /// it. Never sent to another node; kept sealed at rest.
    package var key: String?
    /// SHA-256 of the key (hex): how a presented key is checked, and all another node is told.
    package var keyDigest: String
    package var title: String
    package var createdAt: Date
    /// This stream's own ladder ("name:height:kbps,..." or "none") and x264 preset; nil: the node's.
    package var ladder: String? = nil
    package var x264Preset: String? = nil
    /// Keep the source rendition in the master playlist even when its keyframes are far apart.
    package var keepSource = false
    /// The account that owns the stream; nil for streams made with the operator token.
    package var owner: String? = nil
    /// What viewers read about it (plain text; pages escape it).
    package var description = ""
    /// Lower-case words people find it by.
    package var tags: [String] = []
    package var visibility = Visibility.public
    /// When it is scheduled to start, and the time zone its broadcaster gave it in.
    package var startsAt: Date? = nil
    package var timeZone: String? = nil
    /// An invite-only stream also admits people who join by an invitation link without an account, under a name.
    package var allowGuests = false
    /// The version of the picture its owner uploaded (`StreamCatalog.thumbnailVersion`, a digest
    /// of the JPEG kept beside the record); nil: pictures of the live stream are shown.
    package var thumbnail: String? = nil
    /// When the uploaded picture was last set or removed (by the node that took the change): of
    /// two copies of a record arriving out of order, the later change wins.
    package var thumbnailChangedAt: Date? = nil
    /// Accounts that may broadcast into it with keys of their own (`CoHost`).
    package var cohosts: [CoHost] = []
    /// The co-host it is handed to (their account id); nil: its host is on the air.
    package var onAir: String? = nil
    /// Whether its live sessions are recorded, by its own setting; nil: as its channel says.
    package var record: Bool? = nil
    /// Its channel's recording settings, copied from the owner's account when they change, so
    /// every node holding the stream applies them (the default of `record`, and retention).
    package var channelRecording = ChannelRecording()

    /// Whether a live session starting now is recorded (the node's `--recordings` aside).
    package var isRecorded: Bool { record ?? channelRecording.records }

    /// Who may watch: anyone and listed (`public`), anyone with the link (`unlisted`), invitees
    /// (`invite-only`), buyers (`paid`; until payments exist, as invite-only).
    package enum Visibility: String, Codable, CaseIterable, Sendable {
        case `public`, unlisted
        case inviteOnly = "invite-only"
        case paid

        /// Whether its media needs a playback token.
        package var isPrivate: Bool { self == .inviteOnly || self == .paid }
    }

    package init(id: String, key: String?, keyDigest: String? = nil, title: String, createdAt: Date, ladder: String? = nil,
                 x264Preset: String? = nil, keepSource: Bool = false, owner: String? = nil, description: String = "",
                 tags: [String] = [], visibility: Visibility = .public, startsAt: Date? = nil, timeZone: String? = nil,
                 allowGuests: Bool = false, thumbnail: String? = nil, thumbnailChangedAt: Date? = nil,
                 cohosts: [CoHost] = [], onAir: String? = nil, record: Bool? = nil, channelRecording: ChannelRecording = ChannelRecording()) {
        self.record = record
        self.channelRecording = channelRecording
        self.id = id
        self.key = key
        self.keyDigest = keyDigest ?? key.map(StreamIdentifiers.digest) ?? ""
        self.title = title
        self.createdAt = createdAt
        self.ladder = ladder
        self.x264Preset = x264Preset
        self.keepSource = keepSource
        self.owner = owner
        self.description = description
        self.tags = tags
        self.visibility = visibility
        self.startsAt = startsAt
        self.timeZone = timeZone
        self.allowGuests = allowGuests
        self.thumbnail = thumbnail
        self.thumbnailChangedAt = thumbnailChangedAt
        self.cohosts = cohosts
        self.onAir = onAir
    }

    private enum CodingKeys: String, CodingKey {
        case id, key, keyDigest, title, createdAt, ladder, x264Preset, keepSource, owner, description, tags, visibility, startsAt, timeZone
        case allowGuests, thumbnail, thumbnailChangedAt, cohosts, onAir, record, channelRecording
    }

    /// Records from nodes of an earlier version lack the later fields: they take their defaults.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), key: try c.decodeIfPresent(String.self, forKey: .key),
                  keyDigest: try c.decodeIfPresent(String.self, forKey: .keyDigest), title: try c.decode(String.self, forKey: .title),
                  createdAt: try c.decode(Date.self, forKey: .createdAt), ladder: try c.decodeIfPresent(String.self, forKey: .ladder),
                  x264Preset: try c.decodeIfPresent(String.self, forKey: .x264Preset),
                  keepSource: try c.decodeIfPresent(Bool.self, forKey: .keepSource) ?? false,
                  owner: try c.decodeIfPresent(String.self, forKey: .owner),
                  description: try c.decodeIfPresent(String.self, forKey: .description) ?? "",
                  tags: try c.decodeIfPresent([String].self, forKey: .tags) ?? [],
                  visibility: try c.decodeIfPresent(Visibility.self, forKey: .visibility) ?? .public,
                  startsAt: try c.decodeIfPresent(Date.self, forKey: .startsAt),
                  timeZone: try c.decodeIfPresent(String.self, forKey: .timeZone),
                  allowGuests: try c.decodeIfPresent(Bool.self, forKey: .allowGuests) ?? false,
                  thumbnail: try c.decodeIfPresent(String.self, forKey: .thumbnail),
                  thumbnailChangedAt: try c.decodeIfPresent(Date.self, forKey: .thumbnailChangedAt),
                  cohosts: try c.decodeIfPresent([CoHost].self, forKey: .cohosts) ?? [],
                  onAir: try c.decodeIfPresent(String.self, forKey: .onAir),
                  record: try c.decodeIfPresent(Bool.self, forKey: .record),
                  channelRecording: try c.decodeIfPresent(ChannelRecording.self, forKey: .channelRecording) ?? ChannelRecording())
    }
}

/// What a person sets on a stream (the studio's form, the API), checked before anything is kept.
package struct StreamDetails: Sendable, Equatable {
    package var title: String?
    package var description: String?
    package var tags: [String]?
    package var visibility: StreamRecord.Visibility?
    /// `.some(nil)` clears the schedule.
    package var startsAt: Date??
    package var timeZone: String??
    package var allowGuests: Bool?
    /// The stream's own recording setting; `.some(nil)`: as its channel says.
    package var record: Bool??
    /// Its channel's recording settings, as they are now (set by the platform, not a person's form).
    package var channelRecording: ChannelRecording?

    package init(title: String? = nil, description: String? = nil, tags: [String]? = nil, visibility: StreamRecord.Visibility? = nil,
                 startsAt: Date?? = nil, timeZone: String?? = nil, allowGuests: Bool? = nil, record: Bool?? = nil,
                 channelRecording: ChannelRecording? = nil) {
        self.record = record
        self.channelRecording = channelRecording
        self.allowGuests = allowGuests
        self.title = title
        self.description = description
        self.tags = tags
        self.visibility = visibility
        self.startsAt = startsAt
        self.timeZone = timeZone
    }

    package static let maxDescription = 5000
    package static let maxTags = 10
    package static let maxTag = 30

    /// `record` with these details applied, or why not. `now`: a start time must be later.
    package func applied(to record: StreamRecord, now: Date = Date()) throws -> StreamRecord {
        var r = record
        if let title { r.title = try StreamCatalog.checkedTitle(title) }
        if let setting = self.record { r.record = setting }
        if let channelRecording { r.channelRecording = try channelRecording.checked() }
        if let description {
            let d = description.replacingOccurrences(of: "\r\n", with: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            guard d.count <= Self.maxDescription else {
                throw StreamError.badDetails("a description has at most \(Self.maxDescription) characters, got \(d.count)")
            }
            guard !d.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\t" }) else {
                throw StreamError.badDetails("a description cannot hold control characters")
            }
            r.description = d
        }
        if let tags {
            var clean: [String] = []
            for raw in tags {
                let t = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                if t.isEmpty || clean.contains(t) { continue }
                guard t.count <= Self.maxTag, t.allSatisfy({ $0.isLetter || $0.isNumber || $0 == " " || $0 == "-" }) else {
                    throw StreamError.badDetails("a tag is a word of letters, digits, spaces or dashes, at most \(Self.maxTag) characters: \(raw.prefix(40))")
                }
                clean.append(t)
            }
            guard clean.count <= Self.maxTags else { throw StreamError.badDetails("at most \(Self.maxTags) tags, got \(clean.count)") }
            r.tags = clean
        }
        if let visibility { r.visibility = visibility }
        if let allowGuests { r.allowGuests = allowGuests }
        if let zone = timeZone {
            if let zone {
                guard TimeZone(identifier: zone) != nil else {
                    throw StreamError.badDetails("unknown time zone \(zone.prefix(60)): give one like Europe/Paris or America/New_York")
                }
            }
            r.timeZone = zone
        }
        if let starts = startsAt {
            if let starts {
                guard starts > now else { throw StreamError.badDetails("the start time is in the past: give a later one") }
                guard starts < now.addingTimeInterval(2 * 365 * 86400) else {
                    throw StreamError.badDetails("the start time is more than two years away")
                }
            }
            r.startsAt = starts
        }
        return r
    }
}

package enum StreamError: Error, CustomStringConvertible, Equatable {
    case badTitle(String)
    case badLadder(String)
    case badDetails(String)
    case badCohost(String)
    package var description: String {
        switch self {
        case .badTitle(let why): return "bad title: \(why)"
        case .badLadder(let why): return "bad ladder: \(why)"
        case .badDetails(let why): return why
        case .badCohost(let why): return why
        }
    }
}

/// Stream ids and keys: short, URL-safe tokens.
package enum StreamIdentifiers {
    /// Length and letters of the ids the node makes.
    package static let idLength = 12
    static let idAlphabet = Set("abcdefghijkmnopqrstuvwxyz23456789")

    package static func randomID(length: Int = idLength) -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyz23456789")
        var g = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(g.next(upperBound: UInt32(alphabet.count)))] })
    }

    /// A stream key: the stream's id, `_`, and 128 random bits in hex. The id in front lets
    /// any node tell which node to ask about a key it does not know (the stream's place on
    /// the ring); the secret is the random part.
    package static func randomKey(for id: String) -> String { id + "_" + randomSecret() }

    /// `bytes` random bytes in hex.
    package static func randomSecret(bytes: Int = 16) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// The stream id a key names in front (`{id}_{secret}`); nil for keys without one (made
    /// before keys carried it) and anything else.
    package static func streamID(inKey key: String) -> String? {
        guard let underscore = key.firstIndex(of: "_") else { return nil }
        let id = key[..<underscore]
        guard id.count == idLength, id.allSatisfy(idAlphabet.contains) else { return nil }
        return String(id)
    }

    /// SHA-256, hex: what is kept of a stream key to check one presented.
    package static func digest(_ key: String) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Anything else is refused before it is looked up.
    package static func isWellFormed(_ s: Substring) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// Seals secrets kept at rest (stream keys) so the database file alone does not give them
/// away; the node provides one made from the cluster key.
package protocol SecretSealer: Sendable {
    func seal(_ plaintext: String) throws -> String
    /// nil when the text was sealed with another key or altered.
    func open(_ sealed: String) -> String?
}
