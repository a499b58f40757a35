// libFuzzer target: the bodies people send the platform, JSON and forms, decoded as the routes
// decode them and checked as the routes check them before anything is stored. The first byte
// chooses the request; the rest is its body:
//   0 stream create (API JSON)        1 stream update (API JSON)       2 sign-in for a token (API JSON)
//   3 account, token, co-host, on-air and channel settings (API JSON)  4 recording change (API JSON)
//   5 player beacon (JSON)            6 chat frames, one a line, played on a room (WebSocket JSON)
//   7 sign-up, sign-in, reset forms   8 studio stream and recordings forms
//   9 price, ticket and trim forms
// A body is refused with an error, or taken; nothing traps.
// Built by ops/fuzz against the debug build's modules (`@testable import`): only this file is
// instrumented, the product's code runs as the debug build compiled it (with its overflow checks).
import Foundation
@testable import Accounts
@testable import Analytics
@testable import App
@testable import Catalog
@testable import Chat
@testable import HTTPSupport
@testable import Payments
@testable import Web

let passwords = PasswordPolicy(testingCost: 4)
/// The route's decoder (`PlatformAPI.decode`) and Hummingbird's default one (`request.decode(as:)`).
let apiDecoder: JSONDecoder = {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
}()
let plainDecoder = JSONDecoder()

func decoded<T: Decodable>(_ type: T.Type, _ body: Data) -> T? {
    let a = try? apiDecoder.decode(type, from: body)
    let b = try? plainDecoder.decode(type, from: body)
    return a ?? b
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let body = Data(bytes: data + 1, count: count - 1)
    let text = String(decoding: body, as: UTF8.self)
    switch data[0] % 10 {
    case 0:
        if let r = decoded(CreateStreamRequest.self, body) {
            _ = try? StreamCatalog.checkedTitle(r.title)
            _ = try? r.details()
        }
    case 1:
        if let r = decoded(UpdateStreamRequest.self, body) {
            _ = r.title.map { try? StreamCatalog.checkedTitle($0) }
            _ = try? r.details()
        }
    case 2:
        if let r = decoded(LoginRequest.self, body) {
            _ = try? AccountService.checkedEmail(r.email)
            _ = passwords.problem(with: r.password, email: r.email)
            _ = r.name.map { try? AccountService.checkedName($0, email: r.email) }
        }
    case 3:
        if let r = decoded(UpdateAccountRequest.self, body) { _ = r.displayName.map { try? AccountService.checkedName($0, email: "a@example.com") } }
        if let r = decoded(CreateTokenRequest.self, body) { _ = (r.name, r.scopes, r.expiresInDays) }
        if let r = decoded(AddCoHostRequest.self, body) { _ = try? AccountService.checkedEmail(r.account) }
        _ = decoded(OnAirRequest.self, body)
        if let r = decoded(UpdateChannelSettingsRequest.self, body) {
            var settings = ChannelRecording()
            if let on = r.recordedByDefault { settings.records = on }
            if let days = r.keepRecordingsDays { settings.keepDays = days }
            if let bytes = r.keepRecordingsBytes { settings.keepBytes = bytes }
            _ = try? settings.checked()
        }
    case 4:
        if let r = decoded(RecordingChange.self, body) {
            _ = r.title.map { try? RecordingDetails.checked(title: $0) }
            _ = r.description.map { try? RecordingDetails.checked(description: $0) }
            _ = r.visibility.map { $0.map { StreamRecord.Visibility(rawValue: $0) } }
        }
    case 5:
        _ = decoded(AnalyticsRoutes.Beacon.self, body)
    case 6:
        var room = ChatRoomState(stream: "st_8fK2mQ")
        let viewer = ChatAuthor(id: "acc_viewer", name: "Viewer"), moderator = ChatAuthor(id: "acc_owner", name: "Owner", moderator: true)
        for (i, line) in text.split(separator: "\n").prefix(64).enumerated() {
            guard let c = ChatCommand.decode(String(line)) else { continue }
            _ = (c.id.map(ChatIDs.isWellFormed), c.user.map(ChatIDs.isWellFormed))
            let author = i % 3 == 2 ? moderator : viewer, now = Double(i) * 0.7
            switch c.type {
            case "post": _ = try? room.post(c.text ?? "", by: author, id: "m\(i)", now: now, follower: i % 2 == 0)
            case "delete": _ = try? room.delete(c.id ?? "", by: author)
            case "timeout": _ = try? room.timeOut(c.user ?? "", minutes: c.minutes ?? 5, by: author, now: now)
            case "ban": _ = try? room.ban(c.user ?? "", by: author)
            case "unban": _ = try? room.ban(c.user ?? "", false, by: author)
            case "slow": _ = try? room.setSlowMode(c.seconds ?? 0, by: author)
            case "followers": _ = try? room.setFollowersOnly(c.on ?? false, by: author)
            case "react": _ = try? room.react(c.reaction ?? "", by: author, now: now)
            default: break
            }
        }
    case 7:
        let form = FormBody(text)
        let email = (try? AccountService.checkedEmail(form["email"] ?? "")) ?? "a@example.com"
        _ = try? AccountService.checkedName(form["name"] ?? "", email: email)
        _ = passwords.problem(with: form["password"] ?? "", email: email)
        _ = AccountPages.localPath(form["next"])
    case 8:
        let form = FormBody(text)
        _ = try? AccountPages.details(form)
        _ = try? AccountPages.channelRecording(form)
        _ = try? StreamCatalog.checkedTitle(form["title"] ?? "")
    default:
        let form = FormBody(text)
        _ = try? Money.parse(form["amount"] ?? "", currency: form["currency"] ?? "")
        _ = try? RecordingPages.seconds(form["start"], "start")
        _ = try? RecordingPages.seconds(form["end"], "end")
    }
    return 0
}

/// Bodies as the pages, the CLI and the API's documentation send them.
func writeSeeds(to dir: String) {
    let seeds: [(String, UInt8, String)] = [
        ("stream-create", 0, #"{"title": "My event", "ladder": "720p:720:2800,360p:360:800", "x264Preset": "veryfast", "keepSource": true, "description": "Live from the hall", "tags": ["music", "live"], "visibility": "unlisted", "startsAt": "2026-12-24T18:00:00+01:00", "timeZone": "Europe/Paris", "allowGuests": false}"#),
        ("stream-update", 1, #"{"title": "Renamed", "startsAt": null, "timeZone": "America/New_York", "recorded": null, "tags": []}"#),
        ("login", 2, #"{"email": "Someone@Example.com ", "password": "correct horse battery", "name": "CI"}"#),
        ("settings", 3, #"{"displayName": "New name", "name": "CI", "scopes": ["streams:read"], "expiresInDays": 30, "account": "them@example.com", "recordedByDefault": false, "keepRecordingsDays": 30, "keepRecordingsBytes": null}"#),
        ("recording-change", 4, #"{"title": "Highlights", "description": "The best part", "visibility": null, "trimStart": 12.5, "trimEnd": 3600}"#),
        ("beacon", 5, #"{"session": "AbCdEfGhIjKlMnOpQrSt", "event": "startup", "startupMs": 850, "playedMs": 0, "stalledMs": 0, "rendition": "720p"}"#),
        ("chat", 6, [#"{"type":"post","text":"hello 👋"}"#, #"{"type":"react","reaction":"clap"}"#, #"{"type":"slow","seconds":10}"#,
                     #"{"type":"post","text":"again"}"#, #"{"type":"timeout","user":"acc_viewer","minutes":5}"#, #"{"type":"followers","on":true}"#,
                     #"{"type":"ban","user":"acc_viewer"}"#, #"{"type":"delete","id":"m1"}"#, #"{"type":"unban","user":"acc_viewer"}"#].joined(separator: "\n")),
        ("signup-form", 7, "email=new%40example.com&name=New+Person&password=correct+horse+battery&next=%2Fstudio&csrf=abc"),
        ("studio-form", 8, "title=My+event&description=Live&tags=music%2Clive&visibility=private&timeZone=Europe%2FParis&startsAt=2026-12-24T18%3A00&allowGuests=1&channelRecords=1&recorded=0&recordedByDefault=1&keepDays=30&keepMB=2048"),
        ("price-form", 9, "amount=12.50&currency=EUR&start=1%3A30&end=3600.5"),
    ]
    for (name, kind, body) in seeds {
        _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data([kind] + Array(body.utf8)))
    }
}
