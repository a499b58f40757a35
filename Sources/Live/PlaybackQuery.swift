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
    /// Works on the UTF-8 bytes (an edge does this for every viewer's every playlist).
    package static func carrying(query: String, in playlist: String) -> String {
        let q = Array(query.utf8)
        let src = Array(playlist.utf8)
        let mark = Array("URI=\"".utf8)
        let (newline, hash, quote, questionMark, ampersand): (UInt8, UInt8, UInt8, UInt8, UInt8) = (0x0A, 0x23, 0x22, 0x3F, 0x26)
        var out: [UInt8] = []
        out.reserveCapacity(src.count + 64 * (q.count + 1))
        /// Where `mark` begins in `src[from..<end]`, if it does.
        func find(from: Int, end: Int) -> Int? {
            var i = from
            while i + mark.count <= end {
                if src[i] == mark[0], src[i..<i + mark.count].elementsEqual(mark) { return i }
                i += 1
            }
            return nil
        }
        var lineStart = 0
        while lineStart <= src.count {
            let lineEnd = src[lineStart...].firstIndex(of: newline) ?? src.count
            if lineEnd > lineStart {
                if src[lineStart] == hash {
                    // A tag: every URI="..." attribute gets the query, the rest is kept.
                    var i = lineStart
                    while let m = find(from: i, end: lineEnd) {
                        let value = m + mark.count
                        guard let close = src[value..<lineEnd].firstIndex(of: quote) else { break }
                        out += src[i..<close]
                        out.append(src[value..<close].contains(questionMark) ? ampersand : questionMark)
                        out += q
                        i = close
                    }
                    out += src[i..<lineEnd]
                } else {
                    out += src[lineStart..<lineEnd]
                    out.append(src[lineStart..<lineEnd].contains(questionMark) ? ampersand : questionMark)
                    out += q
                }
            }
            if lineEnd < src.count { out.append(newline) }
            lineStart = lineEnd + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
