import NIOCore
import XCTest
@testable import Live

/// The edge's playlist cache (what is kept, how long, bounded) and the objects it prefetches
/// from a playlist.
final class EdgePlaylistCacheTests: XCTestCase {
    static let live = """
        #EXTM3U
        #EXT-X-VERSION:9
        #EXT-X-TARGETDURATION:2
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,CAN-SKIP-UNTIL=12
        #EXT-X-PART-INF:PART-TARGET=0.334
        #EXT-X-MEDIA-SEQUENCE:7
        #EXT-X-MAP:URI="init0-0a1b2c3d.mp4"
        #EXT-X-PART:DURATION=0.33400,URI="part7.0-0a1b2c3d.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=0.33400,URI="part7.1-0a1b2c3d.m4s"
        #EXTINF:2.00000,
        seg7-0a1b2c3d.m4s
        #EXT-X-PART:DURATION=0.33400,URI="part8.0-0a1b2c3d.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=0.33400,URI="part8.1-0a1b2c3d.m4s?vsid=abc"
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part8.2-0a1b2c3d.m4s"

        """

    func answer(_ text: String, cache: String? = "public, max-age=1", status: Int = 200) -> UpstreamResponse {
        UpstreamResponse(status: status, contentType: "application/vnd.apple.mpegurl", cacheControl: cache, body: ByteBuffer(string: text))
    }

    func testALivePlaylistWithoutBlockingIsKeptForOnePartDuration() {
        var cache = EdgePlaylistCache()
        let key = "/live/s1/source/index.m3u8"
        cache.keep(key, answer(Self.live), now: 100)
        XCTAssertEqual(cache.answer(key, now: 100.3).map { String(buffer: $0.body) }, Self.live)
        XCTAssertNil(cache.answer(key, now: 100.34), "a join must not start further behind than one part")
        XCTAssertEqual(cache.count, 0, "an expired answer is dropped when found")
    }

    func testBlockingReloadsAndMastersAreKeptForTheirMaxAge() {
        var cache = EdgePlaylistCache()
        let blocking = "/live/s1/source/index.m3u8?_HLS_msn=8&_HLS_part=2"
        cache.keep(blocking, answer(Self.live), now: 0)
        XCTAssertNotNil(cache.answer(blocking, now: 0.9))
        XCTAssertNil(cache.answer(blocking, now: 1.0))
        let master = "/live/s1/master.m3u8"
        cache.keep(master, answer("#EXTM3U\nsource/index.m3u8\n"), now: 0)
        XCTAssertNotNil(cache.answer(master, now: 0.99))
        XCTAssertNil(cache.answer("/live/s1/source/index.m3u8?_HLS_msn=8&_HLS_part=3", now: 0.5), "another target is another answer")
        // An ended playlist too is kept one part, whatever its max-age: the stream may start again.
        XCTAssertEqual(EdgePlaylistCache.lifetime(of: answer(Self.live + "#EXT-X-ENDLIST\n", cache: "public, max-age=10"),
                                                  key: "/live/s1/source/index.m3u8"), 0.334)
    }

    func testABlockingReloadBehindLiveIsAnsweredWithTheNewestPlaylistHoldingItsTarget() {
        var cache = EdgePlaylistCache()
        // Self.live holds segment 7 whole and parts 8.0 and 8.1.
        let path = "/live/s1/source/index.m3u8"
        cache.keep(path + "?_HLS_msn=8&_HLS_part=1", answer(Self.live), now: 10)
        for (query, held) in [("_HLS_msn=8&_HLS_part=1", true), ("_HLS_msn=8&_HLS_part=0", true), ("_HLS_msn=7&_HLS_part=5", true),
                              ("_HLS_msn=7", true), ("_HLS_msn=3&_HLS_part=0", true), ("_HLS_msn=8&_HLS_part=2", false),
                              ("_HLS_msn=8", false), ("_HLS_msn=9&_HLS_part=0", false)] {
            XCTAssertEqual(cache.answer(path + "?" + query, now: 10.5) != nil, held, query)
        }
        // Another query is another playlist (a delta update); a plain reload is a join's.
        XCTAssertNil(cache.answer(path + "?_HLS_msn=8&_HLS_part=0&_HLS_skip=YES", now: 10.5))
        XCTAssertNil(cache.answer(path, now: 10.5))
        XCTAssertNil(cache.answer("/live/s1/720p/index.m3u8?_HLS_msn=8&_HLS_part=0", now: 10.5))
        // No longer than its max-age.
        XCTAssertNil(cache.answer(path + "?_HLS_msn=8&_HLS_part=0", now: 11.0))

        // The newest is kept, not the last one stored: a late answer to an older target does not
        // take its place.
        let later = Self.live.replacingOccurrences(
            of: "#EXT-X-PRELOAD-HINT", with: "#EXT-X-PART:DURATION=0.33400,URI=\"part8.2-0a1b2c3d.m4s\"\n#EXT-X-PRELOAD-HINT")
        cache.keep(path + "?_HLS_msn=8&_HLS_part=2", answer(later), now: 20)
        cache.keep(path + "?_HLS_msn=8&_HLS_part=1", answer(Self.live), now: 20.1)
        XCTAssertEqual(cache.answer(path + "?_HLS_msn=8&_HLS_part=0", now: 20.2).map { String(buffer: $0.body) }, later)
        // An ended playlist holds every target.
        cache.keep(path + "?_HLS_msn=9&_HLS_part=0", answer(Self.live + "#EXT-X-ENDLIST\n"), now: 30)
        XCTAssertNotNil(cache.answer(path + "?_HLS_msn=12&_HLS_part=3", now: 30.5))
        // A delta update's skipped segments count.
        let delta = Self.live.replacingOccurrences(of: "#EXT-X-MEDIA-SEQUENCE:7\n", with: "#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n")
        XCTAssertEqual(EdgePlaylistCache.position(delta), EdgePlaylistCache.position(Self.live))
        XCTAssertEqual(EdgePlaylistCache.position(Self.live), .init(complete: 7, parts: 2))
        XCTAssertNil(EdgePlaylistCache.position("#EXTM3U\nsource/index.m3u8\n"), "a master playlist")
        // Malformed or repeated targets are the origin's to refuse, never answered from here.
        for query in ["_HLS_msn=x&_HLS_part=0", "_HLS_msn=8&_HLS_msn=7", "_HLS_msn=-1", "_HLS_part=0"] {
            XCTAssertNil(EdgePlaylistCache.blockingTarget(path + "?" + query), query)
        }
        XCTAssertEqual(EdgePlaylistCache.blockingTarget(path + "?_HLS_skip=YES&_HLS_msn=8&_HLS_part=1").map { "\($0.base) \($0.msn) \($0.part ?? -1)" },
                       path + "?_HLS_skip=YES 8 1")
    }

    func testWhatTheOriginDoesNotShareIsNotKept() {
        let key = "/live/s1/master.m3u8"
        for cacheControl in ["private, max-age=1", "no-cache", "public, max-age=1, no-store", "public", "public, max-age=0", nil] {
            XCTAssertNil(EdgePlaylistCache.lifetime(of: answer("#EXTM3U\n", cache: cacheControl), key: key), "\(cacheControl ?? "none")")
        }
        for status in [404, 503, 304] {
            XCTAssertNil(EdgePlaylistCache.lifetime(of: answer("#EXTM3U\n", status: status), key: key), "\(status)")
        }
    }

    func testTheCacheIsBoundedWhateverQueriesViewersSend() {
        var cache = EdgePlaylistCache(capacity: 3)
        for i in 0..<3 { cache.keep("/live/s1/master.m3u8?x=\(i)", answer("#EXTM3U\n"), now: 0) }
        // Full of fresh answers: everything goes.
        cache.keep("/live/s1/master.m3u8?x=3", answer("#EXTM3U\n"), now: 0.5)
        XCTAssertEqual(cache.count, 1)
        cache.keep("/live/s1/master.m3u8?x=4", answer("#EXTM3U\n"), now: 0.6)
        cache.keep("/live/s1/master.m3u8?x=5", answer("#EXTM3U\n"), now: 0.7)
        // Full with some expired: only those go.
        cache.keep("/live/s1/master.m3u8?x=6", answer("#EXTM3U\n"), now: 1.55)
        XCTAssertEqual(cache.count, 3)
        XCTAssertNotNil(cache.answer("/live/s1/master.m3u8?x=6", now: 1.6))
        XCTAssertNil(cache.answer("/live/s1/master.m3u8?x=3", now: 1.6))
    }

    func testPrefetchTakesTheNewestPartAndThePreloadHint() {
        XCTAssertEqual(EdgePrefetch.targets(in: Self.live), ["part8.1-0a1b2c3d.m4s", "part8.2-0a1b2c3d.m4s"])
        XCTAssertEqual(EdgePrefetch.targets(in: Self.live + "#EXT-X-ENDLIST\n"), [], "an ended stream has no next part")
        XCTAssertEqual(EdgePrefetch.targets(in: "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsource/index.m3u8\n"), [])
        // Names that are not canonical media names are never fetched.
        let odd = "#EXTM3U\n#EXT-X-PART:DURATION=0.3,URI=\"../../etc/part1.0-0a1b2c3d.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part01.0-0a1b2c3d.m4s\"\n"
        XCTAssertEqual(EdgePrefetch.targets(in: odd), [])
    }
}
