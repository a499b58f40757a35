// InvitationPages: the studio's invitations to a private stream (by mail, or a link with an
// expiry and a number of uses; revoked from the same place) and the page an invitation leads to
// (`/join/{token}`): an account joins, or — when the broadcaster allows it — a named guest.
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird

package struct InvitationPages: Sendable {
    let service: AccountService
    let catalog: StreamCatalog
    let renderer: PageRenderer
    let send: SendMail

    package static let guestCookie = "st_guest"

    package init(service: AccountService, catalog: StreamCatalog, renderer: PageRenderer, send: @escaping SendMail) {
        self.service = service
        self.catalog = catalog
        self.renderer = renderer
        self.send = send
    }

    /// The viewer a guest cookie stands for.
    package static func guestViewer(_ request: Request) -> String? {
        guard let token = request.cookies[guestCookie]?.value, RandomToken.isWellFormed(Substring(token)) else { return nil }
        return "guest-" + RandomToken.digest(token).prefix(24)
    }

    /// Who is watching: the signed-in account, else a guest who joined by an invitation.
    package static func viewer(_ request: Request, _ context: NodeRequestContext) -> String? {
        context.account?.accountID ?? guestViewer(request)
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/studio/streams/:id/invitations") { request, context -> Response in
            try await owned(request, context) { _, record in try await page(record, request, context) }
        }
        routes.post("/studio/streams/:id/invitations") { request, context -> Response in
            try await owned(request, context) { caller, record in
                let form = try await AccountPages.form(request)
                let days = Int(form["days"] ?? "") ?? 7
                guard (1...90).contains(days) else { throw AccountProblem(.invalid, "an invitation lasts 1 to 90 days") }
                if let list = form["emails"], !list.trimmingCharacters(in: .whitespaces).isEmpty {
                    let emails = list.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).map(String.init).filter { !$0.isEmpty }
                    guard emails.count <= 50 else { throw AccountProblem(.invalid, "at most 50 addresses at once") }
                    let checked = try emails.map { try AccountService.checkedEmailAddress($0) }
                    let host = try await service.account(id: caller.accountID)
                    for email in checked {
                        let (_, token) = try await service.invitations.create(stream: record.id, email: email, maxUses: 1,
                                                                               lifetime: Double(days) * 86400)
                        try await send(email, "\(host?.displayName ?? "Someone") invites you to watch \(record.title)", """
                            Hello,

                            \(host?.displayName ?? "A broadcaster") invites you to watch "\(record.title)" on StreamTube\(record.startsAt.map { ", starting " + Self.when($0, zone: record.timeZone) } ?? "").

                            Join with this link (it works for \(days) days, for you alone):

                            \(service.settings.publicURL)/join/\(token)
                            """)
                    }
                    await service.audit.record("invitations mailed", account: caller.accountID, address: AccountPages.address(context),
                                               detail: "\(checked.count) to \(record.id)")
                    return AccountPages.redirect("/studio/streams/\(record.id)/invitations?done=invitations-sent")
                }
                let uses = (form["uses"] ?? "").isEmpty ? nil : Int(form["uses"] ?? "")
                if let uses, !(1...10_000).contains(uses) { throw AccountProblem(.invalid, "a link is used 1 to 10000 times (or leave it empty: no limit)") }
                let (_, token) = try await service.invitations.create(stream: record.id, email: nil, maxUses: uses, lifetime: Double(days) * 86400)
                var response = try await page(record, request, context, newLink: "\(service.settings.publicURL)/join/\(token)")
                response.headers[.cacheControl] = "no-store"
                return response
            }
        }
        routes.post("/studio/streams/:id/invitations/:invitation/revoke") { request, context -> Response in
            try await owned(request, context) { caller, record in
                let id = try context.parameters.require("invitation")
                _ = try await service.invitations.revoke(id: id, stream: record.id)
                await service.audit.record("invitation revoked", account: caller.accountID, address: AccountPages.address(context), detail: id)
                return AccountPages.redirect("/studio/streams/\(record.id)/invitations?done=invitation-revoked")
            }
        }
        routes.get("/join/:token") { request, context -> Response in
            let token = try context.parameters.require("token")
            guard let inv = try await service.invitations.invitation(token: token), let record = catalog.record(id: inv.streamID) else {
                return try await message("This invitation does not work", "It is unknown: ask the broadcaster for a new link.", request, context)
            }
            guard inv.revokedAt == nil, inv.expiresAt > Date(), inv.maxUses.map({ inv.uses < $0 }) ?? true else {
                if let viewer = Self.viewer(request, context), try await service.invitations.isInvitee(stream: record.id, viewer: viewer) {
                    return AccountPages.redirect("/watch/\(record.id)")
                }
                return try await message("This invitation does not work", "It was withdrawn, has expired or was used up: ask the broadcaster for a new one.",
                                         request, context)
            }
            var response = try await renderer.render("join", [
                "title": record.title, "token": token, "signedIn": context.account?.sessionID != nil,
                "guests": record.allowGuests, "next": "/join/\(token)",
            ], request, context)
            response.headers[.referrerPolicy] = "no-referrer"
            return response
        }
        routes.post("/join/:token") { request, context -> Response in
            let token = try context.parameters.require("token")
            let form = try await AccountPages.form(request)
            var setGuest: String?
            let viewer: String
            let name: String
            if let caller = context.account, caller.sessionID != nil {
                viewer = caller.accountID
                name = try await service.account(id: caller.accountID)?.displayName ?? ""
            } else {
                guard let inv = try await service.invitations.invitation(token: token), let record = catalog.record(id: inv.streamID),
                      record.allowGuests else {
                    return AccountPages.redirect("/signin?next=/join/\(token)")
                }
                let guestName = (form["name"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                guard (1...60).contains(guestName.count),
                      !guestName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    return try await message("Give a name", "A guest joins under a name of 1 to 60 characters.", request, context, status: .badRequest)
                }
                let cookie = request.cookies[Self.guestCookie]?.value
                let secret = cookie.flatMap { RandomToken.isWellFormed(Substring($0)) ? $0 : nil } ?? RandomToken.make()
                if cookie != secret { setGuest = secret }
                viewer = "guest-" + RandomToken.digest(secret).prefix(24)
                name = guestName + " (guest)"
            }
            do {
                let inv = try await service.invitations.join(token: token, viewer: viewer, name: name)
                var response = AccountPages.redirect("/watch/\(inv.streamID)")
                if let setGuest {
                    response.setCookie(Cookie(name: Self.guestCookie, value: setGuest, maxAge: 90 * 86400, path: "/",
                                              secure: service.settings.secureCookies, httpOnly: true, sameSite: .lax))
                }
                return response
            } catch let p as AccountProblem {
                return try await message("This invitation does not work", p.description, request, context, status: p.problem.status)
            }
        }
        return routes
    }

    func owned(_ request: Request, _ context: NodeRequestContext,
               _ body: (AccountCaller, StreamRecord) async throws -> Response) async throws -> Response {
        try await owned(request, context, body) { record, error, status in
            try await page(record, request, context, error: error, status: status)
        }
    }

    /// Runs a studio action on a stream of the signed-in broadcaster (or any, for an admin); a
    /// stream of someone else's is "not found", and a problem shows on the page `problemPage` makes.
    func owned(_ request: Request, _ context: NodeRequestContext, _ body: (AccountCaller, StreamRecord) async throws -> Response,
               problemPage: (StreamRecord, String, HTTPResponse.Status) async throws -> Response) async throws -> Response {
        guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = catalog.record(id: id),
              record.owner == caller.accountID || caller.isAdmin else {
            return try await message("No such stream", "You have no stream \(id.prefix(20)).", request, context, status: .notFound)
        }
        do { return try await body(caller, record) } catch let p as AccountProblem {
            return try await problemPage(record, p.description, p.problem.status)
        }
    }

    func page(_ record: StreamRecord, _ request: Request, _ context: NodeRequestContext, newLink: String? = nil, error: String? = nil,
              status: HTTPResponse.Status = .ok) async throws -> Response {
        let invitations = try await service.invitations.invitations(stream: record.id).map { i -> [String: Any] in
            ["id": i.id, "streamID": record.id, "who": i.email ?? "Link", "uses": i.maxUses.map { "\(i.uses) of \($0)" } ?? "\(i.uses)",
             "expires": AccountPages.date(i.expiresAt), "state": i.revokedAt != nil ? "withdrawn" : (i.isLive ? "open" : "closed"),
             "open": i.revokedAt == nil]
        }
        let invitees = try await service.invitations.invitees(stream: record.id).map { ["name": $0.name, "joined": AccountPages.date($0.joinedAt)] }
        var values: [String: Any] = ["id": record.id, "title": record.title, "private": record.visibility.isPrivate,
                                     "invitations": invitations, "anyInvitations": !invitations.isEmpty,
                                     "invitees": invitees, "anyInvitees": !invitees.isEmpty]
        if let newLink { values["newLink"] = newLink }
        return try await renderer.render("invitations", values, request, context, error: error, status: status)
    }

    func message(_ heading: String, _ text: String, _ request: Request, _ context: NodeRequestContext,
                 status: HTTPResponse.Status = .ok) async throws -> Response {
        try await renderer.render("message", ["heading": heading, "message": text], request, context, status: status)
    }

    static func when(_ date: Date, zone: String?) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_GB")
        f.timeZone = zone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")
        f.dateFormat = "EEEE d MMMM yyyy, HH:mm"
        return f.string(from: date) + " (" + (zone ?? "UTC") + ")"
    }
}
