// The operator API's guard: `Authorization: Bearer <operator token>`.
import Crypto
import Hummingbird

/// Lets a request through when it carries the node's operator token; marks the caller.
package struct OperatorAuthMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    /// A key of this process's own, and the token's MAC under it.
    private let key: [UInt8]
    private let expected: [UInt8]

    package init(token: String) {
        key = Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        expected = Array(HMAC<SHA256>.authenticationCode(for: Array(token.utf8), using: SymmetricKey(data: key)))
    }

    /// Checks the presented token's MAC in constant time (swift-crypto), so neither the
    /// token's length nor its first differing byte shows in the time an answer takes.
    package func accepts(_ presented: Substring) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(expected, authenticating: Array(presented.utf8), using: SymmetricKey(data: key))
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), accepts(header.dropFirst(7)) else {
            throw Problem(.unauthorized, "missing or wrong operator token: send Authorization: Bearer <token>",
                          headers: [.wwwAuthenticate: "Bearer realm=\"streamtube\""])
        }
        var context = context
        context.caller = .operator
        return try await next(request, context)
    }
}
