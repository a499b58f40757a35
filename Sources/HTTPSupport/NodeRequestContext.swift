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
}

package struct NodeRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    /// Set by an authentication middleware; nil for anonymous callers.
    package var caller: Caller?
    /// The connection the request came on (whether it is over TLS, say).
    package let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.channel = source.channel
    }
}
