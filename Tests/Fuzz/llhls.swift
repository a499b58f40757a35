// libFuzzer target: what a player puts in an LL-HLS request. The input's lines are a media
// object's name, a query and a playlist:
// - the name is read by `MediaName` and by `MediaName.isImmutableObject` (the fast path's byte
//   reading), which must agree, and a name that parses is spelled as the playlists write it
//   (`MediaPlaylist.segmentURI` and its siblings): one name an object;
// - the query, read as the router reads it, gives a `PlaylistRequest` (`_HLS_msn`, `_HLS_part`,
//   `_HLS_skip`) or a 400, never a negative target or a part without its segment; without its
//   viewer's parameters (`PlaybackQuery.withoutToken`) it keeps none of them and stays so;
// - the playlist, carrying a token and a session (`PlaybackQuery.carrying`), keeps its lines,
//   and every URI line carries the query.
// Built with MediaName.swift, PlaylistRequest.swift, PlaybackQuery.swift and ViewerSessionID.swift
// by ops/fuzz (`swiftc -sanitize=fuzzer,address`, Hummingbird and Origin from the SwiftPM build).
import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdCore
import Origin

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: count)
    let lines = input.split(separator: 10, maxSplits: 2, omittingEmptySubsequences: false)
    let name = String(decoding: lines[0], as: UTF8.self)
    let query = lines.count > 1 ? String(decoding: lines[1], as: UTF8.self) : ""
    let playlist = lines.count > 2 ? String(decoding: lines[2], as: UTF8.self) : ""

    // The name, two ways.
    let parsed = MediaName(name)
    precondition((parsed?.isImmutable == true) == MediaName.isImmutableObject(Substring(name).utf8),
                 "MediaName(\(name.debugDescription)) is \(parsed.debugDescription), the byte reading disagrees")
    switch parsed {
    case .initSegment(let v, let e): precondition(MediaPlaylist.initURI(version: v, epoch: e) == name, "\(name.debugDescription) is not spelled as written")
    case .segment(let n, let e): precondition(MediaPlaylist.segmentURI(sequence: n, epoch: e) == name, "\(name.debugDescription) is not spelled as written")
    case .part(let n, let i, let e): precondition(MediaPlaylist.partURI(sequence: n, index: i, epoch: e) == name, "\(name.debugDescription) is not spelled as written")
    case .playlist: precondition(name == "index.m3u8")
    case nil: break
    }
    if let id = ViewerSessionID(name) { precondition(id.description == name, "session \(name.debugDescription) reads back as \(id)") }

    // The query, as the router hands it to the media playlist route.
    let uri = URI("/live/st_8fK2mQ/720p/index.m3u8?" + query)
    let parameters = uri.queryParameters
    if let asked = try? PlaylistRequest(parameters) {
        switch asked.target {
        case .part(let m, let i): precondition(m >= 0 && i >= 0 && parameters.get("_HLS_part").flatMap { Int($0) } == i, "part \(m).\(i)")
        case .segment(let m): precondition(m >= 0 && parameters.get("_HLS_part") == nil, "segment \(m)")
        case nil: precondition(parameters.get("_HLS_msn") == nil && parameters.get("_HLS_part") == nil, "no target for \(query.debugDescription)")
        }
        precondition(asked.skip == (parameters.get("_HLS_skip").map { $0 == "YES" || $0 == "v2" } ?? false))
    }
    let shared = PlaybackQuery.withoutToken(uri.query)
    if let shared {
        for item in shared.split(separator: "&") {
            precondition(!item.hasPrefix("token=") && item != "token" && !item.hasPrefix("vsid=") && !item.hasPrefix("ref="), "\(item) kept")
        }
        precondition(PlaybackQuery.withoutToken(shared) == shared, "withoutToken is not idempotent on \(query.debugDescription)")
    }

    // The playlist, carrying a viewer's token and session.
    let token = Substring(name)
    let carry = "token=" + (PlaybackQuery.isPlain(token) ? token : "eyJhbGciOi") + "&vsid=AbCdEfGhIjKlMnOpQrSt"
    let carried = PlaybackQuery.carrying(query: carry, in: playlist)
    let before = playlist.utf8.split(separator: 10, omittingEmptySubsequences: false)
    let after = carried.utf8.split(separator: 10, omittingEmptySubsequences: false)
    precondition(before.count == after.count, "\(before.count) lines became \(after.count)")
    for (b, a) in zip(before, after) where !b.isEmpty && b.first != UInt8(ascii: "#") {
        precondition(a.starts(with: b) && a.count == b.count + 1 + carry.utf8.count && a.reversed().starts(with: carry.utf8.reversed()),
                     "a URI line does not carry the query")
    }
    return 0
}

/// Object names, queries and a playlist as an LL-HLS player and the origin write them.
func writeSeeds(to dir: String) {
    let epoch = StreamEpoch(0x1f2a3b4c)
    let playlist = [
        "#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-VERSION:9", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0",
        "#EXT-X-PART-INF:PART-TARGET=0.333", "#EXT-X-MEDIA-SEQUENCE:10", "#EXT-X-MAP:URI=\"\(MediaPlaylist.initURI(version: 0, epoch: epoch))\"",
        "#EXTINF:2.000,", MediaPlaylist.segmentURI(sequence: 10, epoch: epoch),
        "#EXT-X-PART:DURATION=0.333,URI=\"\(MediaPlaylist.partURI(sequence: 11, index: 0, epoch: epoch))\",INDEPENDENT=YES",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"\(MediaPlaylist.partURI(sequence: 11, index: 1, epoch: epoch))?x=1\"",
        "#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=11,LAST-PART=0", "",
    ].joined(separator: "\n")
    let seeds: [(String, String, String)] = [
        ("blocking-part", MediaPlaylist.partURI(sequence: 11, index: 1, epoch: epoch), "_HLS_msn=11&_HLS_part=1&token=eyJhbGciOi&vsid=AbCdEfGhIjKlMnOpQrSt"),
        ("blocking-segment", MediaPlaylist.segmentURI(sequence: 12, epoch: epoch), "_HLS_msn=12&_HLS_skip=YES"),
        ("delta", MediaPlaylist.initURI(version: 3, epoch: epoch), "_HLS_skip=v2&ref=example.org"),
        ("bad", "index.m3u8", "_HLS_part=2&_HLS_msn=-1&_HLS_msn=x%20y"),
        ("session", "AbCdEfGhIjKlMnOpQrSt", "vsid=AbCdEfGhIjKlMnOpQrSt&token"),
    ]
    for (file, name, query) in seeds {
        _ = FileManager.default.createFile(atPath: "\(dir)/\(file)", contents: Data((name + "\n" + query + "\n" + playlist).utf8))
    }
}
