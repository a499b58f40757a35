// What a browser needs to be safe on the platform's pages: security headers on every answer,
// a Content-Security-Policy nonce for the page's own inline script, and a check against
// cross-site request forgery on everything a cookie authenticates.
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Random bytes as base64url without padding: tokens for cookies and links.
package enum RandomToken {
    package static func make(bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        let raw = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) }
        return base64url(raw)
    }

    package static func base64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// SHA-256 as lowercase hex: how a token is kept at rest. Every signed-in request takes one
    /// (its session cookie's): hex by table, since `String(format:)` per byte took a tenth of such a page's CPU.
    package static func digest(_ token: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in SHA256.hash(data: Array(token.utf8)) {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Equal, in a time that does not depend on where they differ.
    package static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in x.indices { d |= x[i] ^ y[i] }
        return d == 0
    }

    /// A token as `make` shapes it: base64url, 16 to 128 characters.
    package static func isWellFormed(_ s: Substring) -> Bool {
        (16...128).contains(s.utf8.count) && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }
}

/// Who may show a page in a frame: nobody (`frame-ancestors 'none'` and `X-Frame-Options:
/// DENY`), unless the page's route says any site may (`Response.allowFraming()`: the embed
/// player). The route's word travels to `SecurityHeadersMiddleware` as a response header of
/// the node's own, which the middleware takes off: it never leaves the node.
package enum Framing {
    static let marker = HTTPField.Name("X-StreamTube-Framing")!
    static let anyone = "anyone"
}

extension Response {
    /// Lets any site show this answer in a frame (CSP `frame-ancestors *`, no X-Frame-Options).
    /// For pages made to be embedded only: a page that acts on a click must never be framed.
    package mutating func allowFraming() {
        headers[Framing.marker] = Framing.anyone
    }

    /// Lets this page's forms lead to `origins` as well as this site (CSP `form-action`, which
    /// browsers apply to the redirect a form's answer makes): a payment provider's checkout.
    /// Origins only (`https://checkout.stripe.com`); anything else is left out.
    package mutating func allowFormAction(to origins: [String]) {
        let safe = origins.filter { o in
            guard let u = URL(string: o), ["http", "https"].contains(u.scheme ?? ""), u.host != nil, u.path.isEmpty, u.query == nil else { return false }
            return !o.contains(where: { $0 == ";" || $0 == "," || $0 == "'" || $0.isWhitespace })
        }
        headers[FormTargets.marker] = safe.isEmpty ? nil : safe.joined(separator: " ")
    }
}

enum FormTargets {
    static let marker = HTTPField.Name("X-StreamTube-Form-Action")!
}

/// Security headers: `nosniff` on every answer; on pages a Content-Security-Policy (own
/// scripts, and inline ones only with this answer's nonce; no framing unless the route allows
/// it, see `Framing`), a Referrer-Policy that keeps links' paths (a reset token, say) from other sites.
package struct SecurityHeadersMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext

    package init() {}

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let nonce = RandomToken.make(bytes: 16)
        context.cspNonce = nonce
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        let framable = response.headers[Framing.marker] == Framing.anyone
        response.headers[Framing.marker] = nil
        let formTargets = response.headers[FormTargets.marker].map { " " + $0 } ?? ""
        response.headers[FormTargets.marker] = nil
        if response.headers[.contentType]?.hasPrefix("text/html") == true {
            // Media may come from other nodes (the nearest edge), so connect-src allows http(s).
            response.headers[.contentSecurityPolicy] = "default-src 'self'; script-src 'self' 'nonce-\(nonce)'; "
                + "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob: http: https:; "
                + "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'\(formTargets); "
                + (framable ? "frame-ancestors *" : "frame-ancestors 'none'")
            response.headers[.referrerPolicy] = "strict-origin-when-cross-origin"
            if !framable { response.headers[.xFrameOptions] = "DENY" }
        }
        return response
    }
}

/// Cross-site request forgery: a form, or a request that changes something with the session
/// cookie and without a header a browser would not send on its own (`Authorization: Bearer`),
/// must carry the `st_csrf` cookie's value back, as the form field `csrf` or the header
/// `X-CSRF-Token` (double submit: another site can neither read the cookie nor set it). Every
/// answer through here has the cookie, so every form can carry it (`context.csrfToken`). A JSON
/// request with no session cookie (the CLI's `POST /api/v1/auth/token`) has nothing to ride on.
package struct CSRFMiddleware: RouterMiddleware {
    package typealias Context = NodeRequestContext
    package static let cookieName = "st_csrf"
    /// The session cookie (Accounts' `SessionStore.cookieName`): what a forged request would ride on.
    package static let sessionCookie = "st_session"
    package static let field = "csrf"
    package static let header = HTTPField.Name.csrfToken
    /// A form body read to find the field: larger forms are refused.
    package static let formLimit = 64 * 1024

    let secureCookies: Bool

    package init(secureCookies: Bool) {
        self.secureCookies = secureCookies
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        var request = request
        let presentedCookie = request.cookies[Self.cookieName].map(\.value).flatMap { RandomToken.isWellFormed(Substring($0)) ? $0 : nil }
        let token = presentedCookie ?? RandomToken.make()
        context.csrfToken = token
        let isForm = request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        // Checked: forms (signing someone in to another's account is forgery too) and whatever a
        // session cookie would authenticate. Not: a bearer token, or no cookie to ride on.
        let ambient = request.cookies[Self.sessionCookie] != nil
        if ![.get, .head, .options].contains(request.method), !Self.hasBearer(request), isForm || ambient {
            var presented = request.headers[Self.header]
            if presented == nil, isForm {
                let body = try await request.body.collect(upTo: Self.formLimit)
                request.body = .init(buffer: body)
                presented = FormBody(body).values[Self.field]
            }
            guard let cookie = presentedCookie, let presented, RandomToken.equal(cookie, presented) else {
                throw Problem(.forbidden, "this form expired or was sent from another site: reload the page and try again")
            }
        }
        var response = try await next(request, context)
        if presentedCookie == nil {
            response.setCookie(Cookie(name: Self.cookieName, value: token, path: "/", secure: secureCookies, httpOnly: true,
                                      sameSite: .lax))
        }
        return response
    }

    static func hasBearer(_ request: Request) -> Bool {
        request.headers[.authorization]?.hasPrefix("Bearer ") == true
    }
}

/// An `application/x-www-form-urlencoded` body's fields (the first of each name).
package struct FormBody: Sendable {
    package let values: [String: String]

    package init(_ buffer: ByteBuffer) {
        self.init(String(buffer: buffer))
    }

    package init(_ text: String) {
        var values: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let name = decode(parts[0])
            if values[name] == nil { values[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        self.values = values
    }

    package subscript(_ name: String) -> String? { values[name] }
}
