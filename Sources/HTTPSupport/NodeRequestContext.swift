// The request context every route of a node sees: Hummingbird's core storage plus who is
// calling, as established by the authentication middleware in front of the route, and the
// connection it came on.
import Hummingbird
import Logging
import NIOCore

/// Who a request comes from, once a middleware has checked it.
package enum Caller: Sendable, Equatable {
    /// Holder of the node's operator token (scripts, the CLI).
    case `operator`
    /// Another node of the cluster (`id`), with a cluster token for one request: its purpose,
    /// the scope it names (a stream), and the digest of the body it signed, if any.
    case node(id: String, purpose: String, scope: String, bodyDigest: String?)
    /// A person signed in: by a session cookie, or by one of their API tokens.
    case account(AccountCaller)
}

/// A signed-in person as a request carries them.
package struct AccountCaller: Sendable, Equatable {
    package enum Credential: Sendable, Equatable {
        /// A browser session (cookie): the session's id, so the session can be named (this one) and revoked.
        case session(id: String)
        /// A personal API token with what it may do.
        case token(id: String, scopes: Set<String>)
    }

    package var accountID: String
    /// viewer, broadcaster or admin.
    package var role: String
    package var credential: Credential

    package init(accountID: String, role: String, credential: Credential) {
        self.accountID = accountID
        self.role = role
        self.credential = credential
    }

    package var isAdmin: Bool { role == "admin" }
    package var sessionID: String? {
        if case .session(let id) = credential { return id }
        return nil
    }

    /// A session may do all its account may; a token what its scopes say.
    package func allows(_ scope: String) -> Bool {
        switch credential {
        case .session: return true
        case .token(_, let scopes): return scopes.contains(scope)
        }
    }
}

package struct NodeRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    /// Set by an authentication middleware; nil for anonymous callers.
    package var caller: Caller?
    /// The connection the request came on (whether it is over TLS, say).
    package let channel: any Channel
    /// This request's anti-forgery token (the `st_csrf` cookie's value, or a new one the answer sets), for forms.
    package var csrfToken: String?
    /// This answer's Content-Security-Policy nonce: the inline scripts a page may run carry it.
    package var cspNonce: String?
    /// The client's address when a trusted proxy named it (`ClientAddressMiddleware`); else nil.
    package var forwardedAddress: String?

    /// Who is calling, by IP address, for throttles and logs: the address a trusted proxy named,
    /// else the connection's.
    package var clientAddress: String {
        if let forwardedAddress { return forwardedAddress }
        guard let remote = channel.remoteAddress else { return "unknown" }
        return remote.ipAddress ?? "\(remote)"
    }

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.channel = source.channel
        self.csrfToken = nil
        self.cspNonce = nil
        self.forwardedAddress = nil
    }
}
