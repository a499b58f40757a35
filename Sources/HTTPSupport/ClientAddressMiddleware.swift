// ClientAddressMiddleware: behind a trusted load balancer, the client's address is the one the
// balancer put in X-Forwarded-For (see `TrustedProxies`); from anyone else the header is ignored.
import Hummingbird

package struct ClientAddressMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    let trusted: TrustedProxies

    package init(trusted: TrustedProxies) { self.trusted = trusted }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if trusted.contains(context.channel.remoteAddress) {
            context.forwardedAddress = trusted.clientAddress(peer: context.channel.remoteAddress,
                                                             forwardedFor: request.headers[values: .xForwardedFor])
        }
        return try await next(request, context)
    }
}
