// ProviderRoutes: signing in with Google, Facebook, X or an OpenID Connect provider. `start`
// keeps the attempt server-side (taken once: a replayed state finds nothing) and sends the
// browser to the provider; `callback` has the OIDC target check what comes back, then signs
// in, makes an account, links to the signed-in account, or asks for the password of the
// account with the same email before linking it — never a takeover.
import Accounts
import AsyncHTTPClient
import Foundation
import HTTPSupport
import Hummingbird
import OIDC

/// The configured providers, each with its client.
package struct SignInProviders: Sendable {
    package let clients: [String: OIDCClient]
    package let links: [ProviderLink]

    package init(_ configurations: [ProviderConfiguration], httpClient: HTTPClient) throws {
        var clients: [String: OIDCClient] = [:]
        for c in configurations { clients[c.id] = try OIDCClient(configuration: c, httpClient: httpClient) }
        self.clients = clients
        self.links = configurations.map { ProviderLink(id: $0.id, name: $0.displayName) }
    }

    package var isEmpty: Bool { clients.isEmpty }
}

struct PendingSignIn: Codable {
    var request: AuthorizationRequest
    var next: String?
    /// Set when a signed-in person links a provider from the settings.
    var linkTo: String?
}

struct PendingLink: Codable {
    var identity: ProviderIdentity
    var email: String
    var next: String?
}

package struct ProviderRoutes: Sendable {
    let service: AccountService
    let renderer: PageRenderer
    let providers: SignInProviders

    package init(service: AccountService, renderer: PageRenderer, providers: SignInProviders) {
        self.service = service
        self.renderer = renderer
        self.providers = providers
    }

    var names: [String: String] { Dictionary(providers.links.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a }) }

    func redirectURI(_ provider: String) -> String { service.settings.publicURL + "/auth/\(provider)/callback" }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/auth/:provider/start") { request, context -> Response in
            let id = try context.parameters.require("provider")
            guard let client = providers.clients[id] else { return try await failed("No such sign-in provider", "Use one of the buttons on the sign-in page.", request, context, status: .notFound) }
            let begun: AuthorizationRequest
            do { begun = try await client.begin(redirectURI: redirectURI(id)) } catch {
                context.logger.warning("provider sign-in could not start", metadata: ["provider": "\(id)", "error": "\(error)"])
                return try await failed("Sign-in did not work", "\(names[id] ?? id) cannot be reached right now: \(error). Try again later.",
                                        request, context, status: .badGateway)
            }
            let linking = request.uri.queryParameters.get("link") == "1" ? context.account.flatMap { $0.sessionID != nil ? $0.accountID : nil } : nil
            try await service.flows.put(state: begun.state, provider: id,
                                        pending: PendingSignIn(request: begun, next: AccountPages.localPath(request.uri.queryParameters.get("next")),
                                                               linkTo: linking))
            return Response(status: .seeOther, headers: [.location: begun.url.absoluteString, .cacheControl: "no-store"])
        }
        routes.get("/auth/:provider/callback") { request, context -> Response in
            let id = try context.parameters.require("provider")
            guard let client = providers.clients[id] else { return try await failed("No such sign-in provider", "Use one of the buttons on the sign-in page.", request, context, status: .notFound) }
            var query: [String: String] = [:]
            for (k, v) in request.uri.queryParameters where query.count < 20 && v.utf8.count <= 4096 { query[String(k)] = String(v) }
            let address = AccountPages.address(context)
            guard let pending = try await service.flows.take(state: query["state"] ?? "", provider: id, as: PendingSignIn.self) else {
                // A refusal without state (oidc-provider-mock's Deny, and some real providers): name the refusal.
                // Nothing is signed in either way; the attempt it ended expires on its own.
                if query["state"] == nil, let refusal = OIDCError.refusal(inCallbackQuery: query) {
                    await service.audit.record("provider sign-in refused", account: nil, address: address, detail: "\(id): \(refusal)")
                    return try await failed("Sign-in did not work", "\(names[id] ?? id) did not confirm who you are: \(refusal)",
                                            request, context, status: .badRequest)
                }
                await service.audit.record("provider sign-in refused", account: nil, address: address, detail: "\(id): unknown or used state")
                return try await failed("Sign-in did not work", "This sign-in attempt is unknown, expired or was used already: start again from the sign-in page.",
                                        request, context, status: .badRequest)
            }
            let external: ProviderIdentity
            do { external = try await client.finish(callbackQuery: query, pending: pending.request, redirectURI: redirectURI(id)) } catch {
                await service.audit.record("provider sign-in refused", account: nil, address: address, detail: "\(id): \(error)")
                return try await failed("Sign-in did not work", "\(names[id] ?? id) did not confirm who you are: \(error)", request, context,
                                        status: .badRequest)
            }
            let identity = external
            do {
                if let linkTo = pending.linkTo {
                    guard context.account?.accountID == linkTo else {
                        return try await failed("Sign-in did not work", "Sign in again to link a provider.", request, context, status: .badRequest)
                    }
                    try await service.link(identity, to: linkTo, address: address)
                    return AccountPages.redirect("/settings?done=linked#providers")
                }
                switch try await service.signIn(with: identity, address: address) {
                case .signedIn(let account, _):
                    let token = try await service.openSession(account: account, method: id, address: address,
                                                              userAgent: request.headers[.userAgent] ?? "")
                    var response = AccountPages.redirect(pending.next ?? "/studio")
                    response.setCookie(AccountPages.sessionCookie(token, settings: service.settings))
                    return response
                case .needsLink(let email):
                    let token = RandomToken.make()
                    try await service.flows.put(state: token, provider: "link", pending: PendingLink(identity: identity, email: email, next: pending.next))
                    return try await renderer.render("link", ["email": email, "providerName": names[id] ?? id, "token": token], request, context)
                }
            } catch let p as AccountProblem {
                return try await failed("Sign-in did not work", p.description, request, context, status: p.problem.status)
            }
        }
        routes.post("/auth/link") { request, context -> Response in
            let form = try await AccountPages.form(request)
            let token = form["token"] ?? ""
            guard let pending = try await service.flows.take(state: token, provider: "link", as: PendingLink.self) else {
                return try await failed("Sign-in did not work", "This link request is unknown, expired or was used already: sign in with the provider again.",
                                        request, context, status: .badRequest)
            }
            let address = AccountPages.address(context)
            do {
                let account = try await service.linkWithPassword(pending.identity, email: pending.email, password: form["password"] ?? "", address: address)
                let session = try await service.openSession(account: account, method: pending.identity.provider, address: address,
                                                            userAgent: request.headers[.userAgent] ?? "")
                var response = AccountPages.redirect(pending.next ?? "/settings?done=linked#providers")
                response.setCookie(AccountPages.sessionCookie(session, settings: service.settings))
                return response
            } catch let p as AccountProblem {
                // Another try with the same request (sign-ins are throttled all the same).
                let again = RandomToken.make()
                try await service.flows.put(state: again, provider: "link", pending: pending)
                return try await renderer.render("link", ["email": pending.email, "providerName": names[pending.identity.provider] ?? pending.identity.provider,
                                                          "token": again], request, context, error: p.description, status: p.problem.status)
            }
        }
        return routes
    }

    func failed(_ heading: String, _ text: String, _ request: Request, _ context: NodeRequestContext,
                status: HTTPResponse.Status) async throws -> Response {
        try await renderer.render("message", ["heading": heading, "message": text, "link": ["href": "/signin", "text": "Back to sign-in"]],
                                  request, context, status: status)
    }
}
