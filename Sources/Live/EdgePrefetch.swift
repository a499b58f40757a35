// EdgePrefetch: which media objects an edge fetches as soon as a live media playlist comes from
// upstream, before any viewer asks. A player asks for a part right after its blocking reload
// returns; fetched only then, every part costs the first viewer one more round trip to the
// origin. Fetched when the playlist listing it arrives, it is a memory hit (or a single flight
// already on its way) by the time the viewer's request comes.
import Foundation

package enum EdgePrefetch {
    /// The names (relative to the playlist's folder) worth fetching now: the newest part the
    /// playlist lists and the part its preload hint names (the origin holds that request until
    /// the part is made). None for a playlist that has ended (no viewer waits for its next
    /// part) or that lists no parts. Only canonical media names are returned, queries dropped,
    /// so a prefetch is stored under the key a viewer's request uses.
    package static func targets(in playlist: String) -> [Substring] {
        guard !playlist.contains("#EXT-X-ENDLIST") else { return [] }
        var newest: Substring?
        var hint: Substring?
        for line in playlist.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            if line.hasPrefix("#EXT-X-PART:") {
                newest = uri(line) ?? newest
            } else if line.hasPrefix("#EXT-X-PRELOAD-HINT:"), line.contains("TYPE=PART") {
                hint = uri(line)
            }
        }
        return [newest, hint].compactMap { $0 }.filter { MediaName.isImmutableObject($0.utf8) }
    }

    /// The `URI="..."` attribute of a tag, without its query.
    static func uri(_ line: Substring) -> Substring? {
        guard let start = line.range(of: "URI=\"") else { return nil }
        let value = line[start.upperBound...].prefix { $0 != "\"" }
        return value.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
    }
}
