// PlaybackQuery: a playback token on the way through the media routes. A native HLS player
// (Safari, ffmpeg, VLC) knows nothing of tokens: it is given a playlist URL carrying one, and
// every URI the playlists list carries it on. Caches and single flights name objects without
// it, so every viewer of a stream shares them whatever their token.
import Foundation

package enum PlaybackQuery {
    /// A query without its viewer's own parameters (`token`, the viewer session `vsid`, the
    /// page's referrer `ref`); nil when nothing else is left. What is left is the same for every
    /// viewer: caches and single flights key on it.
    package static func withoutToken(_ query: String?) -> String? {
        guard let query, !query.isEmpty else { return nil }
        let kept = query.split(separator: "&", omittingEmptySubsequences: true).filter {
            !$0.hasPrefix("token=") && $0 != "token" && !$0.hasPrefix("vsid=") && !$0.hasPrefix("ref=")
        }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }

    /// Whether a token may be written into URIs as it is: base64url characters only (a valid
    /// token always is), so nothing in it needs escaping.
    package static func isPlain(_ token: Substring) -> Bool {
        !token.isEmpty && token.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }

    /// The playlist with `token=` added to every URI it lists: URI lines (renditions,
    /// segments) and `URI="..."` attributes (init segments, parts, preload hints, rendition
    /// reports). Tags without a URI are kept as they are.
    package static func carrying(_ token: Substring, in playlist: String) -> String {
        carrying(query: "token=" + token, in: playlist)
    }

    /// The playlist with `query` (parameters already escaped: `token=...&vsid=...`) added to
    /// every URI it lists, as `carrying(_:in:)` does for a token.
    package static func carrying(query: String, in playlist: String) -> String {
        var out = ""
        out.reserveCapacity(playlist.utf8.count + 64 * 16)
        for line in playlist.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                // keep blank lines (and the final newline)
            } else if line.hasPrefix("#") {
                var rest = line[...]
                while let start = rest.range(of: "URI=\"") {
                    out += rest[..<start.upperBound]
                    rest = rest[start.upperBound...]
                    guard let end = rest.firstIndex(of: "\"") else { break }
                    let uri = rest[..<end]
                    out += uri
                    out += uri.contains("?") ? "&" : "?"
                    out += query
                    rest = rest[end...]
                }
                out += rest
            } else {
                out += line
                out += line.contains("?") ? "&" : "?"
                out += query
            }
            out += "\n"
        }
        out.removeLast()
        return out
    }
}
