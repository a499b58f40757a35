import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import XCTest
@testable import Accounts
@testable import App

/// People's pages and `/api/v1` through the router `buildApplication` assembles: cookies,
/// anti-forgery tokens, security headers, who may do what. Accounts are made with a password
/// hashed at bcrypt's cost 4 (a sign-in checks it quickly); the sign-up test hashes at 12.
final class AccountRouteTests: XCTestCase {
    static let password = "correct horse battery"
    static let fastHash = Mutex<String?>(nil)


    func withRouter(publicURL: String? = nil, _ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        try await Self.withRouter(publicURL: publicURL, body)
    }

    static func withRouter(publicURL: String? = nil, _ body: @escaping @Sendable (any TestClientProtocol, NodeApplication) async throws -> Void) async throws {
        let app = try await RouteTests.makeApp(publicURL: publicURL)
        do {
            try await app.http.test(.router) { client in try await body(client, app) }
        } catch {
            await app.close()
            throw error
        }
        await app.close()
    }

    /// An account whose password is `password`, hashed cheaply.
    static func account(_ app: NodeApplication, _ email: String, role: Account.Role = .broadcaster) async throws -> Account {
        let hash: String
        if let h = fastHash.withLock({ $0 }) { hash = h } else {
            hash = try await PasswordPolicy(testingCost: 4).hash(password)
            fastHash.withLock { $0 = hash }
        }
        let a = Account(email: email, displayName: email, role: role)
        try await app.accounts.accounts.insert(a, passwordHash: hash)
        return a
    }

    static func session(_ app: NodeApplication, _ a: Account) async throws -> String {
        try await app.accounts.openSession(account: a, method: "password", address: "test", userAgent: "test")
    }

    /// The value and attributes of the cookie `name` an answer sets.
    static func setCookie(_ response: TestResponse, _ name: String) -> (value: String, attributes: [String])? {
        for header in response.headers[values: .setCookie] {
            let parts = header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = parts.first, first.hasPrefix(name + "=") else { continue }
            return (String(first.dropFirst(name.count + 1)), Array(parts.dropFirst()))
        }
        return nil
    }

    /// An anti-forgery token, as a first visit gets it.
    static func csrf(_ client: any TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/signin", method: .get) { r in
            try XCTUnwrap(setCookie(r, CSRFMiddleware.cookieName)?.value)
        }
    }

    static func form(_ fields: [String: String]) -> ByteBuffer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return ByteBuffer(string: fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&"))
    }

    static let formType: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    static func headers(session: String? = nil, csrf: String? = nil, csrfHeader: String? = nil, bearer: String? = nil,
                        form: Bool = false, json: Bool = false) -> HTTPFields {
        var h = HTTPFields()
        var cookies: [String] = []
        if let session { cookies.append("\(SessionStore.cookieName)=\(session)") }
        if let csrf { cookies.append("\(CSRFMiddleware.cookieName)=\(csrf)") }
        if !cookies.isEmpty { h[.cookie] = cookies.joined(separator: "; ") }
        if let csrfHeader { h[CSRFMiddleware.header] = csrfHeader }
        if let bearer { h[.authorization] = "Bearer \(bearer)" }
        if form { h[.contentType] = "application/x-www-form-urlencoded" }
        if json { h[.contentType] = "application/json" }
        return h
    }

    static func problem(_ r: TestResponse, _ status: HTTPResponse.Status, _ message: String = "", file: StaticString = #filePath,
                        line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(message): \(String(buffer: r.body))", file: file, line: line)
        XCTAssertEqual(r.headers[.contentType], Problem.contentType, message, file: file, line: line)
    }

    static func json<T: Decodable>(_ type: T.Type, _ r: TestResponse) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(buffer: r.body))
    }

    // MARK: Sign-up and cookies

    func testSignUpNeedsTheFormsAntiForgeryTokenAndSetsASafeSessionCookie() async throws {
        try await withRouter { client, app in
            let csrf = try await client.execute(uri: "/signup", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let cookie = try XCTUnwrap(Self.setCookie(r, CSRFMiddleware.cookieName), "\(r.headers)")
                XCTAssertTrue(cookie.attributes.contains("HttpOnly"), "\(cookie)")
                XCTAssertTrue(cookie.attributes.contains("SameSite=Lax"), "\(cookie)")
                XCTAssertFalse(cookie.attributes.contains("Secure"), "not over plain http")
                XCTAssertTrue(String(buffer: r.body).contains(#"<input type="hidden" name="csrf" value="\#(cookie.value)">"#),
                              "the form carries the cookie's token")
                return cookie.value
            }
            let fields = ["email": "Ada@Example.com", "password": Self.password, "name": "Ada"]
            // No token, another token, a token without its cookie: refused, nothing made.
            for (headers, body) in [
                (Self.headers(csrf: csrf, form: true), Self.form(fields)),
                (Self.headers(csrf: csrf, form: true), Self.form(fields.merging(["csrf": RandomToken.make()]) { a, _ in a })),
                (Self.headers(form: true), Self.form(fields.merging(["csrf": csrf]) { a, _ in a })),
                (Self.headers(csrf: csrf, csrfHeader: RandomToken.make(), form: true), Self.form(fields)),
            ] {
                try await client.execute(uri: "/signup", method: .post, headers: headers, body: body) { r in
                    XCTAssertEqual(r.status, .forbidden)
                    XCTAssertNil(Self.setCookie(r, SessionStore.cookieName))
                }
            }
            let none = try await app.accounts.accounts.count()
            XCTAssertEqual(none, 0)

            let session = try await client.execute(uri: "/signup", method: .post, headers: Self.headers(csrf: csrf, form: true),
                                                   body: Self.form(fields.merging(["csrf": csrf]) { a, _ in a })) { r in
                XCTAssertEqual(r.status, .seeOther, String(buffer: r.body))
                XCTAssertTrue(r.headers[.location]?.hasPrefix("/studio") ?? false, "\(r.headers)")
                let cookie = try XCTUnwrap(Self.setCookie(r, SessionStore.cookieName), "\(r.headers)")
                XCTAssertTrue(cookie.attributes.contains("HttpOnly"), "\(cookie)")
                XCTAssertTrue(cookie.attributes.contains("SameSite=Lax"), "\(cookie)")
                XCTAssertFalse(cookie.attributes.contains("Secure"), "not over plain http")
                return cookie.value
            }
            let made = try await app.accounts.accounts.account(email: "ada@example.com")
            XCTAssertEqual(made?.displayName, "Ada")
            let hash = try await app.accounts.accounts.passwordHash(id: made?.id ?? "")
            XCTAssertTrue(hash?.hasPrefix("$2b$12$") ?? false, hash ?? "none")
            try await client.execute(uri: "/studio", method: .get, headers: Self.headers(session: session, csrf: csrf)) { r in
                XCTAssertEqual(r.status, .ok, "signed in by the cookie")
            }
            try await client.execute(uri: "/studio", method: .get) { r in
                XCTAssertEqual(r.status, .seeOther)
                XCTAssertEqual(r.headers[.location], "/signin?next=%2Fstudio")
            }
        }
    }

    func testCookiesAreSecureWhenThePublicURLIsHTTPS() async throws {
        try await withRouter(publicURL: "https://stream.example.com") { client, app in
            let csrf = try await client.execute(uri: "/signin", method: .get) { r in
                let cookie = try XCTUnwrap(Self.setCookie(r, CSRFMiddleware.cookieName))
                XCTAssertTrue(cookie.attributes.contains("Secure"), "\(cookie)")
                return cookie.value
            }
            _ = try await Self.account(app, "ada@example.com")
            try await client.execute(uri: "/signin", method: .post, headers: Self.headers(csrf: csrf, form: true),
                                     body: Self.form(["email": "ada@example.com", "password": Self.password, "csrf": csrf])) { r in
                XCTAssertEqual(r.status, .seeOther, String(buffer: r.body))
                let cookie = try XCTUnwrap(Self.setCookie(r, SessionStore.cookieName))
                XCTAssertTrue(cookie.attributes.contains("Secure"), "\(cookie)")
                XCTAssertTrue(cookie.attributes.contains("HttpOnly"))
                XCTAssertTrue(cookie.attributes.contains("SameSite=Lax"))
            }
        }
    }

    func testSignInRedirectsOnlyWithinTheSite() async throws {
        try await withRouter { client, app in
            _ = try await Self.account(app, "ada@example.com")
            let csrf = try await Self.csrf(client)
            for (next, expected) in [("//evil.example", "/studio"), ("https://evil.example", "/studio"), ("/\\evil.example", "/studio"),
                                     ("//evil.example/settings", "/studio"), ("evil.example", "/studio"), ("/settings", "/settings"),
                                     ("/watch/abc?x=1", "/watch/abc?x=1")] {
                try await client.execute(uri: "/signin", method: .post, headers: Self.headers(csrf: csrf, form: true),
                                         body: Self.form(["email": "ada@example.com", "password": Self.password, "csrf": csrf, "next": next])) { r in
                    XCTAssertEqual(r.status, .seeOther, "\(next): \(String(buffer: r.body))")
                    XCTAssertEqual(r.headers[.location], expected, next)
                }
            }
            try await client.execute(uri: "/signin?next=%2F%2Fevil.example", method: .get) { r in
                XCTAssertFalse(String(buffer: r.body).contains("evil.example"), "the form does not carry it on")
            }
            // A wrong password: the same page, 401, no session.
            try await client.execute(uri: "/signin", method: .post, headers: Self.headers(csrf: csrf, form: true),
                                     body: Self.form(["email": "ada@example.com", "password": "wrong password", "csrf": csrf])) { r in
                XCTAssertEqual(r.status, .unauthorized)
                XCTAssertNil(Self.setCookie(r, SessionStore.cookieName))
                XCTAssertTrue(String(buffer: r.body).contains("that email and password do not match an account"))
            }
        }
    }

    // MARK: Security headers

    func testPagesCarrySecurityHeadersAndTheWatchPagesScriptTheNonce() async throws {
        try await withRouter { client, _ in
            let s = try await RouteTests.createStream(client, title: "Nonce")
            var nonces: [String] = []
            for uri in ["/watch/\(s.id)", "/signin", "/signup", "/", "/watch/\(s.id)"] {
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    XCTAssertEqual(r.headers[.xFrameOptions], "DENY", uri)
                    XCTAssertEqual(r.headers[.xContentTypeOptions], "nosniff", uri)
                    XCTAssertEqual(r.headers[.referrerPolicy], "strict-origin-when-cross-origin", uri)
                    let csp = try XCTUnwrap(r.headers[.contentSecurityPolicy], uri)
                    XCTAssertTrue(csp.contains("frame-ancestors 'none'"), csp)
                    XCTAssertFalse(csp.contains("'unsafe-inline'") && csp.contains("script-src 'self' 'unsafe-inline'"), csp)
                    let range = try XCTUnwrap(csp.range(of: "'nonce-"), csp)
                    let nonce = String(csp[range.upperBound...].prefix { $0 != "'" })
                    XCTAssertGreaterThanOrEqual(nonce.count, 16)
                    nonces.append(nonce)
                    let html = String(buffer: r.body)
                    // Every inline script carries exactly this answer's nonce.
                    let scripts = html.components(separatedBy: "<script").dropFirst()
                    for script in scripts {
                        let tag = script.prefix { $0 != ">" }
                        if tag.contains("src=") { continue }
                        XCTAssertTrue(tag.contains(#"nonce="\#(nonce)""#), "\(uri): an inline script without the nonce: <script\(tag)>")
                    }
                    if uri.hasPrefix("/watch") {
                        XCTAssertEqual(scripts.filter { !$0.prefix { $0 != ">" }.contains("src=") }.count, 1, "the watch page's one inline script")
                        XCTAssertEqual(html.components(separatedBy: "nonce=").count - 1, 1)
                    }
                }
            }
            XCTAssertEqual(Set(nonces).count, nonces.count, "a new nonce on every answer")
            try await client.execute(uri: "/api/v1/openapi.json", method: .get) { r in
                XCTAssertEqual(r.headers[.xContentTypeOptions], "nosniff")
            }
        }
    }

    // MARK: /api/v1

    func testTheAPINeedsASessionOrAToken() async throws {
        try await withRouter { client, app in
            try await client.execute(uri: "/api/v1/me", method: .get) { r in
                Self.problem(r, .unauthorized, "no credential")
                XCTAssertEqual(r.headers[.wwwAuthenticate], "Bearer realm=\"streamtube\"")
            }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.headers(bearer: "stp_" + RandomToken.make())) { r in
                Self.problem(r, .unauthorized, "an unknown token")
            }
            try await client.execute(uri: "/api/v1/streams", method: .get, headers: Self.headers(session: RandomToken.make())) { r in
                Self.problem(r, .unauthorized, "an unknown session")
            }
            let ada = try await Self.account(app, "ada@example.com")
            let session = try await Self.session(app, ada)
            let csrf = try await Self.csrf(client)
            try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.headers(session: session)) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try Self.json(AccountResponse.self, r).email, "ada@example.com")
            }
            let body = ByteBuffer(string: #"{"title": "Mine"}"#)
            try await client.execute(uri: "/api/v1/streams", method: .post, headers: Self.headers(session: session, csrf: csrf, json: true),
                                     body: body) { r in
                Self.problem(r, .forbidden, "a cookie without the anti-forgery header")
            }
            try await client.execute(uri: "/api/v1/streams", method: .post,
                                     headers: Self.headers(session: session, csrf: csrf, csrfHeader: RandomToken.make(), json: true), body: body) { r in
                Self.problem(r, .forbidden, "another anti-forgery token")
            }
            let mine = try await client.execute(uri: "/api/v1/streams", method: .post,
                                                headers: Self.headers(session: session, csrf: csrf, csrfHeader: csrf, json: true), body: body) { r in
                XCTAssertEqual(r.status, .created, String(buffer: r.body))
                return try Self.json(StreamResponse.self, r)
            }
            XCTAssertEqual(mine.title, "Mine")
            XCTAssertNotNil(mine.key, "the owner sees the key")

            // A token: no anti-forgery token needed, its scopes hold.
            let (_, all) = try await app.accounts.createToken(account: ada.id, name: "all", scopes: Scope.all, expiresInDays: nil, address: "")
            let byToken = try await client.execute(uri: "/api/v1/streams", method: .post, headers: Self.headers(bearer: all, json: true),
                                                   body: ByteBuffer(string: #"{"title": "By token"}"#)) { r in
                XCTAssertEqual(r.status, .created, String(buffer: r.body))
                return try Self.json(StreamResponse.self, r)
            }
            let (_, readOnly) = try await app.accounts.createToken(account: ada.id, name: "ro", scopes: [Scope.streamsRead], expiresInDays: nil, address: "")
            try await client.execute(uri: "/api/v1/streams", method: .post, headers: Self.headers(bearer: readOnly, json: true), body: body) { r in
                Self.problem(r, .forbidden, "streams:read only")
                XCTAssertTrue(String(buffer: r.body).contains("streams:write"))
            }
            try await client.execute(uri: "/api/v1/streams/\(byToken.id)", method: .patch, headers: Self.headers(bearer: readOnly, json: true),
                                     body: ByteBuffer(string: #"{"title": "Renamed"}"#)) { r in
                Self.problem(r, .forbidden, "streams:read only")
            }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.headers(bearer: readOnly)) { r in
                Self.problem(r, .forbidden, "account:read missing")
            }
            try await client.execute(uri: "/api/v1/streams", method: .get, headers: Self.headers(bearer: readOnly)) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(Set(try Self.json([StreamResponse].self, r).map(\.id)), [mine.id, byToken.id])
            }

            // Another account's stream: not found, as if it did not exist; and not listed.
            let bob = try await Self.account(app, "bob@example.com")
            let (_, bobs) = try await app.accounts.createToken(account: bob.id, name: "bob", scopes: Scope.all, expiresInDays: nil, address: "")
            for (method, uri) in [(HTTPRequest.Method.get, "/api/v1/streams/\(mine.id)"), (.patch, "/api/v1/streams/\(mine.id)"),
                                  (.get, "/api/v1/streams/\(mine.id)/health")] {
                try await client.execute(uri: uri, method: method, headers: Self.headers(bearer: bobs, json: true),
                                         body: ByteBuffer(string: #"{"title": "Stolen"}"#)) { r in
                    Self.problem(r, .notFound, "\(method) \(uri) by another account")
                }
            }
            try await client.execute(uri: "/api/v1/streams", method: .get, headers: Self.headers(bearer: bobs)) { r in
                XCTAssertEqual(try Self.json([StreamResponse].self, r).count, 0)
            }
            try await client.execute(uri: "/api/v1/streams/\(mine.id)", method: .patch, headers: Self.headers(bearer: all, json: true),
                                     body: ByteBuffer(string: #"{"title": "Renamed"}"#)) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try Self.json(StreamResponse.self, r).title, "Renamed")
            }

            // A viewer cannot make streams.
            let viewer = try await Self.account(app, "vera@example.com", role: .viewer)
            let (_, viewers) = try await app.accounts.createToken(account: viewer.id, name: "v", scopes: Scope.all, expiresInDays: nil, address: "")
            try await client.execute(uri: "/api/v1/streams", method: .post, headers: Self.headers(bearer: viewers, json: true), body: body) { r in
                Self.problem(r, .forbidden, "a viewer")
            }
        }
    }

    func testRolesAreChangedByAdminsOnly() async throws {
        try await withRouter { client, app in
            let admin = try await Self.account(app, "admin@example.com", role: .admin)
            let ada = try await Self.account(app, "ada@example.com")
            let (_, adminToken) = try await app.accounts.createToken(account: admin.id, name: "a", scopes: Scope.all, expiresInDays: nil, address: "")
            let adaSession = try await Self.session(app, ada)
            let csrf = try await Self.csrf(client)
            let adaHeaders = Self.headers(session: adaSession, csrf: csrf, csrfHeader: csrf, json: true)
            try await client.execute(uri: "/api/v1/me", method: .get, headers: adaHeaders) { r in
                XCTAssertEqual(try Self.json(AccountResponse.self, r).role, "broadcaster")
            }
            try await client.execute(uri: "/api/v1/accounts/\(ada.id)", method: .patch, headers: adaHeaders,
                                     body: ByteBuffer(string: #"{"role": "admin"}"#)) { r in
                Self.problem(r, .forbidden, "not an admin")
            }
            try await client.execute(uri: "/api/v1/me", method: .patch, headers: adaHeaders, body: ByteBuffer(string: #"{"role": "admin"}"#)) { r in
                Self.problem(r, .forbidden, "its own role")
            }
            try await client.execute(uri: "/api/v1/accounts", method: .get, headers: adaHeaders) { r in
                Self.problem(r, .forbidden, "not an admin")
            }
            try await client.execute(uri: "/api/v1/accounts/\(ada.id)", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "wizard"}"#)) { r in
                Self.problem(r, .badRequest, "no such role")
            }
            try await client.execute(uri: "/api/v1/accounts/nosuch", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "viewer"}"#)) { r in
                Self.problem(r, .notFound, "no such account")
            }
            try await client.execute(uri: "/api/v1/accounts/\(ada.id)", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "viewer"}"#)) { r in
                XCTAssertEqual(r.status, .ok, String(buffer: r.body))
                XCTAssertEqual(try Self.json(AccountResponse.self, r).role, "viewer")
            }
            // At once, though ada's session and account were cached.
            try await client.execute(uri: "/api/v1/me", method: .get, headers: adaHeaders) { r in
                XCTAssertEqual(try Self.json(AccountResponse.self, r).role, "viewer")
            }
            try await client.execute(uri: "/api/v1/streams", method: .post, headers: adaHeaders, body: ByteBuffer(string: #"{"title": "x"}"#)) { r in
                Self.problem(r, .forbidden, "a viewer now")
            }
            // The last admin cannot demote itself; with another admin it can.
            try await client.execute(uri: "/api/v1/accounts/\(admin.id)", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "broadcaster"}"#)) { r in
                Self.problem(r, .conflict, "the last admin")
            }
            let stillAdmin = try await app.accounts.accounts.account(id: admin.id)
            XCTAssertEqual(stillAdmin?.role, .admin)
            try await client.execute(uri: "/api/v1/accounts/\(ada.id)", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "admin"}"#)) { r in
                XCTAssertEqual(r.status, .ok)
            }
            try await client.execute(uri: "/api/v1/accounts/\(admin.id)", method: .patch, headers: Self.headers(bearer: adminToken, json: true),
                                     body: ByteBuffer(string: #"{"role": "broadcaster"}"#)) { r in
                XCTAssertEqual(r.status, .ok, "another admin exists: \(String(buffer: r.body))")
            }
            try await client.execute(uri: "/api/v1/accounts", method: .get, headers: Self.headers(bearer: adminToken)) { r in
                Self.problem(r, .forbidden, "no longer an admin")
            }
        }
    }

    func testATokenFromAnEmailAndPassword() async throws {
        try await withRouter { client, app in
            _ = try await Self.account(app, "ada@example.com")
            let token = try await client.execute(uri: "/api/v1/auth/token", method: .post, headers: Self.headers(json: true),
                                                 body: ByteBuffer(string: #"{"email": "Ada@example.com", "password": "\#(Self.password)", "name": "laptop"}"#)) { r in
                XCTAssertEqual(r.status, .created, String(buffer: r.body))
                XCTAssertEqual(r.headers[.cacheControl], "no-store")
                let made = try Self.json(CreatedTokenResponse.self, r)
                XCTAssertTrue(made.token.hasPrefix("stp_"))
                XCTAssertEqual(made.info.name, "laptop")
                return made.token
            }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.headers(bearer: token)) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try Self.json(AccountResponse.self, r).email, "ada@example.com")
            }
            for body in [#"{"email": "ada@example.com", "password": "wrong password"}"#, #"{"email": "nobody@example.com", "password": "wrong password"}"#] {
                try await client.execute(uri: "/api/v1/auth/token", method: .post, headers: Self.headers(json: true), body: ByteBuffer(string: body)) { r in
                    Self.problem(r, .unauthorized, body)
                    XCTAssertTrue(String(buffer: r.body).contains("do not match"))
                }
            }
            try await client.execute(uri: "/api/v1/auth/token", method: .post, headers: Self.headers(json: true), body: ByteBuffer(string: "{")) { r in
                Self.problem(r, .badRequest, "not JSON")
            }
            let big = #"{"email": "ada@example.com", "password": "\#(Self.password)", "name": "\#(String(repeating: "x", count: 70 * 1024))"}"#
            try await client.execute(uri: "/api/v1/auth/token", method: .post, headers: Self.headers(json: true), body: ByteBuffer(string: big)) { r in
                Self.problem(r, .contentTooLarge, "over 64 KiB")
            }
            let tokens = try await app.accounts.tokens.tokens(account: try await app.accounts.accounts.account(email: "ada@example.com")!.id)
            XCTAssertEqual(tokens.count, 1, "no token for the refused or too large ones")
        }
    }
}
