// HTTPSPolicy: with the node serving HTTPS itself (--tls-cert), its answers over HTTPS carry
// Strict-Transport-Security (--hsts-seconds), and page requests over plain HTTP may be sent to
// HTTPS (--http-redirect). Which listener a request came on is told by the port it reached.
// Left alone on plain HTTP: health checks and metrics (probes and scrapers), node-to-node
// routes and edge fetches (the cluster's own traffic, which cluster TLS covers), and methods
// other than GET and HEAD (a redirected POST would lose its body).
import HTTPSupport
import Hummingbird

struct HTTPSPolicyMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext
    let httpsPort: Int
    let redirect: Bool
    let hstsSeconds: Int
    /// Where redirects go: the public URL's origin when it is https, else this host on the HTTPS port.
    let publicOrigin: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if context.channel.localAddress?.port == httpsPort {
            var response = try await next(request, context)
            if hstsSeconds > 0 { response.headers[.strictTransportSecurity] = "max-age=\(hstsSeconds)" }
            return response
        }
        guard redirect, request.method == .get || request.method == .head, !Self.exempt(request) else {
            return try await next(request, context)
        }
        let host = Self.hostName(request.head.authority ?? "")
        // A Host that is no host name or address gets no redirect built from it.
        guard publicOrigin != nil || (!host.isEmpty && host.utf8.count <= 255 && host.allSatisfy(Self.hostCharacters.contains)) else {
            return try await next(request, context)
        }
        let origin = publicOrigin ?? "https://\(host)\(httpsPort == 443 ? "" : ":\(httpsPort)")"
        return Response(status: .movedPermanently, headers: [.location: origin + (request.uri.string.hasPrefix("/") ? request.uri.string : "/")])
    }

    static let hostCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:")

    static func exempt(_ request: Request) -> Bool {
        let path = request.uri.path
        return path.hasPrefix("/healthz") || path == "/metrics" || path.hasPrefix("/internal/") || path.hasPrefix("/.well-known/acme-challenge/")
            || request.headers[.streamTubeEdge] != nil || request.headers[.streamTubeClusterToken] != nil
    }

    /// The host without its port (`[::1]:8080` → `[::1]`).
    static func hostName(_ authority: String) -> String {
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") { return String(authority[...end]) }
        return String(authority.split(separator: ":", maxSplits: 1).first ?? Substring(authority))
    }
}
