import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest
@testable import Accounts
@testable import App
@testable import Cluster
@testable import Live
@testable import Origin

/// Managing recordings through the router `buildApplication` assembles: `/api/v1/recordings`,
/// the operator's listing, the media routes under a recording's own visibility and trim, the
/// studio's forms, and deleting. The recording is made by the node's own recorder from objects
/// handed to it (no media is decoded here; the integration test plays and downloads real ones).
final class RecordingRouteTests: XCTestCase {
    typealias A = AccountRouteTests
    static let epoch = StreamEpoch(0xabcdef01)

    /// Three 2-second segments of `stream`, recorded and ended, reported as the recorder's service would.
    static func record(_ app: NodeApplication, stream: String, ended: Bool = true) async throws -> String {
        let recorder = try XCTUnwrap(app.recorder)
        recorder.take(.initSegment(RecordedInit(stream: stream, epoch: epoch, rendition: "source", version: 0, bytes: [0, 0, 0, 8],
                                                codecs: "avc1.64001f", width: 640, height: 360)))
        for n in 0..<3 {
            recorder.take(.segment(RecordedSegment(stream: stream, epoch: epoch, rendition: "source", sequence: n, duration: 2,
                                                   discontinuity: false, initVersion: 0, programDateTime: Date(),
                                                   bytes: [UInt8](repeating: UInt8(n + 1), count: 40))))
        }
        if ended { recorder.take(.ended(stream: stream, epoch: epoch)) }
        await recorder.drain()
        let m = try XCTUnwrap(recorder.current(stream: stream))
        try await RecordingStore(database: app.database).save(RecordingCopy(
            id: m.id, nodeID: app.state.nodeID, streamID: stream, state: m.state.rawValue, startedAt: m.startedAt, endedAt: m.endedAt,
            durationSeconds: m.duration, bytes: m.bytes, renditions: ["source"]))
        return m.id
    }

    func testOwnersManageTheirRecordingsThroughTheAPI() async throws {
        try await A.withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let bob = try await A.account(app, "bob@example.com")
            let (_, token) = try await app.accounts.createToken(account: ada.id, name: "t", scopes: Scope.all, expiresInDays: nil, address: "")
            let (_, bobs) = try await app.accounts.createToken(account: bob.id, name: "t", scopes: Scope.all, expiresInDays: nil, address: "")
            let stream = try await app.streams.catalog.create(title: "Launch", owner: ada.id)
            let id = try await Self.record(app, stream: stream.id)
            let ada_ = A.headers(bearer: token, json: true)

            let listed = try await client.execute(uri: "/api/v1/recordings", method: .get, headers: ada_) { r in
                XCTAssertEqual(r.status, .ok, String(buffer: r.body))
                return try A.json([RecordingResponse].self, r)
            }
            XCTAssertEqual(listed.map(\.id), [id])
            let first = try XCTUnwrap(listed.first)
            XCTAssertTrue(first.title?.hasPrefix("Launch (") ?? false, "the default title: the stream's and the day: \(String(describing: first.title))")
            XCTAssertEqual(first.streamId, stream.id)
            XCTAssertEqual(first.visibility, "public")
            XCTAssertEqual(first.inheritsVisibility, true)
            XCTAssertEqual(first.trimmedDurationSeconds, 6)
            XCTAssertEqual(first.bytes, 120)
            XCTAssertTrue(first.thumbnailURL?.hasSuffix("/recordings/\(id)/thumbnail.jpg") ?? false)
            XCTAssertTrue(first.pageURL?.hasSuffix("/recordings/\(id)") ?? false)

            // Another account: not found, as if it did not exist.
            for (method, body) in [(HTTPRequest.Method.get, ""), (.patch, #"{"title": "Mine"}"#), (.delete, "")] {
                try await client.execute(uri: "/api/v1/recordings/\(id)", method: method, headers: A.headers(bearer: bobs, json: true),
                                         body: ByteBuffer(string: body)) { r in A.problem(r, .notFound, "bob \(method)") }
            }
            try await client.execute(uri: "/api/v1/recordings", method: .get, headers: A.headers(bearer: bobs)) { r in
                XCTAssertEqual(try A.json([RecordingResponse].self, r).count, 0)
            }

            // Rename, describe, make it invite-only, trim: the trim snaps to segments.
            let changed = try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_, body: ByteBuffer(string:
                #"{"title": "Launch, day 1", "description": "The keynote", "visibility": "invite-only", "trimStart": 2.5, "trimEnd": 3.9}"#)) { r in
                XCTAssertEqual(r.status, .ok, String(buffer: r.body))
                return try A.json(RecordingResponse.self, r)
            }
            XCTAssertEqual(changed.title, "Launch, day 1")
            XCTAssertEqual(changed.description, "The keynote")
            XCTAssertEqual(changed.visibility, "invite-only")
            XCTAssertEqual(changed.inheritsVisibility, false)
            XCTAssertEqual(changed.trimStart, 2)
            XCTAssertEqual(changed.trimEnd, 4)
            XCTAssertEqual(changed.trimmedDurationSeconds, 2)
            XCTAssertEqual(changed.durationSeconds, 6)
            let kept = try await RecordingDetailsStore(database: app.database).details(id: id)?.trimSegments
            XCTAssertEqual(kept, 1...1, "the segments the trim keeps, for nodes holding no copy")

            // Its media: private now, the stream's tokens open it, and only the trim is served.
            try await client.execute(uri: "/recordings/\(id)/master.m3u8", method: .get) { r in XCTAssertEqual(r.status, .forbidden) }
            let pass = try await client.execute(uri: "/api/v1/streams/\(stream.id)/playback-token", method: .get, headers: ada_) { r in
                try A.json(PlaybackTokenResponse.self, r)
            }
            try await client.execute(uri: "/recordings/\(id)/source/index.m3u8?token=\(pass.token)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let text = String(buffer: r.body)
                XCTAssertTrue(text.contains("seg1.m4s?token="), text)
                XCTAssertFalse(text.contains("seg0.m4s") || text.contains("seg2.m4s"), text)
                XCTAssertTrue(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), text)
            }
            try await client.execute(uri: "/recordings/\(id)/source/seg1.m4s?token=\(pass.token)", method: .get) { r in
                XCTAssertEqual(Array(buffer: r.body), [UInt8](repeating: 2, count: 40))
            }
            try await client.execute(uri: "/recordings/\(id)/source/seg0.m4s?token=\(pass.token)", method: .get) { r in
                XCTAssertEqual(r.status, .notFound, "trimmed away")
            }

            // Bad input: a trim outside the recording, a visibility that is not one, a body that is not JSON.
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                     body: ByteBuffer(string: #"{"trimStart": 1, "trimEnd": 100}"#)) { r in
                let p = try RouteTests.problem(r)
                XCTAssertEqual(p.status, 400)
                XCTAssertTrue(p.detail.contains("the valid range is 0 to 6 seconds"), p.detail)
            }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                     body: ByteBuffer(string: #"{"trimStart": 5, "trimEnd": 5}"#)) { r in A.problem(r, .badRequest, "empty trim") }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                     body: ByteBuffer(string: #"{"visibility": "secret"}"#)) { r in A.problem(r, .badRequest, "visibility") }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                     body: ByteBuffer(string: #"{"title": "   "}"#)) { r in A.problem(r, .badRequest, "empty title") }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                     body: ByteBuffer(string: "trim")) { r in A.problem(r, .badRequest, "not JSON") }
            try await client.execute(uri: "/api/v1/recordings/..%2F..%2Fetc", method: .get, headers: ada_) { r in A.problem(r, .notFound, "odd id") }

            // Back to the stream's visibility and the whole recording.
            let reset = try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: ada_,
                                                 body: ByteBuffer(string: #"{"visibility": null, "trimStart": null, "trimEnd": null}"#)) { r in
                try A.json(RecordingResponse.self, r)
            }
            XCTAssertEqual(reset.visibility, "public")
            XCTAssertNil(reset.trimStart)
            XCTAssertEqual(reset.trimmedDurationSeconds, 6)
            try await client.execute(uri: "/recordings/\(id)/master.m3u8", method: .get) { r in XCTAssertEqual(r.status, .ok) }

            // The operator's listing keeps its fields and has the new ones.
            try await client.execute(uri: "/api/streams/\(stream.id)/recordings", method: .get, headers: RouteTests.operatorHeaders) { r in
                let list = try A.json([RecordingResponse].self, r)
                XCTAssertEqual(list.map(\.id), [id])
                XCTAssertEqual(list.first?.state, "ready")
                XCTAssertEqual(list.first?.durationSeconds, 6)
                XCTAssertEqual(list.first?.title, "Launch, day 1")
                XCTAssertTrue(list.first?.downloadURL.hasSuffix("/recordings/\(id)/download.mp4") ?? false)
            }
            try await client.execute(uri: "/api/v1/streams/\(stream.id)/recordings", method: .get, headers: ada_) { r in
                XCTAssertEqual(try A.json([RecordingResponse].self, r).map(\.id), [id])
            }

            // Delete: gone from the lists, its media 404, its folder gone.
            let folder = try XCTUnwrap(app.recorder?.folder(of: try XCTUnwrap(app.recorder?.manifest(id: id))))
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder))
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .delete, headers: ada_) { r in
                XCTAssertEqual(r.status, .noContent, String(buffer: r.body))
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder))
            try await client.execute(uri: "/recordings/\(id)/source/seg1.m4s", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
            try await client.execute(uri: "/recordings/\(id)/master.m3u8", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
            try await client.execute(uri: "/api/v1/recordings", method: .get, headers: ada_) { r in
                XCTAssertEqual(try A.json([RecordingResponse].self, r).count, 0)
            }
            try await client.execute(uri: "/api/streams/\(stream.id)/recordings", method: .get, headers: RouteTests.operatorHeaders) { r in
                XCTAssertEqual(try A.json([RecordingResponse].self, r).count, 0)
            }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .delete, headers: ada_) { r in A.problem(r, .notFound, "twice") }
        }
    }

    func testARecordingStillBeingMadeIsNeitherTrimmedNorDeleted() async throws {
        try await A.withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let (_, token) = try await app.accounts.createToken(account: ada.id, name: "t", scopes: Scope.all, expiresInDays: nil, address: "")
            let stream = try await app.streams.catalog.create(title: "Live", owner: ada.id)
            let id = try await Self.record(app, stream: stream.id, ended: false)
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .delete, headers: A.headers(bearer: token)) { r in
                A.problem(r, .conflict, "delete while recording")
            }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: A.headers(bearer: token, json: true),
                                     body: ByteBuffer(string: #"{"trimStart": 2}"#)) { r in A.problem(r, .conflict, "trim while recording") }
            try await client.execute(uri: "/api/v1/recordings/\(id)", method: .patch, headers: A.headers(bearer: token, json: true),
                                     body: ByteBuffer(string: #"{"title": "Renamed while live"}"#)) { r in XCTAssertEqual(r.status, .ok) }
        }
    }

    func testTheStudioPagesListEditTrimAndDelete() async throws {
        try await A.withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let session = try await A.session(app, ada)
            let csrf = try await A.csrf(client)
            let stream = try await app.streams.catalog.create(title: "Studio show", owner: ada.id)
            let id = try await Self.record(app, stream: stream.id)
            let h = A.headers(session: session, csrf: csrf)
            try await client.execute(uri: "/studio/recordings", method: .get, headers: h) { r in
                XCTAssertEqual(r.status, .ok)
                let page = String(buffer: r.body)
                XCTAssertTrue(page.contains("/studio/recordings/\(id)"), page)
                XCTAssertTrue(page.contains("Studio show"))
                XCTAssertTrue(page.contains("120 bytes"), "the total size")
            }
            try await client.execute(uri: "/studio/recordings", method: .get) { r in XCTAssertEqual(r.status, .seeOther, "sign in first") }
            try await client.execute(uri: "/studio/recordings/\(id)", method: .get, headers: h) { r in
                let page = String(buffer: r.body)
                XCTAssertTrue(page.contains("0:00 to 0:06"), "the valid range is shown")
            }
            var form = A.formType
            form[.cookie] = h[.cookie]
            try await client.execute(uri: "/studio/recordings/\(id)/trim", method: .post, headers: form,
                                     body: A.form(["csrf": csrf, "start": "0:03", "end": "0:9"])) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertTrue(String(buffer: r.body).contains("the valid range is 0 to 6 seconds"), String(buffer: r.body))
            }
            try await client.execute(uri: "/studio/recordings/\(id)/trim", method: .post, headers: form,
                                     body: A.form(["csrf": csrf, "start": "1:7x", "end": ""])) { r in XCTAssertEqual(r.status, .badRequest) }
            try await client.execute(uri: "/studio/recordings/\(id)/trim", method: .post, headers: form,
                                     body: A.form(["csrf": csrf, "start": "0:02", "end": "4"])) { r in XCTAssertEqual(r.status, .seeOther) }
            try await client.execute(uri: "/studio/recordings/\(id)", method: .post, headers: form,
                                     body: A.form(["csrf": csrf, "title": "Edited", "description": "", "visibility": "unlisted"])) { r in
                XCTAssertEqual(r.status, .seeOther)
            }
            let details = try await RecordingDetailsStore(database: app.database).details(id: id)
            XCTAssertEqual(details?.title, "Edited")
            XCTAssertEqual(details?.visibility, .unlisted)
            XCTAssertEqual(details?.trimStart, 2)
            XCTAssertEqual(details?.trimEnd, 4)
            // No post without the anti-forgery token; no deletion without the box ticked.
            try await client.execute(uri: "/studio/recordings/\(id)/delete", method: .post, headers: form,
                                     body: A.form(["confirm": "yes"])) { r in XCTAssertEqual(r.status, .forbidden) }
            try await client.execute(uri: "/studio/recordings/\(id)/delete", method: .post, headers: form,
                                     body: A.form(["csrf": csrf])) { r in XCTAssertEqual(r.status, .badRequest) }
            XCTAssertNotNil(app.recorder?.manifest(id: id))
            try await client.execute(uri: "/studio/recordings/\(id)/delete", method: .post, headers: form,
                                     body: A.form(["csrf": csrf, "confirm": "yes"])) { r in XCTAssertEqual(r.status, .seeOther) }
            XCTAssertNil(app.recorder?.manifest(id: id))
            try await client.execute(uri: "/studio/recordings/\(id)", method: .get, headers: h) { r in XCTAssertEqual(r.status, .notFound) }
        }
    }

    /// A recording's viewer figures in the studio: for its stream's host, co-hosts and admins
    /// (404 to others, sign in first), the numbers, the plot drawn as SVG, the JSON and the CSV.
    func testTheStudioShowsARecordingsViewerFiguresToItsStreamsHostCoHostsAndAdmins() async throws {
        try await A.withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let ann = try await A.account(app, "ann@example.com")
            let bob = try await A.account(app, "bob@example.com")
            let root = try await A.account(app, "root@example.com", role: .admin)
            let stream = try await app.streams.catalog.create(title: "Figures show", owner: ada.id)
            _ = try await app.streams.catalog.addCohost(id: stream.id, account: ann.id)
            let id = try await Self.record(app, stream: stream.id)
            let now = Date().timeIntervalSince1970
            let store = ViewerFigureStore(database: app.database)
            try await store.save([ViewerSessionReport(stream: id, session: "v1", rendition: "source", device: "mobile", referrer: "example.org",
                                                      firstSeen: now - 30, lastSeen: now, watchMs: 30_000, bytes: 1000)],
                                 node: app.state.nodeID, region: "r1")
            try await store.sample(stream: id, now: now)
            let base = "/studio/recordings/\(id)/analytics"
            for person in [ada, ann, root] {
                let h = A.headers(session: try await A.session(app, person))
                try await client.execute(uri: base, method: .get, headers: h) { r in
                    XCTAssertEqual(r.status, .ok, person.email)
                    let page = String(buffer: r.body)
                    XCTAssertTrue(page.contains("<svg class=\"viewer-plot\""), page)
                    XCTAssertTrue(page.contains("<polyline points="), "one sample, drawn")
                    XCTAssertTrue(page.contains("data-analytics=\"\(base).json\""), "refreshed as the stream's page")
                    XCTAssertTrue(page.contains("href=\"\(base).csv\""))
                    XCTAssertTrue(page.contains("Figures show ("), "the recording's title")
                    XCTAssertTrue(page.contains("<td>mobile</td>"), "the breakdowns")
                    XCTAssertTrue(page.contains("30 s"), "the watch time")
                }
                try await client.execute(uri: base + ".json", method: .get, headers: h) { r in
                    XCTAssertEqual(r.status, .ok)
                    let live = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                    let figures = try XCTUnwrap(live["figures"] as? [String: Any])
                    XCTAssertEqual(figures["uniqueViewers"] as? Int, 1)
                    XCTAssertEqual(figures["concurrentViewers"] as? Int, 1)
                    XCTAssertTrue((live["plot"] as? String)?.hasPrefix("<svg") ?? false)
                }
                try await client.execute(uri: base + ".csv", method: .get, headers: h) { r in
                    XCTAssertEqual(r.status, .ok)
                    XCTAssertTrue(String(buffer: r.body).contains("total,unique,1,30.000"), String(buffer: r.body))
                }
            }
            let ada_ = A.headers(session: try await A.session(app, ada))
            try await client.execute(uri: "/studio/recordings/\(id)", method: .get, headers: ada_) { r in
                XCTAssertTrue(String(buffer: r.body).contains("href=\"\(base)\""), "linked from the recording's page")
            }
            let bob_ = A.headers(session: try await A.session(app, bob))
            for uri in [base, base + ".json", base + ".csv"] {
                try await client.execute(uri: uri, method: .get, headers: bob_) { r in XCTAssertEqual(r.status, .notFound, uri) }
                try await client.execute(uri: uri, method: .get) { r in XCTAssertEqual(r.status, .seeOther, "sign in first: \(uri)") }
            }
            for bad in ["nosuch", String(repeating: "x", count: 300), "\(id)x"] {
                try await client.execute(uri: "/studio/recordings/\(bad)/analytics", method: .get, headers: ada_) { r in
                    XCTAssertEqual(r.status, .notFound, bad)
                }
            }
        }
    }

    func testAnotherNodeTellsOfADeletionAndAsksForAManifestWithClusterTokensOnly() async throws {
        try await A.withRouter { client, app in
            let stream = try await app.streams.catalog.create(title: "Told")
            let id = try await Self.record(app, stream: stream.id)
            let n2 = ClusterTokens(clusterKeys: RouteTests.clusterKeys, localID: "n2")
            let manifestPath = "/internal/recordings/\(id)/manifest"
            try await client.execute(uri: manifestPath, method: .get) { r in XCTAssertEqual(r.status, .unauthorized) }
            try await client.execute(uri: manifestPath, method: .get, headers: [
                .streamTubeClusterToken: n2.token(for: ClusterRequest(.records, "GET", manifestPath), scope: PeerRecords.scope)]) { r in
                XCTAssertEqual(r.status, .ok)
                let m = try PeerRecords.decoder.decode(RecordingManifest.self, from: Data(buffer: r.body))
                XCTAssertEqual(m.renditions.first?.segments.map(\.sequence), [0, 1, 2])
            }

            // What another node (with a database of its own) set: taken when newer, refused when malformed.
            func tell(_ details: [RecordingDetails]) async throws -> HTTPResponse.Status {
                let body = try PeerRecords.encoder.encode(details)
                let token = n2.token(for: ClusterRequest(.records, "POST", PeerRecordingDetails.path), scope: PeerRecords.scope, body: Array(body))
                return try await client.execute(uri: PeerRecordingDetails.path, method: .post, headers: [.streamTubeClusterToken: token],
                                                body: ByteBuffer(data: body)) { $0.status }
            }
            let now = Date()
            try await assertEqual(try await tell([RecordingDetails(id: id, streamID: stream.id, title: "From n2", visibility: .inviteOnly,
                                                                   updatedAt: now)]), .noContent)
            try await client.execute(uri: "/recordings/\(id)/master.m3u8", method: .get) { r in XCTAssertEqual(r.status, .forbidden) }
            try await assertEqual(try await tell([RecordingDetails(id: id, streamID: stream.id, title: "Older", updatedAt: now.addingTimeInterval(-60))]),
                                  .noContent)
            try await assertEqual(try await RecordingDetailsStore(database: app.database).details(id: id)?.title, "From n2", "the later change stands")
            try await assertEqual(try await tell([RecordingDetails(id: id, streamID: "other", updatedAt: now)]), .badRequest)
            try await assertEqual(try await tell([RecordingDetails(id: id, streamID: stream.id, title: "  ", updatedAt: now)]), .badRequest)

            let path = RecordingDeletions.path
            let body = try JSONEncoder().encode([DeletedRecording(id: id, stream: stream.id)])
            let signed = n2.token(for: ClusterRequest(.records, "POST", path), scope: PeerRecords.scope, body: Array(body))
            // Unsigned, or signed for another body: refused, nothing deleted.
            try await client.execute(uri: path, method: .post, body: ByteBuffer(data: body)) { r in XCTAssertEqual(r.status, .unauthorized) }
            let other = try JSONEncoder().encode([DeletedRecording(id: id + "9", stream: stream.id)])
            try await client.execute(uri: path, method: .post, headers: [.streamTubeClusterToken: signed], body: ByteBuffer(data: other)) { r in
                XCTAssertEqual(r.status, .unauthorized)
            }
            let malformed = try JSONEncoder().encode([DeletedRecording(id: "../x", stream: stream.id)])
            try await client.execute(uri: path, method: .post, headers: [
                .streamTubeClusterToken: n2.token(for: ClusterRequest(.records, "POST", path), scope: PeerRecords.scope, body: Array(malformed))],
                                     body: ByteBuffer(data: malformed)) { r in XCTAssertEqual(r.status, .badRequest) }
            XCTAssertNotNil(app.recorder?.manifest(id: id))
            // A token is good once: a new one for the body itself.
            let fresh = n2.token(for: ClusterRequest(.records, "POST", path), scope: PeerRecords.scope, body: Array(body))
            try await client.execute(uri: path, method: .post, headers: [.streamTubeClusterToken: fresh], body: ByteBuffer(data: body)) { r in
                XCTAssertEqual(r.status, .noContent, String(buffer: r.body))
            }
            XCTAssertNil(app.recorder?.manifest(id: id), "this node's copy is gone")
            let tombstone = try await RecordingDetailsStore(database: app.database).details(id: id)
            XCTAssertNotNil(tombstone?.deletedAt, "the tombstone is kept here too")
            try await client.execute(uri: "/recordings/\(id)/master.m3u8", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
        }
    }

    func testANodeServesItsOwnCopyUnlessAnotherNodesIsBetter() {
        var own = RecordingManifest(stream: "s1", epoch: StreamEpoch(1), firstSequence: 0, startedAt: Date(timeIntervalSince1970: 0))
        own.state = .ready
        own.endedAt = Date(timeIntervalSince1970: 100)
        func copy(_ node: String, _ state: String, ended: Double?) -> RecordingCopy {
            RecordingCopy(id: own.id, nodeID: node, streamID: "s1", state: state, startedAt: Date(timeIntervalSince1970: 0),
                          endedAt: ended.map { Date(timeIntervalSince1970: $0) }, durationSeconds: 1, bytes: 1, renditions: ["source"])
        }
        XCTAssertTrue(RecordingRoutes.servesOwnCopy(own, best: nil, localID: "a"), "nothing known of the others")
        XCTAssertTrue(RecordingRoutes.servesOwnCopy(own, best: copy("a", "ready", ended: 300), localID: "a"), "its own is the best")
        XCTAssertTrue(RecordingRoutes.servesOwnCopy(own, best: copy("b", "ready", ended: 101), localID: "a"),
                      "ended together: its own, however long the other says it is")
        XCTAssertFalse(RecordingRoutes.servesOwnCopy(own, best: copy("b", "ready", ended: 160), localID: "a"),
                       "the old origin's copy ends where it handed the stream over")
        XCTAssertFalse(RecordingRoutes.servesOwnCopy(own, best: copy("b", "recording", ended: nil), localID: "a"), "still being made")
        own.endedAt = nil
        own.state = .recording
        XCTAssertTrue(RecordingRoutes.servesOwnCopy(own, best: copy("b", "recording", ended: nil), localID: "a"), "both being made")
        XCTAssertFalse(RecordingRoutes.servesOwnCopy(own, best: copy("b", "ready", ended: 100), localID: "a"),
                       "a standby's copy the origin stopped replicating to stays open; the ended one is served")
        own.state = .incomplete
        XCTAssertFalse(RecordingRoutes.servesOwnCopy(own, best: copy("b", "ready", ended: 100), localID: "a"), "a whole copy over a holed one")
        XCTAssertTrue(RecordingRoutes.servesOwnCopy(own, best: copy("b", "incomplete", ended: 100), localID: "a"))
    }
}
