// AccountPages: the pages of people's accounts — sign up, sign in and out, verify an address,
// reset a password, settings (profile, email, password, providers, API tokens, sessions,
// activity) and the studio's first page. Forms post back here; every post carries the
// anti-forgery token (CSRFMiddleware, in front of this collection).
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore

/// A stream as the studio shows it; the app fills it in from the live state it holds.
package struct StudioStream: Sendable {
    package var id: String
    package var title: String
    package var key: String?
    /// The OBS "Server" field and the whole URL for ffmpeg.
    package var server: String
    package var rtmpURL: String?
    package var watchURL: String
    package var live: Bool
    package var status: String
    package var advice: [String]
    /// The path of the stream's picture (`StreamPicture.path`), nil: none to show; whether the
    /// owner uploaded it (rather than it being taken from the live stream).
    package var thumbnail: String?
    package var thumbnailUploaded: Bool

    package init(id: String, title: String, key: String?, server: String, rtmpURL: String?, watchURL: String, live: Bool,
                 status: String, advice: [String], thumbnail: String? = nil, thumbnailUploaded: Bool = false) {
        self.id = id
        self.title = title
        self.key = key
        self.server = server
        self.rtmpURL = rtmpURL
        self.watchURL = watchURL
        self.live = live
        self.status = status
        self.advice = advice
        self.thumbnail = thumbnail
        self.thumbnailUploaded = thumbnailUploaded
    }
}

/// What the studio needs of streams, handed in by the app.
package struct StudioSource: Sendable {
    /// The account's streams, described for the host the request came to.
    package var list: @Sendable (_ owner: String, _ request: Request) -> [StudioStream]
    /// Makes a stream owned by `owner`; throws a message a person can act on.
    package var create: @Sendable (_ title: String, _ owner: String) async throws -> String
    /// The records: edited, deleted and given new keys from the studio.
    package var catalog: StreamCatalog
    /// The streams the account co-hosts, each with the account's own key (`key`, `rtmpURL`).
    package var cohosting: @Sendable (_ account: String, _ request: Request) -> [StudioStream]
    /// The channel's recording settings and sizes, and a change of the settings (throws
    /// `StreamError` when they make no sense).
    package var recordings: @Sendable (_ owner: String) async throws -> ChannelRecordingFigures
    package var setRecordings: @Sendable (_ owner: String, _ settings: ChannelRecording) async throws -> Void

    package init(catalog: StreamCatalog, list: @escaping @Sendable (String, Request) -> [StudioStream],
                 create: @escaping @Sendable (String, String) async throws -> String,
                 cohosting: @escaping @Sendable (String, Request) -> [StudioStream] = { _, _ in [] },
                 recordings: @escaping @Sendable (String) async throws -> ChannelRecordingFigures = { _ in
                     ChannelRecordingFigures(settings: ChannelRecording(), channelBytes: 0, nodeBytes: nil, nodeMaxBytes: nil)
                 },
                 setRecordings: @escaping @Sendable (String, ChannelRecording) async throws -> Void = { _, _ in }) {
        self.catalog = catalog
        self.list = list
        self.create = create
        self.cohosting = cohosting
        self.recordings = recordings
        self.setRecordings = setRecordings
    }
}

/// A sign-in provider's button.
package struct ProviderLink: Sendable {
    package var id: String
    package var name: String
    package init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

package struct AccountPages: Sendable {
    let service: AccountService
    let renderer: PageRenderer
    let studio: StudioSource
    let providers: [ProviderLink]
    /// A provider's name for an identity's provider id.
    var providerNames: [String: String] { Dictionary(providers.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a }) }
    /// Linked identities of an account: (provider, email, linked at).
    let identities: @Sendable (_ account: String) async throws -> [(provider: String, email: String?, created: Date)]

    package init(service: AccountService, renderer: PageRenderer, studio: StudioSource, providers: [ProviderLink] = [],
                 identities: @escaping @Sendable (String) async throws -> [(provider: String, email: String?, created: Date)] = { _ in [] }) {
        self.service = service
        self.renderer = renderer
        self.studio = studio
        self.providers = providers
        self.identities = identities
    }

    static let visibilityNames: [StreamRecord.Visibility: String] = [
        .public: "Public: listed, anyone may watch", .unlisted: "Unlisted: anyone with the link",
        .inviteOnly: "Invite-only: people you invite", .paid: "Paid: ticket holders (as invite-only for now)",
    ]

    /// Messages shown after a redirect, by name (nothing from the URL is shown as it came).
    static let notices: [String: String] = [
        "signed-up": "Welcome! We mailed you a link to verify your address.",
        "signed-in": "You are signed in.",
        "price-set": "The price is set.",
        "paid": "Thank you: your ticket is ready.",
        "payment-cancelled": "The payment was cancelled: nothing was charged.",
        "trial": "Your free trial has started.",
        "subscribed": "Thank you: your subscription starts as soon as the payment is confirmed.",
        "subscription-cancelled": "The subscription is cancelled: it ends with the period paid for.",
        "verified": "Your email address is verified.",
        "reset-sent": "If an account has that address, we mailed it a link to choose a new password. It works for an hour.",
        "password-reset": "Your password is set. Sign in with it.",
        "password-changed": "Your password is changed; your other browsers are signed out.",
        "email-changed": "Your email is changed. We mailed a link to the new address to verify it.",
        "verification-sent": "We mailed you a new verification link.",
        "saved": "Saved.",
        "session-revoked": "That browser is signed out.",
        "others-revoked": "Every other browser is signed out.",
        "token-revoked": "The token is revoked.",
        "stream-created": "Your stream is ready: point OBS or ffmpeg at it.",
        "stream-saved": "The stream is saved.",
        "recordings-saved": "The recording settings are saved.",
        "stream-deleted": "The stream is deleted.",
        "invitations-sent": "The invitations are mailed.",
        "invitation-revoked": "The invitation is withdrawn: whoever came by it can no longer watch.",
        "key-replaced": "The stream has a new key: the old one is refused from now on (a broadcast live on it goes on until it reconnects).",
        "signed-out": "You are signed out.",
        "cohost-added": "The co-host is added: they have a key of their own, and a mail saying so.",
        "cohost-removed": "The co-host is removed: their key is refused from now on.",
        "handed-over": "The stream is handed over: when your co-host publishes, their broadcast takes over from yours.",
        "taken-back": "The stream is yours again: when you publish, your broadcast takes over.",
        "cohost-key-replaced": "Your co-host key is replaced: the old one is refused from now on.",
        "linked": "The provider is linked: you can sign in with it.",
        "recording-saved": "The recording is saved.",
        "recording-trimmed": "The trim is saved: it starts and ends at the nearest keyframes around the times you gave.",
        "recording-deleted": "The recording is deleted, with every copy of it.",
    ]

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)

        // MARK: Sign up, sign in, sign out
        routes.get("/signup") { request, context -> Response in
            if context.account != nil { return Self.redirect("/settings") }
            return try await render("signup", ["closed": service.settings.signup == .closed], request, context)
        }
        routes.post("/signup") { request, context -> Response in
            let form = try await Self.form(request)
            let email = form["email"] ?? "", name = form["name"] ?? ""
            do {
                let account = try await service.signUp(email: email, password: form["password"] ?? "", displayName: name,
                                                       address: Self.address(context))
                let token = try await service.openSession(account: account, method: "password", address: Self.address(context),
                                                          userAgent: request.headers[.userAgent] ?? "")
                var response = Self.redirect(account.role == .viewer ? "/?done=signed-up" : "/studio?done=signed-up")
                response.setCookie(sessionCookie(token))
                return response
            } catch let p as AccountProblem {
                return try await render("signup", ["email": email, "name": name, "closed": service.settings.signup == .closed],
                                        request, context, error: p.description, status: Self.status(p))
            }
        }
        routes.get("/signin") { request, context -> Response in
            let next = Self.localPath(request.uri.queryParameters.get("next"))
            if context.account != nil { return Self.redirect(next ?? "/") }
            return try await render("signin", ["next": next ?? ""], request, context)
        }
        routes.post("/signin") { request, context -> Response in
            let form = try await Self.form(request)
            let email = form["email"] ?? ""
            let next = Self.localPath(form["next"])
            do {
                let (_, token) = try await service.signIn(email: email, password: form["password"] ?? "", address: Self.address(context),
                                                          userAgent: request.headers[.userAgent] ?? "")
                var response = Self.redirect(next ?? "/studio")
                response.setCookie(sessionCookie(token))
                return response
            } catch let p as AccountProblem {
                var response = try await render("signin", ["email": email, "next": next ?? ""], request, context, error: p.description,
                                                status: Self.status(p))
                if case .tooManyAttempts(let after) = p.kind { response.headers[.retryAfter] = "\(after)" }
                return response
            }
        }
        routes.post("/signout") { _, context -> Response in
            if let a = context.account, let session = a.sessionID {
                try await service.signOut(session: session, account: a.accountID, address: Self.address(context))
            }
            var response = Self.redirect("/?done=signed-out")
            response.setCookie(Cookie(name: SessionStore.cookieName, value: "", maxAge: 0, path: "/",
                                      secure: service.settings.secureCookies, httpOnly: true, sameSite: .lax))
            return response
        }

        // MARK: Mail links
        routes.get("/verify") { request, context -> Response in
            do {
                _ = try await service.verifyEmail(token: request.uri.queryParameters.get("token") ?? "", address: Self.address(context))
                return try await message("Email verified", "Your email address is verified. Thank you.", link: ("/", "Go to the home page"),
                                         request, context)
            } catch let p as AccountProblem {
                return try await message("This link does not work", p.description, link: ("/settings#email", "Ask for a new link"),
                                         request, context, status: .badRequest)
            }
        }
        routes.get("/reset") { request, context -> Response in
            try await render("reset_request", [:], request, context)
        }
        routes.post("/reset") { request, context -> Response in
            let form = try await Self.form(request)
            try await service.requestReset(email: form["email"] ?? "", address: Self.address(context))
            return Self.redirect("/reset?done=reset-sent")
        }
        routes.get("/reset/:token") { request, context -> Response in
            let token = try context.parameters.require("token")
            guard let (_, email) = try await service.links.peek(.reset, token: token) else {
                return try await message("This link does not work", "This reset link is unknown, used or expired: ask for a new one.",
                                         link: ("/reset", "Ask for a new link"), request, context, status: .badRequest)
            }
            var response = try await render("reset_form", ["email": email, "token": token], request, context)
            // The token is in this page's URL: it goes to no other site.
            response.headers[.referrerPolicy] = "no-referrer"
            return response
        }
        routes.post("/reset/:token") { request, context -> Response in
            let token = try context.parameters.require("token")
            let form = try await Self.form(request)
            do {
                _ = try await service.reset(token: token, password: form["password"] ?? "", address: Self.address(context))
                var response = Self.redirect("/signin?done=password-reset")
                response.setCookie(Cookie(name: SessionStore.cookieName, value: "", maxAge: 0, path: "/",
                                          secure: service.settings.secureCookies, httpOnly: true, sameSite: .lax))
                return response
            } catch let p as AccountProblem {
                if let (_, email) = try await service.links.peek(.reset, token: token) {
                    return try await render("reset_form", ["email": email, "token": token], request, context, error: p.description,
                                            status: .badRequest)
                }
                return try await message("This link does not work", p.description, link: ("/reset", "Ask for a new link"),
                                         request, context, status: .badRequest)
            }
        }

        // MARK: Settings
        routes.get("/settings") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
            return try await settingsPage(caller, request, context)
        }
        routes.post("/settings/profile") { request, context -> Response in
            try await signedIn(request, context) { caller, form in
                _ = try await service.update(account: caller.accountID, displayName: form["name"], address: Self.address(context))
                if let handle = form["handle"]?.trimmingCharacters(in: .whitespaces), !handle.isEmpty,
                   try await service.channels.handle(of: caller.accountID) != handle.lowercased() {
                    try await service.channels.setHandle(handle, for: caller.accountID)
                    await service.audit.record("handle changed", account: caller.accountID, address: Self.address(context), detail: handle)
                }
                return Self.redirect("/settings?done=saved")
            }
        }
        routes.post("/settings/verify") { request, context -> Response in
            try await signedIn(request, context) { caller, _ in
                if let a = try await service.account(id: caller.accountID) { await service.sendVerification(a) }
                return Self.redirect("/settings?done=verification-sent#email")
            }
        }
        routes.post("/settings/email") { request, context -> Response in
            try await signedIn(request, context) { caller, form in
                _ = try await service.changeEmail(account: caller.accountID, password: form["password"] ?? "",
                                                  newEmail: form["email"] ?? "", address: Self.address(context))
                return Self.redirect("/settings?done=email-changed#email")
            }
        }
        routes.post("/settings/password") { request, context -> Response in
            try await signedIn(request, context) { caller, form in
                try await service.changePassword(account: caller.accountID, current: form["current"] ?? "", new: form["new"] ?? "",
                                                 keepingSession: caller.sessionID, address: Self.address(context))
                return Self.redirect("/settings?done=password-changed#password")
            }
        }
        routes.post("/settings/sessions/revoke-others") { request, context -> Response in
            try await signedIn(request, context) { caller, _ in
                try await service.signOutEverywhere(account: caller.accountID, keeping: caller.sessionID, address: Self.address(context))
                return Self.redirect("/settings?done=others-revoked#sessions")
            }
        }
        routes.post("/settings/sessions/:id/revoke") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await signedIn(request, context) { caller, _ in
                try await service.signOut(session: id, account: caller.accountID, address: Self.address(context))
                return Self.redirect("/settings?done=session-revoked#sessions")
            }
        }
        routes.post("/settings/tokens") { request, context -> Response in
            try await signedIn(request, context) { caller, _ in
                let body = try await request.body.collect(upTo: CSRFMiddleware.formLimit)
                let scopes = Self.allValues(String(buffer: body), "scope")
                let form = FormBody(body)
                let days = form["days"].flatMap { $0.isEmpty ? nil : Int($0) }
                if let d = form["days"], !d.isEmpty, days == nil {
                    throw AccountProblem(.invalid, "expiry must be a whole number of days, or empty for none")
                }
                let (token, secret) = try await service.createToken(account: caller.accountID, name: form["token_name"] ?? "", scopes: scopes,
                                                                    expiresInDays: days, address: Self.address(context))
                var response = try await settingsPage(caller, request, context, newToken: ["name": token.name, "token": secret])
                response.headers[.cacheControl] = "no-store"
                return response
            }
        }
        routes.post("/settings/tokens/:id/revoke") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await signedIn(request, context) { caller, _ in
                _ = try await service.revokeToken(id: id, account: caller.accountID, address: Self.address(context))
                return Self.redirect("/settings?done=token-revoked#tokens")
            }
        }

        // MARK: Studio
        routes.get("/studio") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
            return try await studioPage(caller, request, context)
        }
        routes.post("/studio/streams") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
            let form = try await Self.form(request)
            guard caller.role != Account.Role.viewer.rawValue else {
                return try await studioPage(caller, request, context, error: "a viewer account cannot broadcast: ask an administrator",
                                            status: .forbidden)
            }
            do {
                _ = try await studio.create(form["title"] ?? "", caller.accountID)
                return Self.redirect("/studio?done=stream-created")
            } catch {
                return try await studioPage(caller, request, context, error: "\(error)", title: form["title"] ?? "", status: .badRequest)
            }
        }
        routes.post("/studio/recordings") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
            let form = try await Self.form(request)
            do {
                try await studio.setRecordings(caller.accountID, try Self.channelRecording(form))
                return Self.redirect("/studio?done=recordings-saved#recordings")
            } catch let e as StreamError {
                return try await studioPage(caller, request, context, error: e.description, status: .badRequest)
            }
        }
        routes.post("/studio/streams/:id") { request, context -> Response in
            try await ownStream(request, context) { caller, record, form in
                let details = try Self.details(form)
                _ = try await studio.catalog.update(id: record.id, details)
                return Self.redirect("/studio?done=stream-saved#s-\(record.id)")
            }
        }
        routes.post("/studio/streams/:id/key") { request, context -> Response in
            try await ownStream(request, context) { caller, record, _ in
                _ = try await studio.catalog.rotateKey(id: record.id)
                await service.audit.record("stream key replaced", account: caller.accountID, address: Self.address(context), detail: record.id)
                return Self.redirect("/studio?done=key-replaced#s-\(record.id)")
            }
        }
        routes.post("/studio/streams/:id/delete") { request, context -> Response in
            try await ownStream(request, context) { caller, record, _ in
                _ = try await studio.catalog.delete(id: record.id)
                await service.audit.record("stream deleted", account: caller.accountID, address: Self.address(context), detail: record.title)
                return Self.redirect("/studio?done=stream-deleted")
            }
        }
        return routes
    }

    /// Runs a studio action on a stream of the signed-in broadcaster (or any, for an admin);
    /// a stream of someone else's is "not found", and a problem shows on the studio page.
    func ownStream(_ request: Request, _ context: NodeRequestContext,
                   _ body: (AccountCaller, StreamRecord, FormBody) async throws -> Response) async throws -> Response {
        guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = studio.catalog.record(id: id),
              record.owner == caller.accountID || caller.isAdmin else {
            return try await studioPage(caller, request, context, error: "you have no stream \(id.prefix(20))", status: .notFound)
        }
        let form = try await Self.form(request)
        do { return try await body(caller, record, form) } catch let e as StreamError {
            return try await studioPage(caller, request, context, error: e.description, status: .badRequest)
        }
    }

    /// The studio's recordings form: recorded by default, days kept and megabytes kept (empty: all).
    static func channelRecording(_ form: FormBody) throws -> ChannelRecording {
        func number(_ name: String, _ what: String) throws -> Int? {
            let text = (form[name] ?? "").trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { return nil }
            guard let n = Int(text), n > 0 else { throw StreamError.badDetails("\(what) is a whole number above 0, or empty to keep everything") }
            return n
        }
        let megabytes = try number("keepMB", "Megabytes kept")
        guard (megabytes ?? 0) <= Int.max >> 20 else { throw StreamError.badDetails("Megabytes kept is too large") }
        return try ChannelRecording(records: form["recordedByDefault"] == "1", keepDays: try number("keepDays", "Days kept"),
                                    keepBytes: megabytes.map { $0 << 20 }).checked()
    }

    /// The studio's edit form as stream details: the start time is the form's local date and
    /// time in the time zone it names (empty: not scheduled).
    static func details(_ form: FormBody) throws -> StreamDetails {
        var d = StreamDetails(title: form["title"], description: form["description"],
                              tags: form["tags"].map { $0.split(separator: ",").map(String.init) }, allowGuests: form["allowGuests"] == "1")
        // Recorded or not: the same as its channel's default (sent beside it) follows the channel.
        if let channel = form["channelRecords"] {
            let wanted = form["recorded"] == "1"
            d.record = .some(wanted == (channel == "1") ? nil : wanted)
        }
        if let v = form["visibility"] {
            guard let visibility = StreamRecord.Visibility(rawValue: v) else { throw StreamError.badDetails("choose who may watch") }
            d.visibility = visibility
        }
        let zoneName = (form["timeZone"] ?? "").trimmingCharacters(in: .whitespaces)
        let local = (form["startsAt"] ?? "").trimmingCharacters(in: .whitespaces)
        if local.isEmpty {
            d.startsAt = .some(nil)
            d.timeZone = .some(zoneName.isEmpty ? nil : zoneName)
        } else {
            guard let zone = TimeZone(identifier: zoneName.isEmpty ? "UTC" : zoneName) else {
                throw StreamError.badDetails("unknown time zone \(zoneName.prefix(60)): give one like Europe/Paris or America/New_York")
            }
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = zone
            f.dateFormat = local.count > 16 ? "yyyy-MM-dd'T'HH:mm:ss" : "yyyy-MM-dd'T'HH:mm"
            // Foundation's DateFormatter traps on some text it cannot read (a digit with a combining
            // mark after it): only the input's own shape reaches it.
            guard Self.isLocalDateTime(local), let date = f.date(from: local) else {
                throw StreamError.badDetails("give the start as a date and a time")
            }
            d.startsAt = .some(date)
            d.timeZone = .some(zone.identifier)
        }
        return d
    }

    /// Whether `text` has the shape of a `datetime-local` input's value: `2026-12-24T18:00`, seconds optional.
    static func isLocalDateTime(_ text: String) -> Bool {
        let shape = "dddd-dd-ddTdd:dd:dd".utf8
        let bytes = text.utf8
        guard bytes.count == 16 || bytes.count == 19 else { return false }
        return zip(bytes, shape).allSatisfy { c, s in s == UInt8(ascii: "d") ? (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) : c == s }
    }

    /// A date as the studio's `datetime-local` input shows it, in `zone`.
    static func localInput(_ date: Date?, zone: String?) -> String {
        guard let date else { return "" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = zone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm"
        return f.string(from: date)
    }

    // MARK: Rendering

    func render(_ template: String, _ values: [String: Any], _ request: Request, _ context: NodeRequestContext,
                error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        try await renderer.render(template, values, request, context, error: error, status: status)
    }

    func message(_ heading: String, _ text: String, link: (String, String)?, _ request: Request, _ context: NodeRequestContext,
                 status: HTTPResponse.Status = .ok) async throws -> Response {
        var values: [String: Any] = ["heading": heading, "message": text]
        if let link { values["link"] = ["href": link.0, "text": link.1] }
        return try await render("message", values, request, context, status: status)
    }

    /// Runs a settings form's action for the signed-in browser; a problem shows on the page.
    func signedIn(_ request: Request, _ context: NodeRequestContext,
                  _ body: (AccountCaller, FormBody) async throws -> Response) async throws -> Response {
        guard let caller = context.account, caller.sessionID != nil else { return Self.signInFirst(request) }
        do {
            // The token form reads its repeated fields itself.
            let form = request.uri.path == "/settings/tokens" ? FormBody("") : try await Self.form(request)
            return try await body(caller, form)
        } catch let p as AccountProblem {
            return try await settingsPage(caller, request, context, error: p.description, status: Self.status(p))
        }
    }

    func settingsPage(_ caller: AccountCaller, _ request: Request, _ context: NodeRequestContext, newToken: [String: String]? = nil,
                      error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let account = try await service.account(id: caller.accountID) else { return Self.signInFirst(request) }
        let names = providerNames
        let sessions = try await service.sessions.sessions(account: account.id).map { s -> [String: Any] in
            ["id": s.id, "userAgent": Self.browser(s.userAgent), "address": s.address, "created": Self.date(s.createdAt),
             "lastSeen": Self.date(s.lastSeenAt), "method": s.method, "current": s.id == caller.sessionID]
        }
        let tokens = try await service.tokens.tokens(account: account.id).map { t -> [String: Any] in
            ["id": t.id, "name": t.name, "scopes": t.scopes.joined(separator: " "), "expires": t.expiresAt.map(Self.date) ?? "never",
             "lastUsed": t.lastUsedAt.map(Self.date) ?? "never"]
        }
        let linked = try await identities(account.id).map { i -> [String: Any] in
            ["providerName": names[i.provider] ?? i.provider, "email": i.email ?? "", "created": Self.date(i.created)]
        }
        let audit = try await service.audit.entries(account: account.id, limit: 30).map { e -> [String: Any] in
            ["at": Self.date(e.at), "event": e.event, "address": e.address, "detail": e.detail]
        }
        var values: [String: Any] = [
            "account": ["displayName": account.displayName, "email": account.email, "role": account.role.rawValue],
            "verified": account.emailVerified, "hasPassword": try await service.accounts.passwordHash(id: account.id) != nil,
            "handle": try await service.channels.handle(of: account.id) ?? "", "channelPath": try await service.channels.path(of: account.id),
            "sessions": sessions, "tokens": tokens, "anyTokens": !tokens.isEmpty, "scopes": Scope.all,
            "identities": linked, "anyIdentities": !linked.isEmpty, "audit": audit,
        ]
        if let newToken { values["newToken"] = newToken }
        return try await render("settings", values, request, context, error: error, status: status)
    }

    func studioPage(_ caller: AccountCaller, _ request: Request, _ context: NodeRequestContext, error: String? = nil, title: String = "",
                    status: HTTPResponse.Status = .ok) async throws -> Response {
        let streams = studio.list(caller.accountID, request).map { s -> [String: Any] in
            let r = studio.catalog.record(id: s.id)
            let visibility = r?.visibility ?? .public
            var v: [String: Any] = ["id": s.id, "title": s.title, "server": s.server, "watchURL": s.watchURL, "live": s.live,
                                    "status": s.status, "advice": s.advice, "anyAdvice": !s.advice.isEmpty,
                                    "description": r?.description ?? "", "tags": (r?.tags ?? []).joined(separator: ", "),
                                    "visibilityName": Self.visibilityNames[visibility] ?? visibility.rawValue,
                                    "visibilities": StreamRecord.Visibility.allCases.map { ["value": $0.rawValue, "name": Self.visibilityNames[$0] ?? $0.rawValue,
                                                                                             "selected": $0 == visibility] as [String: Any] },
                                    "startsLocal": Self.localInput(r?.startsAt, zone: r?.timeZone), "timeZone": r?.timeZone ?? "",
                                    "allowGuests": r?.allowGuests ?? false,
                                    "recorded": r?.isRecorded ?? true, "channelRecords": (r?.channelRecording.records ?? true) ? "1" : "0",
                                    "onAirName": r?.onAirPublisher.cohostAccount == nil ? "You are" : "A co-host is",
                                    "scheduled": r?.startsAt.map { Self.date($0) + " UTC" } ?? "",
                                    "thumbnail": s.thumbnail != nil, "thumbnailSrc": s.thumbnail ?? "",
                                    "thumbnailUploaded": s.thumbnailUploaded]
            if let key = s.key { v["key"] = key }
            if let url = s.rtmpURL { v["rtmpURL"] = url }
            return v
        }
        let cohosting = studio.cohosting(caller.accountID, request).map { s -> [String: Any] in
            let onAir = studio.catalog.record(id: s.id)?.onAirPublisher == .cohost(account: caller.accountID)
            var v: [String: Any] = ["id": s.id, "title": s.title, "server": s.server, "watchURL": s.watchURL, "live": s.live,
                                    "onAir": onAir ? "yes: your broadcast goes out" : "no: the host can hand the stream to you"]
            if let key = s.key { v["key"] = key }
            if let url = s.rtmpURL { v["rtmpURL"] = url }
            return v
        }
        let figures = try await studio.recordings(caller.accountID)
        let recordings: [String: Any] = [
            "recordedByDefault": figures.settings.records, "keepDays": figures.settings.keepDays.map { "\($0)" } ?? "",
            "keepMB": figures.settings.keepBytes.map { "\($0 >> 20)" } ?? "", "channelSize": Self.size(figures.channelBytes),
            "nodeSize": figures.nodeBytes.map(Self.size) ?? "", "nodeRecords": figures.nodeBytes != nil,
            "nodeBudget": figures.nodeMaxBytes.map(Self.size) ?? "", "nodeBudgeted": figures.nodeMaxBytes != nil]
        var response = try await render("studio", ["streams": streams, "anyStreams": !streams.isEmpty, "title": title,
                                                   "recordings": recordings,
                                                   "cohosting": cohosting, "anyCohosting": !cohosting.isEmpty,
                                                   "channelPath": try await service.channels.path(of: caller.accountID)], request, context,
                                        error: error, status: status)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    // MARK: Helpers

    /// Bytes for people: MB or GB, one decimal.
    static func size(_ bytes: Int) -> String {
        let mb = Double(bytes) / 1_048_576
        return mb >= 1024 ? String(format: "%.1f GB", mb / 1024) : String(format: "%.1f MB", mb)
    }

    func sessionCookie(_ token: String) -> Cookie { Self.sessionCookie(token, settings: service.settings) }

    static func sessionCookie(_ token: String, settings: AccountsSettings) -> Cookie {
        Cookie(name: SessionStore.cookieName, value: token, maxAge: Int(settings.sessionLifetime), path: "/",
               secure: settings.secureCookies, httpOnly: true, sameSite: .lax)
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func signInFirst(_ request: Request) -> Response {
        redirect("/signin?next=" + (request.uri.path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"))
    }

    /// A path on this site (`/studio`), never another site (`//evil.example`, `https://...`).
    static func localPath(_ raw: String?) -> String? {
        guard let raw, raw.hasPrefix("/"), !raw.hasPrefix("//"), !raw.hasPrefix("/\\"), raw.count <= 200,
              !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return nil }
        return raw
    }

    static func form(_ request: Request) async throws -> FormBody {
        FormBody(try await request.body.collect(upTo: CSRFMiddleware.formLimit))
    }

    /// Every value of a repeated field (`scope=a&scope=b`).
    static func allValues(_ body: String, _ name: String) -> [String] {
        body.split(separator: "&").compactMap { pair -> String? in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == Substring(name) else { return nil }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
    }

    static func address(_ context: NodeRequestContext) -> String { context.clientAddress }

    static func status(_ p: AccountProblem) -> HTTPResponse.Status {
        p.problem.status
    }

    static func date(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return String(f.string(from: d).prefix(16))
    }

    /// A user agent in a few words (the browser and the system it runs on).
    static func browser(_ agent: String) -> String {
        let browsers = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"),
                        ("streamtube/", "streamtube CLI")]
        let systems = [("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"), ("Mac OS X", "macOS"),
                       ("Linux", "Linux")]
        let name = browsers.first { agent.contains($0.0) }?.1 ?? (agent.isEmpty ? "Unknown" : String(agent.prefix(40)))
        return systems.first { agent.contains($0.0) }.map { "\(name) on \($0.1)" } ?? name
    }
}
