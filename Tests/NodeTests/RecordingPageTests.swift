// A recording's page (`/recordings/{id}`) and the watch page's DVR: what they show, to whom, and
// the recording a live stream is making (`/watch/{id}/recording`).
import Catalog
import Foundation
import HTTPSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Web
import XCTest
@testable import App

final class RecordingPageTests: XCTestCase {
    static let base = "https://stream.example.com"

    func withApp(_ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        try await RouteTests.withRouter(publicURL: Self.base, body)
    }

    static let started = Date(timeIntervalSince1970: 1_796_000_000)  // 30 Nov 2026, 00:53:20 UTC

    /// A node's report of a recording of `stream`.
    static func report(_ app: NodeApplication, stream: String, first: Int = 0, state: String, seconds: Double = 754,
                       started: Date = started, updated: Date = Date()) async throws -> String {
        let id = "\(stream)-abcdef01-\(first)"
        try await RecordingStore(database: app.database).save(
            RecordingCopy(id: id, nodeID: "n1", streamID: stream, state: state, startedAt: started,
                          endedAt: state == "recording" ? nil : started.addingTimeInterval(seconds), durationSeconds: seconds,
                          bytes: 1000, renditions: ["source"]), now: updated)
        return id
    }

    func testARecordingsPageHasItsPlayerTitleLengthDownloadAndCard() async throws {
        try await withApp { client, app in
            let id = try await SharingRouteTests.create(client, ["title": "Night <show>", "description": "About & more"])
            let rec = try await Self.report(app, stream: id, state: "ready")
            try await client.execute(uri: "/recordings/\(rec)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let html = String(buffer: r.body)
                let url = "\(Self.base)/recordings/\(rec)"
                for part in ["<title>Night &lt;show&gt; (30 Nov 2026, 00:53 UTC) · StreamTube</title>",
                             "<h1>Night &lt;show&gt;</h1>", #"<time datetime="2026-11-30T00:53:20Z">30 Nov 2026, 00:53 UTC</time>"#,
                             ">12:34</span>",
                             #"data-stream="\#(id)" data-recording="\#(rec)""#, " controls ",
                             #"<a href="/recordings/\#(rec)/download.mp4" download>Download (MP4)</a>"#,
                             #"<a href="/watch/\#(id)">The stream's page</a>"#,
                             #"<input type="range" id="seek""#, #"<label for="seek">Position</label>"#,
                             #"<meta property="og:title" content="Night &lt;show&gt; (30 Nov 2026, 00:53 UTC)">"#,
                             #"<meta property="og:url" content="\#(url)">"#, #"<link rel="canonical" href="\#(url)">"#,
                             #"<meta property="og:type" content="video.other">"#,
                             #"<meta property="og:description" content="About &amp; more">"#,
                             #"<button type="button" data-copy="\#(url)">Copy link</button>"#,
                             "import { attach } from '\(WatchPage.pagePath)'"] {
                    XCTAssertTrue(html.contains(part), part)
                }
                XCTAssertFalse(html.contains("golive"), "a finished recording has no live to go back to")
                XCTAssertFalse(html.contains("noindex"))
                XCTAssertFalse(html.contains("oembed"), "oEmbed answers for watch pages only")
                XCTAssertEqual(r.headers[.xFrameOptions], "DENY")
                let csp = try XCTUnwrap(r.headers[.contentSecurityPolicy])
                let nonce = csp.components(separatedBy: "'nonce-")[1].prefix { $0 != "'" }
                XCTAssertTrue(html.contains(#"<script type="module" nonce="\#(nonce)">"#))
            }
            // Still being made: it plays (EVENT), the download waits for the end.
            let live = try await Self.report(app, stream: id, first: 400, state: "recording", seconds: 65)
            try await client.execute(uri: "/recordings/\(live)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let html = String(buffer: r.body)
                XCTAssertFalse(html.contains("download.mp4"))
                XCTAssertTrue(html.contains("Still being recorded"))
                XCTAssertTrue(html.contains(">so far 1:05</span>"))
            }
        }
    }

    func testUnknownPrivateAndUnlistedRecordings() async throws {
        try await withApp { client, app in
            for uri in ["/recordings/nosuch-abcdef01-0", "/recordings/x", "/recordings/" + String(repeating: "a", count: 300)] {
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.status, .notFound, uri)
                    XCTAssertTrue(String(buffer: r.body).contains("No such recording"), uri)
                }
            }
            // A recording whose stream is gone: 404 too.
            let orphan = try await Self.report(app, stream: "gone12", state: "ready")
            try await client.execute(uri: "/recordings/\(orphan)", method: .get) { r in XCTAssertEqual(r.status, .notFound) }

            let secret = try await SharingRouteTests.create(client, ["title": "Secret", "description": "the plot", "visibility": "invite-only"])
            let rec = try await Self.report(app, stream: secret, state: "ready")
            try await client.execute(uri: "/recordings/\(rec)", method: .get) { r in
                XCTAssertEqual(r.status, .forbidden)
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("This stream is private"), "the watch page's refusal")
                XCTAssertTrue(html.contains(#"<meta name="robots" content="noindex">"#))
                XCTAssertFalse(html.contains("the plot"))
                XCTAssertFalse(html.contains("og:image"))
                XCTAssertFalse(html.contains("download.mp4"))
                XCTAssertFalse(html.contains("data-recording"))
            }
            let unlisted = try await SharingRouteTests.create(client, ["title": "By link", "visibility": "unlisted"])
            let shown = try await Self.report(app, stream: unlisted, state: "incomplete")
            try await client.execute(uri: "/recordings/\(shown)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("noindex"), "an unlisted stream's recording is kept out of search engines")
                XCTAssertTrue(html.contains("Parts of it could not be kept"))
                XCTAssertTrue(html.contains("download.mp4"), "what was kept downloads")
            }
        }
    }

    /// What people set on a recording shows on its page: its own title, description and length as
    /// trimmed; its own visibility decides who sees it (a public stream's invite-only recording is
    /// refused like a private stream's); a deleted one is gone.
    func testARecordingsPageShowsWhatPeopleSetOnIt() async throws {
        try await withApp { client, app in
            let id = try await SharingRouteTests.create(client, ["title": "Open stream", "description": "the stream's"])
            let rec = try await Self.report(app, stream: id, state: "ready", seconds: 600)
            let details = RecordingDetailsStore(database: app.database)
            _ = try await details.save(RecordingDetails(id: rec, streamID: id, title: "Best <bits>", description: "Only the talk",
                                                        trimStart: 60, trimEnd: 180))
            try await client.execute(uri: "/recordings/\(rec)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("Best &lt;bits&gt;"), "its own title, escaped")
                XCTAssertTrue(html.contains("Only the talk"))
                XCTAssertFalse(html.contains("the stream's"))
                XCTAssertTrue(html.contains("2:00"), "the trimmed length")
                XCTAssertTrue(html.contains("/recordings/\(rec)/thumbnail.jpg"), "its own picture")
            }
            let closed = try await Self.report(app, stream: id, first: 100, state: "ready")
            _ = try await details.save(RecordingDetails(id: closed, streamID: id, visibility: .inviteOnly))
            try await client.execute(uri: "/recordings/\(closed)", method: .get) { r in
                XCTAssertEqual(r.status, .forbidden, "an invite-only recording of a public stream")
                XCTAssertFalse(String(buffer: r.body).contains("download.mp4"))
            }
            let gone = try await Self.report(app, stream: id, first: 200, state: "ready")
            try await details.markDeleted(id: gone, stream: id)
            try await client.execute(uri: "/recordings/\(gone)", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
        }
    }

    func testTheWatchPageNamesTheRecordingBeingMadeForItsDVR() async throws {
        try await withApp { client, app in
            let id = try await SharingRouteTests.create(client, ["title": "On air"])
            try await client.execute(uri: "/watch/\(id)", method: .get) { r in
                let html = String(buffer: r.body)
                XCTAssertFalse(html.contains("data-dvr="), "nothing recorded yet")
                XCTAssertTrue(html.contains(#"<div id="dvr" class="seekbar" hidden>"#), "the bar waits for a recording")
                XCTAssertTrue(html.contains(#"<button id="golive" type="button" hidden>Back to live</button>"#))
            }
            try await client.execute(uri: "/watch/\(id)/recording", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertEqual(try RouteTests.problem(r).status, 404)
            }
            _ = try await Self.report(app, stream: id, first: 0, state: "ready", started: Date().addingTimeInterval(-600))
            let started = Date().addingTimeInterval(-95)
            let rec = try await Self.report(app, stream: id, first: 300, state: "recording", seconds: 60, started: started)
            try await client.execute(uri: "/watch/\(id)", method: .get) { r in
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains(#"data-dvr="\#(rec)" data-dvr-seconds="9"#), html)
            }
            try await client.execute(uri: "/watch/\(id)/recording", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.cacheControl], "no-store")
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let answer = try decoder.decode(LiveRecording.self, from: Data(buffer: r.body))
                XCTAssertEqual(answer.id, rec)
                XCTAssertEqual(answer.playlistURL, "/recordings/\(rec)/master.m3u8")
                XCTAssertEqual(answer.seconds, 95, accuracy: 5)
            }
            try await client.execute(uri: "/watch/nosuch/recording", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
            let secret = try await SharingRouteTests.create(client, ["title": "Secret", "visibility": "invite-only"])
            _ = try await Self.report(app, stream: secret, state: "recording")
            try await client.execute(uri: "/watch/\(secret)/recording", method: .get) { r in XCTAssertEqual(r.status, .forbidden) }
        }
    }

    func testTheRecordingBeingMadeIsTheNewestAFreshCopyReports() {
        let now = Date()
        func summary(_ id: String, _ state: String, started: TimeInterval, updated: TimeInterval) -> RecordingSummary {
            RecordingSummary(copies: [RecordingCopy(id: id, nodeID: "a", streamID: "s", state: state, startedAt: now.addingTimeInterval(started),
                                                    durationSeconds: 1, bytes: 1, renditions: ["source"],
                                                    updatedAt: now.addingTimeInterval(updated))], now: now)
        }
        XCTAssertNil(LiveRecording.current(of: [], now: now))
        XCTAssertNil(LiveRecording.current(of: [summary("s-abcdef01-0", "ready", started: -100, updated: -10)], now: now))
        // A copy whose node stopped reporting (it died): not live.
        XCTAssertNil(LiveRecording.current(of: [summary("s-abcdef01-0", "recording", started: -500, updated: -200)], now: now))
        let live = LiveRecording.current(of: [summary("s-abcdef01-0", "recording", started: -500, updated: -200),
                                              summary("s-abcdef01-9", "ready", started: -300, updated: -100),
                                              summary("s-abcdef01-40", "recording", started: -42, updated: -5)], now: now)
        XCTAssertEqual(live?.id, "s-abcdef01-40")
        XCTAssertEqual(live?.seconds ?? 0, 42, accuracy: 0.001)
        XCTAssertEqual(live?.playlistURL, "/recordings/s-abcdef01-40/master.m3u8")
    }
}
