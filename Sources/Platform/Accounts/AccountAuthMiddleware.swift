// Who is calling, for the platform's pages and `/api/v1`: a session cookie, or a personal API
// token (`Authorization: Bearer stp_...`). Anonymous requests pass through as anonymous; a
// token that is not (or no longer) valid is refused, so a script learns at once.
import Catalog
import HTTPSupport
import Hummingbird
import ServiceLifecycle

package struct AccountAuthMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    let service: AccountService

    package init(service: AccountService) {
        self.service = service
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            let presented = String(header.dropFirst(7))
            if presented.hasPrefix(APITokenStore.prefix) {
                guard let (caller, _) = try await service.caller(apiToken: presented) else {
                    throw Problem(.unauthorized, "this API token is unknown, revoked or expired: make a new one in your settings",
                                  headers: [.wwwAuthenticate: "Bearer realm=\"streamtube\", error=\"invalid_token\""])
                }
                context.caller = .account(caller)
            }
        } else if let cookie = request.cookies[SessionStore.cookieName]?.value,
                  let (caller, _) = try await service.caller(sessionToken: cookie) {
            context.caller = .account(caller)
        }
        return try await next(request, context)
    }
}

extension NodeRequestContext {
    /// The signed-in person, or nil.
    package var account: AccountCaller? {
        if case .account(let a) = caller { return a }
        return nil
    }

    /// The signed-in person allowed `scope`, or a problem saying what is missing.
    package func requireAccount(_ scope: String) throws -> AccountCaller {
        guard let a = account else {
            throw Problem(.unauthorized, "sign in first, or send a personal API token: Authorization: Bearer stp_...",
                          headers: [.wwwAuthenticate: "Bearer realm=\"streamtube\""])
        }
        guard a.allows(scope) else { throw Problem(.forbidden, "this API token lacks the scope \(scope)") }
        return a
    }
}

/// Keeps this node's cached sessions, tokens and accounts in step with changes other nodes
/// make: a notice names an account (dropped at once); "anything may have changed" (an SQLite
/// file another node wrote, notices possibly missed) drops everything.
package struct AccountChanges: Service {
    let service: AccountService
    let database: Database

    package init(service: AccountService, database: Database) {
        self.service = service
        self.database = database
    }

    package func run() async throws {
        let changes = database.changes(on: SessionStore.changes, poll: .milliseconds(250))
        await cancelWhenGracefulShutdown {
            for await change in changes {
                switch change {
                case .changed(let account): service.forget(account: account)
                case .unknown: service.forgetAll()
                }
            }
        }
    }
}

extension AccountProblem {
    /// As the API answers it.
    package var problem: Problem {
        switch kind {
        case .invalid: return Problem(.badRequest, description)
        case .unauthorized: return Problem(.unauthorized, description)
        case .forbidden: return Problem(.forbidden, description)
        case .notFound: return Problem(.notFound, description)
        case .conflict: return Problem(.conflict, description)
        case .tooManyAttempts(let after): return Problem(.tooManyRequests, description, headers: [.retryAfter: "\(after)"])
        }
    }
}
