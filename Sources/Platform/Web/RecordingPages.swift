// RecordingPages: the studio's recordings — every recording of the signed-in broadcaster's
// streams (`/studio/recordings`: title, stream, date, length, size, state, visibility, the total
// size) and a page per recording (`/studio/recordings/{id}`) to rename and describe it, set its
// visibility, its ticket price (sold alone when it is paid) and picture, trim it, download and delete it. What each action does is the app's
// (`RecordingsSource`, the same service the API calls); forms post back here with the page's
// anti-forgery token, and a problem shows on the page it came from.
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import Payments

/// A recording as the studio and the channel page show it; the app fills it in.
package struct StudioRecording: Sendable {
    package var id: String
    package var streamID: String
    package var streamTitle: String
    package var title: String
    package var description: String
    /// The one that applies, and whether it is the stream's.
    package var visibility: String
    package var inheritsVisibility: Bool
    package var streamVisibility: String
    package var state: String
    package var reason: String?
    package var startedAt: Date
    package var durationSeconds: Double
    /// The effective trim, and what plays.
    package var trimStart: Double?
    package var trimEnd: Double?
    package var trimmedSeconds: Double
    package var bytes: Int
    package var thumbnailURL: String
    package var thumbnailUploaded: Bool

    package init(id: String, streamID: String, streamTitle: String, title: String, description: String, visibility: String,
                 inheritsVisibility: Bool, streamVisibility: String, state: String, reason: String?, startedAt: Date,
                 durationSeconds: Double, trimStart: Double?, trimEnd: Double?, trimmedSeconds: Double, bytes: Int,
                 thumbnailURL: String, thumbnailUploaded: Bool) {
        (self.id, self.streamID, self.streamTitle, self.title, self.description) = (id, streamID, streamTitle, title, description)
        (self.visibility, self.inheritsVisibility, self.streamVisibility) = (visibility, inheritsVisibility, streamVisibility)
        (self.state, self.reason, self.startedAt, self.durationSeconds) = (state, reason, startedAt, durationSeconds)
        (self.trimStart, self.trimEnd, self.trimmedSeconds, self.bytes) = (trimStart, trimEnd, trimmedSeconds, bytes)
        (self.thumbnailURL, self.thumbnailUploaded) = (thumbnailURL, thumbnailUploaded)
    }
}

/// A change asked from the studio or the API (`PATCH /api/v1/recordings/{id}`, decoded from its
/// JSON): nil leaves a field as it is; `.some(nil)` — null in JSON — goes back to the default
/// (the stream's visibility, the start, the end).
package struct RecordingChange: Decodable, Sendable {
    package var title: String?
    package var description: String?
    package var visibility: String??
    package var trimStart: Double??
    package var trimEnd: Double??

    package init(title: String? = nil, description: String? = nil, visibility: String?? = nil, trimStart: Double?? = nil,
                 trimEnd: Double?? = nil) {
        (self.title, self.description, self.visibility, self.trimStart, self.trimEnd) = (title, description, visibility, trimStart, trimEnd)
    }

    enum CodingKeys: String, CodingKey { case title, description, visibility, trimStart, trimEnd }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        title = try c.decodeIfPresent(String.self, forKey: .title)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        func nullable<T: Decodable>(_ key: CodingKeys, _ type: T.Type) throws -> T?? {
            guard c.contains(key) else { return nil }
            return .some(try c.decodeNil(forKey: key) ? nil : try c.decode(T.self, forKey: key))
        }
        visibility = try nullable(.visibility, String.self)
        trimStart = try nullable(.trimStart, Double.self)
        trimEnd = try nullable(.trimEnd, Double.self)
    }
}

/// What the pages need of recordings, handed in by the app. Each throws a `Problem` a person can act on.
package struct RecordingsSource: Sendable {
    /// The recordings of the streams `account` owns, newest first.
    package var list: @Sendable (_ account: String) async throws -> [StudioRecording]
    /// One the caller may change (their stream's, or any for an admin); nil otherwise.
    package var find: @Sendable (_ caller: AccountCaller, _ id: String) async throws -> StudioRecording?
    package var update: @Sendable (_ caller: AccountCaller, _ id: String, _ change: RecordingChange) async throws -> Void
    package var delete: @Sendable (_ caller: AccountCaller, _ id: String) async throws -> Void
    /// A channel's past broadcasts: its public recordings that ended, newest first.
    package var published: @Sendable (_ owner: String) async -> [StudioRecording]

    package init(list: @escaping @Sendable (String) async throws -> [StudioRecording],
                 find: @escaping @Sendable (AccountCaller, String) async throws -> StudioRecording?,
                 update: @escaping @Sendable (AccountCaller, String, RecordingChange) async throws -> Void,
                 delete: @escaping @Sendable (AccountCaller, String) async throws -> Void,
                 published: @escaping @Sendable (String) async -> [StudioRecording]) {
        (self.list, self.find, self.update, self.delete, self.published) = (list, find, update, delete, published)
    }
}

/// A recording's ticket price, handed in by the app (the payments' book): what it is now, and
/// setting it (a `Problem` 400 for what is not a price).
package struct RecordingPrices: Sendable {
    package var current: @Sendable (_ recording: StudioRecording) async throws -> Money?
    package var set: @Sendable (_ caller: AccountCaller, _ recording: StudioRecording, _ amount: String, _ currency: String) async throws -> Void

    package init(current: @escaping @Sendable (StudioRecording) async throws -> Money?,
                 set: @escaping @Sendable (AccountCaller, StudioRecording, String, String) async throws -> Void) {
        (self.current, self.set) = (current, set)
    }
}

package struct RecordingPages: Sendable {
    let source: RecordingsSource
    let renderer: PageRenderer
    /// nil: recordings are not sold alone (no price on their pages).
    let prices: RecordingPrices?

    package init(source: RecordingsSource, renderer: PageRenderer, prices: RecordingPrices? = nil) {
        self.source = source
        self.renderer = renderer
        self.prices = prices
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/studio/recordings") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let list = try await source.list(caller.accountID)
            return try await renderer.render("recordings", [
                "recordings": list.map(Self.row), "any": !list.isEmpty, "count": list.count == 1 ? "1 recording" : "\(list.count) recordings",
                "totalSize": Self.size(list.reduce(0) { $0 + $1.bytes }),
            ], request, context)
        }
        routes.get("/studio/recordings/:id") { request, context -> Response in
            try await mine(request, context) { _, recording in try await page(recording, request, context) }
        }
        routes.post("/studio/recordings/:id") { request, context -> Response in
            try await mine(request, context) { caller, recording in
                let form = try await AccountPages.form(request)
                let visibility = form["visibility"] ?? ""
                try await source.update(caller, recording.id, RecordingChange(
                    title: form["title"] ?? "", description: form["description"] ?? "",
                    visibility: visibility == "stream" || visibility.isEmpty ? .some(nil) : .some(visibility)))
                return AccountPages.redirect("/studio/recordings/\(recording.id)?done=recording-saved")
            }
        }
        if let prices {
            routes.post("/studio/recordings/:id/price") { request, context -> Response in
                try await mine(request, context) { caller, recording in
                    let form = try await AccountPages.form(request)
                    try await prices.set(caller, recording, form["amount"] ?? "", form["currency"] ?? "")
                    return AccountPages.redirect("/studio/recordings/\(recording.id)?done=price-set")
                }
            }
        }
        routes.post("/studio/recordings/:id/trim") { request, context -> Response in
            try await mine(request, context) { caller, recording in
                let form = try await AccountPages.form(request)
                let change: RecordingChange
                if form["clear"] != nil {
                    change = RecordingChange(trimStart: .some(nil), trimEnd: .some(nil))
                } else {
                    change = RecordingChange(trimStart: .some(try Self.seconds(form["start"], "start")),
                                             trimEnd: .some(try Self.seconds(form["end"], "end")))
                }
                try await source.update(caller, recording.id, change)
                return AccountPages.redirect("/studio/recordings/\(recording.id)?done=recording-trimmed")
            }
        }
        routes.post("/studio/recordings/:id/delete") { request, context -> Response in
            try await mine(request, context) { caller, recording in
                let form = try await AccountPages.form(request)
                guard form["confirm"] == "yes" else {
                    throw Problem.badRequest("tick the box to confirm: a deleted recording cannot be brought back")
                }
                try await source.delete(caller, recording.id)
                return AccountPages.redirect("/studio/recordings?done=recording-deleted")
            }
        }
        return routes
    }

    /// Runs an action on a recording of the signed-in person; a problem shows on its page.
    func mine(_ request: Request, _ context: NodeRequestContext,
              _ body: (AccountCaller, StudioRecording) async throws -> Response) async throws -> Response {
        guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
        let id = try context.parameters.require("id")
        guard let recording = try await source.find(caller, id) else {
            return try await renderer.render("message", ["heading": "No such recording", "message": "You have no recording \(id.prefix(100)).",
                                                         "link": ["href": "/studio/recordings", "text": "Your recordings"]],
                                             request, context, status: .notFound)
        }
        do { return try await body(caller, recording) } catch let p as Problem {
            return try await page(recording, request, context, error: p.detail, status: p.status)
        }
    }

    func page(_ r: StudioRecording, _ request: Request, _ context: NodeRequestContext, error: String? = nil,
              status: HTTPResponse.Status = .ok) async throws -> Response {
        var view = Self.row(r)
        view["description"] = r.description
        view["visibilities"] = [["value": "stream", "label": "The stream's (\(r.streamVisibility))", "selected": r.inheritsVisibility]]
            + StreamRecord.Visibility.allCases.map { v -> [String: Any] in
                ["value": v.rawValue, "label": v.rawValue, "selected": !r.inheritsVisibility && r.visibility == v.rawValue]
            }
        view["trimStart"] = r.trimStart.map(Self.clock) ?? "0:00"
        view["trimEnd"] = r.trimEnd.map(Self.clock) ?? Self.clock(r.durationSeconds)
        view["trimmed"] = r.trimStart != nil || r.trimEnd != nil
        view["validRange"] = "0:00 to \(Self.clock(r.durationSeconds))"
        view["finished"] = r.state != "recording"
        view["thumbnailUploaded"] = r.thumbnailUploaded
        if let prices {
            let current = try await prices.current(r)
            view["sells"] = true
            view["paid"] = r.visibility == StreamRecord.Visibility.paid.rawValue
            view["price"] = current?.description ?? ""
            view["hasPrice"] = current != nil
            // The form starts from the price there is (its currency kept when only the amount changes).
            view["amount"] = current?.plain ?? ""
            view["currency"] = current?.currency.code ?? "USD"
        }
        return try await renderer.render("recording", view, request, context, error: error, status: status)
    }

    static func row(_ r: StudioRecording) -> [String: Any] {
        var row: [String: Any] = [
            "id": r.id, "title": r.title, "streamID": r.streamID, "streamTitle": r.streamTitle, "date": AccountPages.date(r.startedAt),
            "duration": clock(r.trimmedSeconds), "fullDuration": clock(r.durationSeconds), "size": size(r.bytes), "state": r.state,
            "visibility": r.visibility, "inherits": r.inheritsVisibility, "thumbnailSrc": r.thumbnailURL,
            "watchURL": "/recordings/\(r.id)", "downloadURL": "/recordings/\(r.id)/download.mp4",
            "incomplete": r.state == "incomplete", "recording": r.state == "recording",
        ]
        if let reason = r.reason { row["reason"] = reason }
        return row
    }

    /// Seconds as `m:ss` (or `h:mm:ss`), tenths when there are any.
    static func clock(_ seconds: Double) -> String {
        let tenths = Int((max(seconds, 0) * 10).rounded())
        let whole = tenths / 10
        let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60)
        var text = h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
        if tenths % 10 != 0 { text += ".\(tenths % 10)" }
        return text
    }

    /// A time a person typed: seconds (`75`, `75.5`) or `m:ss` / `h:mm:ss`; empty: none (the start, the end).
    static func seconds(_ raw: String?, _ field: String) throws -> Double? {
        let text = (raw ?? "").trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { throw Problem.badRequest("the \(field) must be seconds or m:ss, like 90 or 1:30") }
        var total = 0.0
        for (i, part) in parts.enumerated() {
            let isLast = i == parts.count - 1
            guard !part.isEmpty, part.count <= 12, part.allSatisfy({ $0.isASCII && ($0.isNumber || (isLast && $0 == ".")) }),
                  let value = Double(part), value.isFinite, i == 0 || value < 60 else {
                throw Problem.badRequest("the \(field) must be seconds or m:ss, like 90 or 1:30")
            }
            total = total * 60 + value
        }
        return total
    }

    static func size(_ bytes: Int) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(bytes) bytes" : String(format: value < 10 ? "%.1f" : "%.0f", value) + " " + units[unit]
    }
}
