// EdgePlaylistCache: the playlists an edge got from upstream, kept in memory for as long as
// the origin lets them be reused, so that joins and blocking reloads arriving one after the
// other (not only at the same instant, which `SingleFlight` already merges) cost the origin one
// request per playlist answer and not one per viewer.
//
// A pure policy over a dictionary: the clock is the caller's. Keys are `EdgeProxy`'s (path and
// query without token or viewer session), so a private stream's answer kept here is the
// origin's bare text; each viewer's token and session are written into it on the way out.
import Foundation
import NIOCore

/// What is kept, and for how long:
/// - Only `200` answers whose `Cache-Control` gives a `max-age` and is neither `private`,
///   `no-cache` nor `no-store` (the origin marks what may be shared).
/// - A media playlist asked without `_HLS_msn` (a join, a non-blocking player's poll) for at
///   most one part duration (its `PART-TARGET`): older, a joining player would start further
///   behind live than the origin would have put it. Ended ones too, though the origin gives them
///   10 s: a stream started again must not look ended at the edge. Every other answer for its
///   `max-age`: a blocking reload's answer holds the part it was asked for whenever it is read,
///   and a master playlist lists renditions.
/// - At most `capacity` answers: a query is the viewer's to choose, so the table is bounded;
///   when full, expired answers go, and if none had, everything does (the origin is asked again).
package struct EdgePlaylistCache: Sendable {
    private struct Entry: Sendable {
        var answer: UpstreamResponse
        var until: Double
    }

    private var entries: [String: Entry] = [:]
    package let capacity: Int

    package init(capacity: Int = 4_096) {
        self.capacity = capacity
    }

    package var count: Int { entries.count }

    /// The answer kept for `key`, if still fresh at `now` (seconds on a monotonic clock).
    package mutating func answer(_ key: String, now: Double) -> UpstreamResponse? {
        guard let entry = entries[key] else { return nil }
        guard now < entry.until else {
            entries[key] = nil
            return nil
        }
        return entry.answer
    }

    /// Keeps `answer` for `key` if the rules above allow it.
    package mutating func keep(_ key: String, _ answer: UpstreamResponse, now: Double) {
        guard let lifetime = Self.lifetime(of: answer, key: key), lifetime > 0 else { return }
        if entries[key] == nil, entries.count >= capacity {
            entries = entries.filter { now < $0.value.until }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        }
        entries[key] = Entry(answer: answer, until: now + lifetime)
    }

    /// Seconds `answer` (to `key`, `path?query`) may be reused; nil: not at all.
    package static func lifetime(of answer: UpstreamResponse, key: String) -> Double? {
        guard answer.status == 200, let cacheControl = answer.cacheControl?.lowercased(),
              let maxAge = maxAge(cacheControl), maxAge > 0 else { return nil }
        let directives = cacheControl.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !directives.contains(where: { $0 == "private" || $0 == "no-cache" || $0 == "no-store" }) else { return nil }
        let path = key.split(separator: "?", maxSplits: 1).first ?? ""
        let query = key.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        let blocking = query.split(separator: "&").contains { $0.hasPrefix("_HLS_msn=") }
        guard path.hasSuffix("/index.m3u8"), !blocking else { return maxAge }
        guard let part = partTarget(String(buffer: answer.body)) else { return maxAge }
        return min(maxAge, part)
    }

    static func maxAge(_ cacheControl: String) -> Double? {
        for directive in cacheControl.split(separator: ",") {
            let d = directive.trimmingCharacters(in: .whitespaces)
            if d.hasPrefix("max-age="), let seconds = Int(d.dropFirst("max-age=".count)) { return Double(seconds) }
        }
        return nil
    }

    /// `PART-TARGET` of `#EXT-X-PART-INF`, in seconds.
    static func partTarget(_ playlist: String) -> Double? {
        guard let tag = playlist.range(of: "#EXT-X-PART-INF:") else { return nil }
        let line = playlist[tag.upperBound...].prefix { $0 != "\n" && $0 != "\r" }
        for attribute in line.split(separator: ",") where attribute.hasPrefix("PART-TARGET=") {
            return Double(attribute.dropFirst("PART-TARGET=".count))
        }
        return nil
    }
}
