// ViewerSessionTable: the viewer sessions one node serves, counted where the media is served.
// A value type without I/O: the routes note what each session asks (playlist polls, media
// objects) with the time passed in, and the reporter drains what changed every few seconds.
//
// - A session is a player: an id the page's player puts on the master playlist URL (`vsid=`),
//   or one the master playlist assigns, carried on in every URI the playlists list.
// - It is watching while it polls; it is counted out `idle` seconds after its last request
//   (after the report that says so).
// - Its watch time is the media duration of the objects served to it (each object once, as the
//   playlists this node passed on said), not wall time: what it fetched is what it could play.
// - Bounded: at most `capacity` sessions and `durationCapacity` known object durations; a
//   session beyond them is not counted (and said so by `refused`), never grows memory.
import Catalog
import Foundation

/// The coarse class of a viewer's device, from its User-Agent.
package enum DeviceClass: String, Sendable, CaseIterable {
    case desktop, mobile, tablet, tv, player, other

    package static func of(userAgent: String?) -> DeviceClass {
        guard let ua = userAgent?.lowercased(), !ua.isEmpty else { return .other }
        if ua.contains("smart-tv") || ua.contains("smarttv") || ua.contains("appletv") || ua.contains("googletv")
            || ua.contains("roku") || ua.contains("tizen") || ua.contains("webos") { return .tv }
        if ua.contains("ipad") || ua.contains("tablet") || (ua.contains("android") && !ua.contains("mobile")) { return .tablet }
        if ua.contains("mobile") || ua.contains("iphone") || ua.contains("android") { return .mobile }
        if ua.hasPrefix("lavf") || ua.contains("vlc") || ua.contains("ffmpeg") || ua.contains("mpv")
            || ua.contains("applecoremedia") || ua.contains("exoplayer") || ua.hasPrefix("python") { return .player }
        if ua.contains("windows") || ua.contains("macintosh") || ua.contains("x11") || ua.contains("linux")
            || ua.contains("cros") { return .desktop }
        return .other
    }
}

package struct ViewerSessionTable: Sendable {
    struct Key: Hashable {
        var stream: String
        var session: ViewerSessionID
    }

    struct Entry {
        var rendition: String?
        var device: DeviceClass
        var referrer: String?
        var firstSeen: Double
        var lastSeen: Double
        var watchMs: Int64 = 0
        var bytes: Int64 = 0
        var dirty = true
        /// Hashes of the last objects counted: a retry or a second request of the same object
        /// is not watched twice.
        var recent: [Int] = { var r: [Int] = []; r.reserveCapacity(8); return r }()
    }

    package let capacity: Int
    package let durationCapacity: Int
    /// Seconds after its last request a session is counted out.
    package let idle: Double
    private(set) var entries: [Key: Entry] = [:]
    /// Media durations (seconds) by object path, from the playlists this node passed on; the
    /// oldest forgotten first.
    private var durations: [String: Float] = [:]
    private var durationOrder: [String] = []
    /// The last playlist learned from, per rendition (`base`), up to `learnedPlaylists` of them.
    private var lastLearned: [String: String] = [:]
    static let learnedPlaylists = 4_096
    private var durationNext = 0
    /// Sessions not counted because the table was full (since the last `takeRefused`).
    package private(set) var refused = 0

    package mutating func takeRefused() -> Int {
        defer { refused = 0 }
        return refused
    }

    package init(capacity: Int = 100_000, durationCapacity: Int = 200_000, idle: Double = 10) {
        self.capacity = capacity
        self.durationCapacity = durationCapacity
        self.idle = idle
    }

    package var count: Int { entries.count }

    /// A playlist request of a session (master or media): it is watching. False when it is new
    /// and the table is full.
    @discardableResult
    package mutating func notePoll(stream: String, session: ViewerSessionID, rendition: String?, device: DeviceClass,
                                   referrer: String?, now: Double) -> Bool {
        let key = Key(stream: stream, session: session)
        if var e = entries[key] {
            e.lastSeen = max(e.lastSeen, now)
            if let rendition { e.rendition = rendition }
            if e.referrer == nil { e.referrer = referrer }
            e.dirty = true
            entries[key] = e
            return true
        }
        guard entries.count < capacity else { refused += 1; return false }
        entries[key] = Entry(rendition: rendition, device: device, referrer: referrer, firstSeen: now, lastSeen: now)
        return true
    }

    /// A media object served to a session: its duration (if a playlist named it) is watched.
    /// A session not polling here yet (it was sent from another node's playlist) starts now.
    package mutating func noteObject(stream: String, session: ViewerSessionID, path: String, bytes: Int, now: Double,
                                     device: DeviceClass = .other) {
        let key = Key(stream: stream, session: session)
        if entries[key] == nil {
            guard entries.count < capacity else { refused += 1; return }
            entries[key] = Entry(rendition: Self.rendition(of: path), device: device, referrer: nil, firstSeen: now, lastSeen: now)
        }
        let watched = Int64(((durations[path] ?? 0) * 1000).rounded())
        // Changed where it lies (no copy of the entry, nor of its list of recent objects).
        Self.count(&entries[key]!, object: path.hashValue, watchedMs: watched, bytes: bytes, now: now)
    }

    private static func count(_ e: inout Entry, object h: Int, watchedMs: Int64, bytes: Int, now: Double) {
        if !e.recent.contains(h) {
            if e.recent.count >= 8 { e.recent.removeFirst() }
            e.recent.append(h)
            e.watchMs += watchedMs
            e.bytes += Int64(bytes)
        }
        e.lastSeen = max(e.lastSeen, now)
        e.dirty = true
    }

    /// Learns the durations of the objects a media playlist lists (`#EXTINF` segments,
    /// `#EXT-X-PART` parts); `base` is the playlist's folder (`/live/{id}/{rendition}/`).
    package mutating func learnDurations(playlist: String, base: String) {
        // Every viewer of a rendition is given the same playlist: it is read once.
        if lastLearned[base] == playlist { return }
        if lastLearned.count >= Self.learnedPlaylists { lastLearned.removeAll(keepingCapacity: true) }
        lastLearned[base] = playlist
        var pending: Float?
        for line in playlist.split(separator: "\n") {
            if line.hasPrefix("#EXTINF:") {
                pending = Float(line.dropFirst(8).prefix { $0 != "," })
            } else if line.hasPrefix("#EXT-X-PART:") {
                guard let d = Self.attribute("DURATION", in: line).flatMap({ Float($0) }),
                      let uri = Self.attribute("URI", in: line) else { continue }
                remember(base + Self.withoutQuery(uri), d)
            } else if !line.hasPrefix("#"), let d = pending {
                remember(base + Self.withoutQuery(line), d)
                pending = nil
            }
        }
    }

    /// The duration known for an object path, if any.
    package func duration(of path: String) -> Float? { durations[path] }

    private mutating func remember(_ path: String, _ seconds: Float) {
        guard durations[path] == nil, seconds.isFinite, seconds > 0, seconds < 60 else { return }
        if durationOrder.count < durationCapacity {
            durationOrder.append(path)
        } else {
            durations[durationOrder[durationNext]] = nil
            durationOrder[durationNext] = path
            durationNext = (durationNext + 1) % durationCapacity
        }
        durations[path] = seconds
    }

    /// What changed since the last drain, deltas reset; sessions idle past `idle` are reported
    /// one last time and forgotten.
    package mutating func drain(now: Double) -> [ViewerSessionReport] {
        var out: [ViewerSessionReport] = []
        var gone: [Key] = []
        for (key, e) in entries {
            if e.dirty {
                out.append(ViewerSessionReport(stream: key.stream, session: key.session.description, rendition: e.rendition,
                                               device: e.device.rawValue, referrer: e.referrer, firstSeen: e.firstSeen,
                                               lastSeen: e.lastSeen, watchMs: e.watchMs, bytes: e.bytes))
            }
            if now - e.lastSeen > idle { gone.append(key) }
        }
        for key in gone { entries[key] = nil }
        for key in entries.keys {
            entries[key]!.dirty = false
            entries[key]!.watchMs = 0
            entries[key]!.bytes = 0
        }
        return out
    }

    /// Puts back what a failed report took (its deltas add to what came since).
    package mutating func restore(_ reports: [ViewerSessionReport]) {
        for r in reports {
            guard let session = ViewerSessionID(r.session) else { continue }
            let key = Key(stream: r.stream, session: session)
            if var e = entries[key] {
                e.watchMs += r.watchMs
                e.bytes += r.bytes
                e.dirty = true
                entries[key] = e
            } else if entries.count < capacity {
                entries[key] = Entry(rendition: r.rendition, device: DeviceClass(rawValue: r.device) ?? .other,
                                     referrer: r.referrer, firstSeen: r.firstSeen, lastSeen: r.lastSeen,
                                     watchMs: r.watchMs, bytes: r.bytes)
            }
        }
    }

    /// Whether this node serves the session now.
    package func serves(stream: String, session: ViewerSessionID) -> Bool {
        entries[Key(stream: stream, session: session)] != nil
    }

    /// Sessions of a stream watching now by this node alone.
    package func watching(stream: String, now: Double) -> Int {
        entries.reduce(0) { $0 + ($1.key.stream == stream && now - $1.value.lastSeen <= idle ? 1 : 0) }
    }

    static func rendition(of path: String) -> String? {
        let parts = path.split(separator: "/")
        return parts.count == 4 ? String(parts[2]) : nil
    }

    static func withoutQuery(_ uri: Substring) -> Substring {
        uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri
    }

    /// An attribute's value in a tag line (`NAME=value` or `NAME="value"`).
    static func attribute(_ name: String, in line: Substring) -> Substring? {
        guard let r = line.range(of: name + "=") else { return nil }
        var rest = line[r.upperBound...]
        if rest.first == "\"" {
            rest = rest.dropFirst()
            return rest.firstIndex(of: "\"").map { rest[..<$0] }
        }
        return rest.prefix { $0 != "," }
    }
}
