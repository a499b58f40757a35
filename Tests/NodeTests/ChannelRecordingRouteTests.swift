import Catalog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest
@testable import Accounts
@testable import App

/// A channel's recording settings through `/api/v1/channel/settings` and the studio, and a
/// stream's own `recorded`: what the stream records carry, and bad input refused.
extension AccountRouteTests {
    typealias A = AccountRouteTests

    func testTheChannelsDefaultAndAStreamsOwnSettingReachItsRecords() async throws {
        try await withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let (_, token) = try await app.accounts.createToken(account: ada.id, name: "all", scopes: Scope.all, expiresInDays: nil, address: "")
            let json = A.headers(bearer: token, json: true)
            func settings(_ body: String? = nil, status: HTTPResponse.Status = .ok) async throws -> ChannelSettingsResponse? {
                try await client.execute(uri: "/api/v1/channel/settings", method: body == nil ? .get : .patch, headers: json,
                                         body: body.map { ByteBuffer(string: $0) }) { r in
                    XCTAssertEqual(r.status, status, String(buffer: r.body))
                    return status == .ok ? try A.json(ChannelSettingsResponse.self, r) : nil
                }
            }
            var s = try await settings()
            XCTAssertEqual(s?.recordedByDefault, true)
            XCTAssertNil(s?.keepRecordingsDays)
            XCTAssertEqual(s?.recordingsBytes, 0)
            XCTAssertNotNil(s?.nodeRecordingsBytes, "this node records")
            let first = try await client.execute(uri: "/api/v1/streams", method: .post, headers: json,
                                                 body: ByteBuffer(string: #"{"title": "First"}"#)) { try A.json(StreamResponse.self, $0) }
            XCTAssertEqual(first.recorded, true)

            // The channel stops recording by default and keeps 30 days: its streams' records say so.
            s = try await settings(#"{"recordedByDefault": false, "keepRecordingsDays": 30}"#)
            XCTAssertEqual(s?.recordedByDefault, false)
            XCTAssertEqual(s?.keepRecordingsDays, 30)
            XCTAssertEqual(app.streams.catalog.record(id: first.id)?.channelRecording, ChannelRecording(records: false, keepDays: 30))
            XCTAssertEqual(app.streams.catalog.record(id: first.id)?.isRecorded, false)
            let second = try await client.execute(uri: "/api/v1/streams", method: .post, headers: json,
                                                  body: ByteBuffer(string: #"{"title": "Second"}"#)) { try A.json(StreamResponse.self, $0) }
            XCTAssertEqual(second.recorded, false, "a new stream takes its channel's settings")
            XCTAssertEqual(app.streams.catalog.record(id: second.id)?.channelRecording.keepDays, 30)

            // A stream's own setting wins; null gives it back to its channel.
            let on = try await client.execute(uri: "/api/v1/streams/\(second.id)", method: .patch, headers: json,
                                              body: ByteBuffer(string: #"{"recorded": true}"#)) { try A.json(StreamResponse.self, $0) }
            XCTAssertEqual(on.recorded, true)
            let back = try await client.execute(uri: "/api/v1/streams/\(second.id)", method: .patch, headers: json,
                                                body: ByteBuffer(string: #"{"recorded": null}"#)) { try A.json(StreamResponse.self, $0) }
            XCTAssertEqual(back.recorded, false)

            // Bad input: 400, nothing changed; null clears a limit.
            for bad in [#"{"keepRecordingsDays": 0}"#, #"{"keepRecordingsDays": 40000}"#, #"{"keepRecordingsBytes": 5}"#,
                        #"{"recordedByDefault": "no"}"#, #"{"keepRecordingsDays": 1.5}"#] {
                _ = try await settings(bad, status: .badRequest)
            }
            let unchanged = try await settings()
            XCTAssertEqual(unchanged?.keepRecordingsDays, 30)
            s = try await settings(#"{"keepRecordingsDays": null, "keepRecordingsBytes": 10485760}"#)
            XCTAssertNil(s?.keepRecordingsDays)
            XCTAssertEqual(s?.keepRecordingsBytes, 10 << 20)

            // The sizes: the channel's recordings, each once.
            let store = RecordingStore(database: app.database)
            for node in ["n1", "n2"] {
                try await store.save(RecordingCopy(id: "\(first.id)-00000001-0", nodeID: node, streamID: first.id, state: "ready",
                                                   startedAt: Date(), durationSeconds: 10, bytes: 1000, renditions: ["source"]))
            }
            let sized = try await settings()
            XCTAssertEqual(sized?.recordingsBytes, 1000)

            // A read-only token cannot change them.
            let (_, readOnly) = try await app.accounts.createToken(account: ada.id, name: "ro", scopes: [Scope.accountRead],
                                                                   expiresInDays: nil, address: "")
            try await client.execute(uri: "/api/v1/channel/settings", method: .patch, headers: A.headers(bearer: readOnly, json: true),
                                     body: ByteBuffer(string: #"{"recordedByDefault": true}"#)) { r in
                A.problem(r, .forbidden, "account:write missing")
            }
        }
    }

    func testTheStudioShowsAndChangesTheRecordingSettings() async throws {
        try await withRouter { client, app in
            let ada = try await A.account(app, "ada@example.com")
            let session = try await A.session(app, ada)
            let csrf = try await A.csrf(client)
            let cookies = A.headers(session: session, csrf: csrf)
            var formHeaders = A.headers(session: session, csrf: csrf, form: true)
            formHeaders[.contentType] = "application/x-www-form-urlencoded"
            try await client.execute(uri: "/studio/streams", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "title": "Mine"])) { r in XCTAssertEqual(r.status, .seeOther) }
            let id = try XCTUnwrap(app.streams.catalog.all.first { $0.owner == ada.id }?.id)
            try await client.execute(uri: "/studio", method: .get, headers: cookies) { r in
                let page = String(buffer: r.body)
                XCTAssertTrue(page.contains(#"<h2 id="recordings">Recordings</h2>"#), page)
                XCTAssertTrue(page.contains(#"name="recordedByDefault" value="1" checked"#))
                XCTAssertTrue(page.contains(#"name="recorded" value="1" checked"#))
                XCTAssertTrue(page.contains("Your recordings take 0.0 MB."))
            }
            // Without the anti-forgery token: refused.
            try await client.execute(uri: "/studio/recordings", method: .post, headers: formHeaders,
                                     body: A.form(["keepDays": "7"])) { r in XCTAssertEqual(r.status, .forbidden) }
            try await client.execute(uri: "/studio/recordings", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "keepDays": "7", "keepMB": "500"])) { r in
                XCTAssertEqual(r.status, .seeOther)
            }
            XCTAssertEqual(app.streams.catalog.record(id: id)?.channelRecording, ChannelRecording(records: false, keepDays: 7, keepBytes: 500 << 20))
            try await client.execute(uri: "/studio/recordings", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "recordedByDefault": "1", "keepDays": "-3"])) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertTrue(String(buffer: r.body).contains("Days kept is a whole number above 0"))
            }
            // The stream's checkbox: the same as the channel's default follows the channel.
            try await client.execute(uri: "/studio/streams/\(id)", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "title": "Mine", "visibility": "public", "channelRecords": "0", "recorded": "1"])) { r in
                XCTAssertEqual(r.status, .seeOther)
            }
            XCTAssertEqual(app.streams.catalog.record(id: id)?.record, true)
            try await client.execute(uri: "/studio/streams/\(id)", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "title": "Mine", "visibility": "public", "channelRecords": "0"])) { r in
                XCTAssertEqual(r.status, .seeOther)
            }
            XCTAssertNil(app.streams.catalog.record(id: id)?.record, "unchecked, as its channel: follows the channel")
            XCTAssertEqual(app.streams.catalog.record(id: id)?.isRecorded, false)
            // A start that is no date and time is refused (the text the fuzzer found trapped Foundation's DateFormatter).
            for startsAt in ["3\u{594}\u{FFFD}\u{FFFD}pMB=p", "2026-12-24T18:00x", "2026-12-24 18:00", "２026-12-24T18:00"] {
                try await client.execute(uri: "/studio/streams/\(id)", method: .post, headers: formHeaders,
                                         body: A.form(["csrf": csrf, "title": "Mine", "startsAt": startsAt, "timeZone": "Europe/Paris"])) { r in
                    XCTAssertEqual(r.status, .badRequest, startsAt)
                    XCTAssertTrue(String(buffer: r.body).contains("give the start as a date and a time"), startsAt)
                }
            }
            try await client.execute(uri: "/studio/streams/\(id)", method: .post, headers: formHeaders,
                                     body: A.form(["csrf": csrf, "title": "Mine", "startsAt": "2026-12-24T18:00", "timeZone": "Europe/Paris"])) { r in
                XCTAssertEqual(r.status, .seeOther)
            }
            XCTAssertEqual(app.streams.catalog.record(id: id)?.startsAt, Date(timeIntervalSince1970: 1_798_131_600))
        }
    }
}
