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
///
/// A blocking reload (`_HLS_msn`, `_HLS_part`) with no answer of its own kept is answered with
/// the newest media playlist kept for the same path and other query (while that one is fresh)
/// when it already holds the segment or part asked for: as the origin itself would, since a
/// blocking reload is answered with the first playlist holding its target or any later one.
/// A viewer behind live (a spike, a slow phone) then costs the origin nothing, where keeping
/// answers by exact target alone sent every target older than its max-age upstream again.
package struct EdgePlaylistCache: Sendable {
    private struct Entry: Sendable {
        var answer: UpstreamResponse
        var until: Double
    }

    /// What a media playlist holds: segments through `complete` whole, and `parts` parts of
    /// segment `complete + 1`; `ended` holds everything there will be.
    struct Position: Sendable, Comparable {
        var complete: Int
        var parts: Int
        var ended = false

        static func < (a: Position, b: Position) -> Bool {
            a.complete != b.complete ? a.complete < b.complete : a.parts != b.parts ? a.parts < b.parts : !a.ended && b.ended
        }

        /// Whether a blocking reload for segment `msn` (part `part`, if given) may be answered.
        func holds(msn: Int, part: Int?) -> Bool {
            if ended || msn <= complete { return true }
            guard let part, msn == complete + 1 else { return false }
            return part < parts
        }
    }

    private struct Newest: Sendable {
        var answer: UpstreamResponse
        var position: Position
        var until: Double
    }

    private var entries: [String: Entry] = [:]
    /// The newest media playlist per path and query less `_HLS_msn` and `_HLS_part`.
    private var newest: [String: Newest] = [:]
    package let capacity: Int

    package init(capacity: Int = 4_096) {
        self.capacity = capacity
    }

    package var count: Int { entries.count }

    /// The answer kept for `key`, if still fresh at `now` (seconds on a monotonic clock); for a
    /// blocking reload, else the newest kept playlist that holds its target.
    package mutating func answer(_ key: String, now: Double) -> UpstreamResponse? {
        if let entry = entries[key] {
            if now < entry.until { return entry.answer }
            entries[key] = nil
        }
        guard let target = Self.blockingTarget(key), let kept = newest[target.base] else { return nil }
        guard now < kept.until else {
            newest[target.base] = nil
            return nil
        }
        return kept.position.holds(msn: target.msn, part: target.part) ? kept.answer : nil
    }

    /// Keeps `answer` for `key` if the rules above allow it.
    package mutating func keep(_ key: String, _ answer: UpstreamResponse, now: Double) {
        guard let lifetime = Self.lifetime(of: answer, key: key), lifetime > 0 else { return }
        if entries[key] == nil, entries.count >= capacity {
            entries = entries.filter { now < $0.value.until }
            newest = newest.filter { now < $0.value.until }
            if entries.count >= capacity {
                entries.removeAll(keepingCapacity: true)
                newest.removeAll(keepingCapacity: true)
            }
        }
        entries[key] = Entry(answer: answer, until: now + lifetime)
        // Only a blocking reload's answer stands for later targets: one asked without a target
        // is kept a part duration at most, a join's, and must not stretch further.
        guard let target = Self.blockingTarget(key), let position = Self.position(String(buffer: answer.body)) else { return }
        if let kept = newest[target.base], now < kept.until, !(kept.position < position) { return }
        newest[target.base] = Newest(answer: answer, position: position, until: now + lifetime)
    }

    /// A blocking reload's target and its key without it (`_HLS_msn`, `_HLS_part` taken out).
    static func blockingTarget(_ key: String) -> (base: String, msn: Int, part: Int?)? {
        guard let q = key.firstIndex(of: "?"), key.hasPrefix("/"), key[..<q].hasSuffix("/index.m3u8") else { return nil }
        var msn: Int?, part: Int?
        var rest: [Substring] = []
        for item in key[key.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false) {
            if item.hasPrefix("_HLS_msn="), msn == nil, let v = Int(item.dropFirst(9)), v >= 0 {
                msn = v
            } else if item.hasPrefix("_HLS_part="), part == nil, let v = Int(item.dropFirst(10)), v >= 0 {
                part = v
            } else if item.hasPrefix("_HLS_msn=") || item.hasPrefix("_HLS_part=") {
                return nil  // twice, or not a number: the origin's to refuse
            } else {
                rest.append(item)
            }
        }
        guard let msn else { return nil }
        let path = String(key[..<q])
        return (rest.isEmpty ? path : path + "?" + rest.joined(separator: "&"), msn, part)
    }

    /// Where a media playlist stands: `EXT-X-MEDIA-SEQUENCE`, the segments listed (and skipped
    /// by a delta update), the parts after the last one; nil for anything else.
    static func position(_ playlist: String) -> Position? {
        var sequence: Int?, segments = 0, parts = 0, ended = false
        for line in playlist.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("#EXTINF:") {
                segments += 1
                parts = 0
            } else if line.hasPrefix("#EXT-X-PART:") {
                parts += 1
            } else if line.hasPrefix("#EXT-X-MEDIA-SEQUENCE:") {
                sequence = Int(line.dropFirst("#EXT-X-MEDIA-SEQUENCE:".count).trimmingCharacters(in: .whitespaces))
            } else if line.hasPrefix("#EXT-X-SKIP:") {
                for attribute in line.dropFirst("#EXT-X-SKIP:".count).split(separator: ",")
                where attribute.hasPrefix("SKIPPED-SEGMENTS=") {
                    segments += Int(attribute.dropFirst("SKIPPED-SEGMENTS=".count)) ?? 0
                }
            } else if line.hasPrefix("#EXT-X-ENDLIST") {
                ended = true
            }
        }
        guard let sequence else { return nil }
        return Position(complete: sequence + segments - 1, parts: parts, ended: ended)
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
