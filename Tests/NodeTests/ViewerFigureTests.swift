import Analytics
import Catalog
import Cluster
import Foundation
import Logging
import XCTest
@testable import Live

/// Viewer sessions: the table a node keeps (ids, counting in and out, watch time from the media
/// durations served, bounds), the fast path's reading of a session, and the figures merged from
/// every node's reports on both engines.
final class ViewerFigureTests: XCTestCase {
    let logger = Logger(label: "test")

    // MARK: Session ids

    func testSessionIdsAreCheckedByShapeAndPackedBothWays() {
        for text in ["abcdefghijklmnop", "ABCDEFGHIJ-_01234567", "A-_z09abcdefghijklmn", "__________----------", "AAAAAAAAAAAAAAAAAAAA"] {
            XCTAssertEqual(ViewerSessionID(text)?.description, text)
        }
        XCTAssertNotEqual(ViewerSessionID("ABCDEFGHIJ-_01234567"), ViewerSessionID("ABCDEFGHIJ-_01234568"))
        XCTAssertNotEqual(ViewerSessionID("BBCDEFGHIJ-_01234567"), ViewerSessionID("ABCDEFGHIJ-_01234567"))
        XCTAssertNil(ViewerSessionID("short"))
        XCTAssertNil(ViewerSessionID(String(repeating: "a", count: 21)), "too long")
        XCTAssertNil(ViewerSessionID("abcdefghijklmnop/"), "not base64url")
        XCTAssertNil(ViewerSessionID("abcdefghijklmno%20"))
        XCTAssertNotEqual(ViewerSessionID("aaaaaaaaaaaaaaaaA"), ViewerSessionID("aaaaaaaaaaaaaaaaaA"), "the length counts")
        var g = SystemRandomNumberGenerator()
        let r = ViewerSessionID.random(using: &g)
        XCTAssertEqual(ViewerSessionID(r.description), r)
    }

    func testTheFastPathReadsTheSessionAndTokenInEitherOrderAndNothingElse() {
        let path = "/live/s1/360p/seg3-abcdef01.m4s"
        let a = MediaObjectRequest(target: path + "?vsid=abcdefghijklmnopq&token=tok")
        XCTAssertEqual(a?.session?.description, "abcdefghijklmnopq")
        XCTAssertEqual(a?.token, "tok")
        XCTAssertEqual(a?.path, path)
        let b = MediaObjectRequest(target: path + "?token=tok&vsid=abcdefghijklmnopq")
        XCTAssertEqual(b?.session, a?.session)
        XCTAssertEqual(b?.token, "tok")
        XCTAssertNil(MediaObjectRequest(target: path + "?vsid=abcdefghijklmnopq&x=1"), "another parameter: the router's")
        XCTAssertNil(MediaObjectRequest(target: path + "?vsid=a&vsid=b"), "twice: the router's")
        XCTAssertNotNil(MediaObjectRequest(target: path + "?vsid=bad"), "a malformed session is none, the object is still served")
        XCTAssertNil(MediaObjectRequest(target: path + "?vsid=bad")?.session)
        XCTAssertEqual(PlaybackQuery.withoutToken("_HLS_msn=3&vsid=abcdefghijklmnopq&token=x&ref=example.org&_HLS_part=1"),
                       "_HLS_msn=3&_HLS_part=1", "single flights are shared by every viewer")
        XCTAssertEqual(PlaybackQuery.carrying(query: "vsid=abcdefghijklmnopq", in: "#EXTM3U\n#EXT-X-PART:DURATION=0.5,URI=\"part1.0-abcdef01.m4s\"\nseg1-abcdef01.m4s\n"),
                       "#EXTM3U\n#EXT-X-PART:DURATION=0.5,URI=\"part1.0-abcdef01.m4s?vsid=abcdefghijklmnopq\"\nseg1-abcdef01.m4s?vsid=abcdefghijklmnopq\n")
    }

    /// The byte-level rewrite says what a line-by-line String one says, on the odd cases too: URIs
    /// with a query already, several URI attributes on a line, an attribute without its closing
    /// quote, blank lines, no final newline, a non-ASCII name.
    func testCarryingAQueryMatchesTheLineByLineRewrite() {
        func reference(_ query: String, _ playlist: String) -> String {
            playlist.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                if line.isEmpty { return "" }
                guard line.hasPrefix("#") else { return line + (line.contains("?") ? "&" : "?") + query }
                var out = "", rest = line[...]
                while let start = rest.range(of: "URI=\"") {
                    let value = rest[start.upperBound...]
                    guard let end = value.firstIndex(of: "\"") else { break }
                    out += rest[..<end] + (value[..<end].contains("?") ? "&" : "?") + query
                    rest = rest[end...]
                }
                return out + rest
            }.joined(separator: "\n")
        }
        let playlists = [
            "", "\n", "#EXTM3U", "seg1.m4s", "seg1.m4s?x=1\n",
            "#EXT-X-MAP:URI=\"init-1.mp4\"\n\n#EXTINF:2.0,\nseg1.m4s\n",
            "#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8?a=b\",LAST-MSN=3\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p.m4s\"",
            "#X:URI=\"a\",URI=\"b?c\",URI=\"broken\n#EXT-X-PART:URI=\"é.m4s\"\nvidéo.m4s",
        ]
        for p in playlists {
            XCTAssertEqual(PlaybackQuery.carrying(query: "vsid=abc&token=T", in: p), reference("vsid=abc&token=T", p), p)
        }
    }

    // MARK: The table

    static let playlist = """
        #EXTM3U
        #EXT-X-TARGETDURATION:2
        #EXT-X-MAP:URI="init0-abcdef01.mp4"
        #EXTINF:2.00000,
        seg1-abcdef01.m4s
        #EXT-X-PART:DURATION=0.50000,URI="part2.0-abcdef01.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=0.48000,URI="part2.1-abcdef01.m4s?vsid=abcdefghijklmnopq"
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part2.2-abcdef01.m4s"

        """

    func testWatchTimeIsTheDurationOfWhatWasServedEachObjectOnce() {
        var t = ViewerSessionTable()
        let base = "/live/s1/360p/"
        t.learnDurations(playlist: Self.playlist, base: base)
        XCTAssertEqual(t.duration(of: base + "seg1-abcdef01.m4s"), 2)
        XCTAssertEqual(t.duration(of: base + "part2.1-abcdef01.m4s"), 0.48)
        XCTAssertNil(t.duration(of: base + "init0-abcdef01.mp4"))
        let s = ViewerSessionID("abcdefghijklmnopq")!
        XCTAssertTrue(t.notePoll(stream: "s1", session: s, rendition: "360p", device: .desktop, referrer: "example.org", now: 100))
        t.noteObject(stream: "s1", session: s, path: base + "init0-abcdef01.mp4", bytes: 700, now: 100.1)
        t.noteObject(stream: "s1", session: s, path: base + "seg1-abcdef01.m4s", bytes: 1000, now: 100.2)
        t.noteObject(stream: "s1", session: s, path: base + "seg1-abcdef01.m4s", bytes: 1000, now: 100.3)  // a retry
        t.noteObject(stream: "s1", session: s, path: base + "part2.0-abcdef01.m4s", bytes: 100, now: 100.4)
        t.noteObject(stream: "s1", session: s, path: base + "part2.1-abcdef01.m4s", bytes: 100, now: 100.5)
        var reports = t.drain(now: 101)
        XCTAssertEqual(reports.count, 1)
        XCTAssertEqual(reports[0].watchMs, 2980)
        XCTAssertEqual(reports[0].bytes, 1900)
        XCTAssertEqual(reports[0].session, "abcdefghijklmnopq")
        XCTAssertEqual(reports[0].rendition, "360p")
        XCTAssertEqual(reports[0].device, "desktop")
        XCTAssertEqual(reports[0].referrer, "example.org")
        XCTAssertEqual(t.watching(stream: "s1", now: 101), 1)
        // Nothing new: nothing reported; deltas were reset.
        XCTAssertEqual(t.drain(now: 102), [])
        t.noteObject(stream: "s1", session: s, path: base + "part2.0-abcdef01.m4s", bytes: 100, now: 103)  // still in the recent ones
        reports = t.drain(now: 103)
        XCTAssertEqual(reports.first?.watchMs, 0)
        XCTAssertEqual(reports.first?.lastSeen, 103)
        // A failed write puts its deltas back.
        t.noteObject(stream: "s1", session: s, path: base + "seg1-abcdef01.m4s?other", bytes: 5, now: 104)
        let failed = t.drain(now: 104)
        t.restore(failed)
        XCTAssertEqual(t.drain(now: 104).first?.bytes, 5)
    }

    func testASessionIsCountedOutAfterItsLastRequestAndReportedOnceMore() {
        var t = ViewerSessionTable(idle: 10)
        let s = ViewerSessionID("abcdefghijklmnopq")!
        t.notePoll(stream: "s1", session: s, rendition: nil, device: .player, referrer: nil, now: 0)
        t.notePoll(stream: "s1", session: s, rendition: "360p", device: .player, referrer: nil, now: 5)
        XCTAssertEqual(t.drain(now: 6).first?.lastSeen, 5)
        XCTAssertEqual(t.watching(stream: "s1", now: 14), 1)
        XCTAssertEqual(t.watching(stream: "s1", now: 15.5), 0)
        XCTAssertEqual(t.count, 1)
        _ = t.drain(now: 16)
        XCTAssertEqual(t.count, 0, "forgotten once idle")
        // Coming back: a new entry, whose report adds to the row in the database.
        t.notePoll(stream: "s1", session: s, rendition: "360p", device: .player, referrer: nil, now: 30)
        XCTAssertEqual(t.drain(now: 31).first?.firstSeen, 30)
    }

    func testTheTableIsBounded() {
        var t = ViewerSessionTable(capacity: 3, durationCapacity: 2)
        var g = SystemRandomNumberGenerator()
        for i in 0..<5 {
            t.notePoll(stream: "s1", session: .random(using: &g), rendition: nil, device: .other, referrer: nil, now: Double(i))
        }
        XCTAssertEqual(t.count, 3)
        XCTAssertEqual(t.refused, 2)
        t.noteObject(stream: "s2", session: .random(using: &g), path: "/live/s2/a/seg1-abcdef01.m4s", bytes: 1, now: 1)
        XCTAssertEqual(t.count, 3)
        XCTAssertEqual(t.refused, 3)
        t.learnDurations(playlist: Self.playlist, base: "/live/s1/360p/")
        XCTAssertNil(t.duration(of: "/live/s1/360p/seg1-abcdef01.m4s"), "the oldest forgotten")
        XCTAssertEqual(t.duration(of: "/live/s1/360p/part2.1-abcdef01.m4s"), 0.48)
        // A hostile playlist's nonsense durations are not kept.
        var u = ViewerSessionTable()
        u.learnDurations(playlist: "#EXTINF:nan,\nseg1-abcdef01.m4s\n#EXTINF:1e9,\nseg2-abcdef01.m4s\n#EXT-X-PART:DURATION=-1,URI=\"p\"\n",
                         base: "/x/")
        XCTAssertNil(u.duration(of: "/x/seg1-abcdef01.m4s"))
        XCTAssertNil(u.duration(of: "/x/seg2-abcdef01.m4s"))
        XCTAssertNil(u.duration(of: "/x/p"))
    }

    func testDevicesAndReferrers() {
        XCTAssertEqual(DeviceClass.of(userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"), .mobile)
        XCTAssertEqual(DeviceClass.of(userAgent: "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Safari/537.36"), .tablet)
        XCTAssertEqual(DeviceClass.of(userAgent: "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120"), .desktop)
        XCTAssertEqual(DeviceClass.of(userAgent: "Lavf/60.16.100"), .player)
        XCTAssertEqual(DeviceClass.of(userAgent: nil), .other)
        XCTAssertEqual(ViewerSessions.referrerHost(query: "ref=News.Example.org", header: nil), "news.example.org")
        XCTAssertEqual(ViewerSessions.referrerHost(query: nil, header: "http://127.0.0.1:8080/watch/x"), "127.0.0.1:8080")
        XCTAssertNil(ViewerSessions.referrerHost(query: "ref=%3Cscript%3E", header: nil))
        XCTAssertNil(ViewerSessions.referrerHost(query: "ref=" + String(repeating: "a", count: 101), header: nil))
    }

    func testBeaconsAreLimitedPerSessionInATableOfBoundedSize() {
        let limiter = BeaconLimiter(burst: 3, perSecond: 1, capacity: 2)
        XCTAssertEqual((0..<5).map { _ in limiter.allow("s/a", now: 0) }, [true, true, true, false, false])
        XCTAssertTrue(limiter.allow("s/a", now: 1.1), "a second later, one more")
        XCTAssertFalse(limiter.allow("s/a", now: 1.2))
        XCTAssertTrue(limiter.allow("s/b", now: 1.2))
        XCTAssertFalse(limiter.allow("s/c", now: 1.3), "full: a third session waits")
        XCTAssertEqual(limiter.count, 2)
        XCTAssertTrue(limiter.allow("s/c", now: 10), "quiet sessions make room")
        XCTAssertLessThanOrEqual(limiter.count, 2)
    }

    // MARK: The figures, merged from every node, on both engines

    func testFiguresMergeEveryNodesReportsAndOutliveTheOwnerOnBothEngines() async throws {
        let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
        for location in try await TestDatabases.fresh() {
            let engine = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let other = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            do {
                let a = ViewerFigureStore(database: db), b = ViewerFigureStore(database: other)
                let t0 = 1_800_000_000.0
                func report(_ session: String, seen: Double, watchMs: Int64, rendition: String = "360p", device: String = "desktop",
                            referrer: String? = nil) -> ViewerSessionReport {
                    ViewerSessionReport(stream: "s1", session: session, rendition: rendition, device: device, referrer: referrer,
                                        firstSeen: t0, lastSeen: seen, watchMs: watchMs, bytes: watchMs * 10)
                }
                // v1 watched on nodes a (r1) and c (r2); v2 on a only; v3 left long ago.
                try await a.save([report("v1", seen: t0 + 20, watchMs: 4000, referrer: "example.org"),
                                  report("v2", seen: t0 + 19, watchMs: 2500, device: "mobile")], node: "a", region: "r1")
                try await a.save([report("v1", seen: t0 + 21, watchMs: 1000)], node: "a", region: "r1")
                try await b.save([report("v1", seen: t0 + 18, watchMs: 500, rendition: "180p"),
                                  report("v3", seen: t0 + 2, watchMs: 2000)], node: "c", region: "r2")
                try await a.sample(stream: "s1", now: t0 + 10)
                let now22 = try await a.concurrent(stream: "s1", now: t0 + 22)
                XCTAssertEqual(now22, 2, engine)
                try await b.sample(stream: "s1", now: t0 + 22)
                var f = try await a.figures(stream: "s1", now: t0 + 22)
                XCTAssertEqual(f.concurrentViewers, 2, engine)
                XCTAssertEqual(f.uniqueViewers, 3, "v1 counts once: \(engine)")
                XCTAssertEqual(f.watchSeconds, 10, accuracy: 0.001, engine)
                XCTAssertEqual(f.averageWatchSeconds, 10.0 / 3, accuracy: 0.001)
                XCTAssertEqual(f.peakViewers, 3, "v1, v2 and v3 at t0+10: \(engine)")
                XCTAssertEqual(f.series.map(\.viewers), [3, 2])
                XCTAssertEqual(f.series.map(\.at), [t0 + 10, t0 + 20])
                XCTAssertEqual(f.byRegion, [ViewerBreakdown(name: "r1", viewers: 2, watchSeconds: 7.5),
                                            ViewerBreakdown(name: "r2", viewers: 2, watchSeconds: 2.5)], engine)
                XCTAssertEqual(f.byDevice.first(where: { $0.name == "mobile" })?.viewers, 1)
                XCTAssertEqual(f.byReferrer.first(where: { $0.name == "example.org" })?.watchSeconds, 5)
                XCTAssertNil(f.startupMs)
                XCTAssertNil(f.rebufferingRatio)
                // Many sessions at once, in several statements.
                let many = (0..<25).map { report("m\($0)", seen: t0 + 3, watchMs: 100) }
                try await b.save(many, node: "c", region: "r2", batch: 10)
                try await b.save(many, node: "c", region: "r2", batch: 10)
                let m = try await a.figures(stream: "s1", now: t0 + 22)
                XCTAssertEqual(m.uniqueViewers, 28, engine)
                XCTAssertEqual(m.watchSeconds, 15, accuracy: 0.001, "each report adds: \(engine)")
                XCTAssertEqual(m.concurrentViewers, 2)
                try await b.database.sql.raw("DELETE FROM viewer_sessions WHERE session_id LIKE 'm%'").run()
                // Counted out after the window: only v1 (seen at +21) at +28.5, none at +29.5.
                let (at28, at29) = (try await b.concurrent(stream: "s1", now: t0 + 28.5), try await b.concurrent(stream: "s1", now: t0 + 29.5))
                XCTAssertEqual(at28, 1)
                XCTAssertEqual(at29, 0)
                // Two owners in one interval (a failover) keep the larger sample.
                try await a.sample(stream: "s1", now: t0 + 29)
                try await b.sample(stream: "s1", now: t0 + 29.9)
                f = try await b.figures(stream: "s1", now: t0 + 40)
                XCTAssertEqual(f.series.map(\.viewers), [3, 2, 1], engine)
                XCTAssertEqual(f.concurrentViewers, 0)
                XCTAssertEqual(f.peakViewers, 3)
                let (recent, none) = (try await b.streamsWatched(since: t0 + 19), try await b.streamsWatched(since: t0 + 30))
                XCTAssertEqual(recent, ["s1"])
                XCTAssertEqual(none, [])
                // Beacons: startup kept once, stalls add up.
                let (known, unknown) = (try await a.knows(stream: "s1", session: "v1"), try await a.knows(stream: "s1", session: "nobody"))
                XCTAssertTrue(known)
                XCTAssertFalse(unknown)
                try await a.beacon(stream: "s1", session: "v1", startupMs: 800, stalledMs: 0, playedMs: 9000, stalls: 0, now: t0 + 30)
                try await b.beacon(stream: "s1", session: "v1", startupMs: 5000, stalledMs: 1000, playedMs: 0, stalls: 1, now: t0 + 31)
                try await a.beacon(stream: "s1", session: "v2", startupMs: 1200, stalledMs: 0, playedMs: 0, stalls: 0, now: t0 + 31)
                f = try await a.figures(stream: "s1", now: t0 + 40)
                XCTAssertEqual(f.startupMs, 1200, engine)
                XCTAssertEqual(f.rebufferingRatio ?? -1, 0.1, accuracy: 0.0001, engine)
            } catch {
                await db.close()
                await other.close()
                throw error
            }
            await db.close()
            await other.close()
        }
    }
}
