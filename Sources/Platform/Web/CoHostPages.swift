// CoHostPages: the studio's co-hosts of a stream (`/studio/streams/{id}/cohosts`: add one by
// email or handle, hand the stream to one or take it back, remove one) and a co-host's new key.
// What each action does is `CoHosts`' (Accounts), which the API calls too.
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird

package struct CoHostPages: Sendable {
    let cohosts: CoHosts
    let catalog: StreamCatalog
    let renderer: PageRenderer
    let invitations: InvitationPages

    package init(service: AccountService, catalog: StreamCatalog, renderer: PageRenderer, send: @escaping SendMail) {
        self.cohosts = CoHosts(service: service, catalog: catalog)
        self.catalog = catalog
        self.renderer = renderer
        self.invitations = InvitationPages(service: service, catalog: catalog, renderer: renderer, send: send)
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/studio/streams/:id/cohosts") { request, context -> Response in
            try await owned(request, context) { _, record in try await page(record, request, context) }
        }
        routes.post("/studio/streams/:id/cohosts") { request, context -> Response in
            try await owned(request, context) { caller, record in
                let form = try await AccountPages.form(request)
                _ = try await cohosts.add(form["account"] ?? "", to: record, by: caller.accountID, address: AccountPages.address(context))
                return AccountPages.redirect("/studio/streams/\(record.id)/cohosts?done=cohost-added")
            }
        }
        routes.post("/studio/streams/:id/cohosts/:account/remove") { request, context -> Response in
            try await owned(request, context) { caller, record in
                let account = try context.parameters.require("account")
                _ = try await cohosts.remove(account, from: record, by: caller.accountID, address: AccountPages.address(context))
                return AccountPages.redirect("/studio/streams/\(record.id)/cohosts?done=cohost-removed")
            }
        }
        routes.post("/studio/streams/:id/on-air") { request, context -> Response in
            try await owned(request, context) { caller, record in
                let form = try await AccountPages.form(request)
                let account = (form["account"] ?? "").isEmpty ? nil : form["account"]
                _ = try await cohosts.handOver(record, to: account, by: caller.accountID, address: AccountPages.address(context))
                return AccountPages.redirect("/studio/streams/\(record.id)/cohosts?done=" + (account == nil ? "taken-back" : "handed-over"))
            }
        }
        routes.post("/studio/cohosting/:id/key") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let id = try context.parameters.require("id")
            do {
                _ = try await cohosts.rotateKey(stream: id, account: caller.accountID, address: AccountPages.address(context))
            } catch let p as AccountProblem {
                return try await invitations.message("No such stream", p.description, request, context, status: p.problem.status)
            }
            return AccountPages.redirect("/studio?done=cohost-key-replaced#cohosting")
        }
        return routes
    }

    func owned(_ request: Request, _ context: NodeRequestContext,
               _ body: (AccountCaller, StreamRecord) async throws -> Response) async throws -> Response {
        try await invitations.owned(request, context, body) { record, error, status in
            try await page(record, request, context, error: error, status: status)
        }
    }

    func page(_ record: StreamRecord, _ request: Request, _ context: NodeRequestContext, error: String? = nil,
              status: HTTPResponse.Status = .ok) async throws -> Response {
        let entries = try await cohosts.entries(record)
        let rows = entries.map { e -> [String: Any] in
            var row: [String: Any] = ["account": e.account, "streamID": record.id, "displayName": e.displayName,
                                      "added": AccountPages.date(e.addedAt), "onAir": e.onAir]
            if let handle = e.handle { row["handle"] = handle }
            return row
        }
        let onAir = entries.first(where: \.onAir)
        var response = try await renderer.render("cohosts", [
            "id": record.id, "title": record.title, "cohosts": rows, "anyCohosts": !rows.isEmpty,
            "onAirName": onAir.map { "\($0.displayName) (co-host)" } ?? "you, the host", "handedOver": onAir != nil,
        ], request, context, error: error, status: status)
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
