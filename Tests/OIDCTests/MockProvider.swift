import AsyncHTTPClient
import Crypto
import CryptoExtras
import Foundation
import Hummingbird
import JWTKit
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
@testable import OIDC

/// The mock signs the very claims sign-in reads (`IDTokenClaims`); tests change them to make bad tokens.
typealias TestClaims = IDTokenClaims

/// A signing key the mock holds: its private half signs, its public half goes in the JWKS.
struct TestKey: Sendable {
    var kid: String
    var alg: String
    var keys: JWTKeyCollection
    var jwk: [String: String]

    static func es256(kid: String) async -> TestKey {
        let key = ES256PrivateKey()
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
        let parameters = key.parameters!
        return TestKey(kid: kid, alg: "ES256", keys: keys,
                       jwk: ["kty": "EC", "crv": "P-256", "x": parameters.x, "y": parameters.y,
                             "kid": kid, "alg": "ES256", "use": "sig"])
    }

    static func rs256(kid: String) async throws -> TestKey {
        let key = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
        let keys = JWTKeyCollection()
        await keys.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        let primitives = try key.publicKey.getKeyPrimitives()
        // A key that does not name its algorithm, as some providers publish them.
        return TestKey(kid: kid, alg: "RS256", keys: keys,
                       jwk: ["kty": "RSA", "n": Randomness.base64URL(primitives.modulus),
                             "e": Randomness.base64URL(primitives.publicExponent), "kid": kid])
    }

    func sign(_ claims: TestClaims) async throws -> String {
        try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }
}

/// An OpenID Connect provider in the test process: discovery, JWKS, token and user endpoints
/// on a loopback port, with a record of what it was asked.
final class MockProvider: Sendable {
    struct IssuedCode: Sendable {
        var nonce: String?
        var challenge: String?
        var subject: String
    }

    struct State: Sendable {
        var issuer = ""
        /// What discovery says the issuer is (nil: the real one).
        var discoveryIssuer: String?
        var tokenEndpointAuthMethods: [String]?
        var published: [[String: String]] = []
        var signingKey: TestKey?
        var jwksRequests = 0
        var discoveryRequests = 0
        var codes: [String: IssuedCode] = [:]
        var tokenForms: [[String: String]] = []
        var tokenAuthorizations: [String?] = []
        var userRequests: [String?] = []
        /// Changes the claims of the next ID tokens.
        var alterClaims: (@Sendable (inout TestClaims) -> Void)?
        /// Replaces the ID token outright.
        var idTokenOverride: String?
        var issueIDToken = true
        var userInfoJSON = #"{"sub": "user-1", "email": "ada@example.com", "email_verified": true, "name": "Ada"}"#
        var tokenError: (status: Int, body: String)?
    }

    let clientID = "streamtube-test"
    let state = Mutex(State())

    var issuer: String { state.withLock { $0.issuer } }

    func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }

    /// The user at the provider said yes: a code for the attempt whose authorization URL this is.
    func authorize(_ url: URL, subject: String = "user-1") -> String {
        let items = URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? []
        let value = { (name: String) in items.first { $0.name == name }?.value }
        let code = "code-" + Randomness.base64URL(Randomness.systemBytes(12))
        update { $0.codes[code] = IssuedCode(nonce: value("nonce"), challenge: value("code_challenge"), subject: subject) }
        return code
    }

    func routes() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ in
            let (issuer, stated, methods) = self.state.withLock { state in
                state.discoveryRequests += 1
                return (state.issuer, state.discoveryIssuer ?? state.issuer, state.tokenEndpointAuthMethods)
            }
            var document: [String: Any] = [
                "issuer": stated,
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "userinfo_endpoint": issuer + "/userinfo",
                "jwks_uri": issuer + "/jwks",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            ]
            if let methods { document["token_endpoint_auth_methods_supported"] = methods }
            return Self.json(document)
        }
        router.get("/jwks") { _, _ in
            let keys = self.state.withLock { state in
                state.jwksRequests += 1
                return state.published
            }
            return Self.json(["keys": keys])
        }
        router.post("/token") { request, _ in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let form = Self.parseForm(String(buffer: body))
            let authorization = request.headers[.authorization]
            let (issued, stateCopy) = self.state.withLock { state -> (IssuedCode?, State) in
                state.tokenForms.append(form)
                state.tokenAuthorizations.append(authorization)
                let issued = form["code"].flatMap { state.codes.removeValue(forKey: $0) }
                return (issued, state)
            }
            if let error = stateCopy.tokenError {
                return Self.raw(error.body, status: HTTPResponse.Status(code: error.status))
            }
            guard let issued else {
                return Self.json(["error": "invalid_grant", "error_description": "unknown code"], status: .badRequest)
            }
            if let challenge = issued.challenge {
                guard let verifier = form["code_verifier"], Randomness.s256Challenge(of: verifier) == challenge else {
                    return Self.json(["error": "invalid_grant", "error_description": "PKCE verification failed"], status: .badRequest)
                }
            }
            var answer: [String: Any] = ["access_token": "at-\(issued.subject)", "token_type": "Bearer", "expires_in": 3600]
            if stateCopy.issueIDToken {
                if let override = stateCopy.idTokenOverride {
                    answer["id_token"] = override
                } else if let key = stateCopy.signingKey {
                    let now = Date()
                    var claims = TestClaims(iss: stateCopy.issuer, sub: issued.subject, aud: AudienceClaim(value: [self.clientID]),
                                            exp: ExpirationClaim(value: now.addingTimeInterval(300)),
                                            iat: IssuedAtClaim(value: now), nonce: issued.nonce, azp: nil,
                                            email: "ada@example.com", email_verified: true, name: "Ada")
                    stateCopy.alterClaims?(&claims)
                    answer["id_token"] = try await key.sign(claims)
                }
            }
            return Self.json(answer)
        }
        let user: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let authorization = request.headers[.authorization]
            let info = self.state.withLock { state in
                state.userRequests.append(authorization)
                return state.userInfoJSON
            }
            guard authorization?.hasPrefix("Bearer at-") == true else {
                return Self.json(["error": "invalid_token"], status: .unauthorized)
            }
            return Self.raw(info, status: .ok)
        }
        router.get("/userinfo", use: user)
        router.get("/2/users/me", use: user)
        return router
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = try! JSONSerialization.data(withJSONObject: object)
        return raw(String(decoding: data, as: UTF8.self), status: status)
    }

    static func raw(_ text: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func parseForm(_ text: String) -> [String: String] {
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            form[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return form
    }

    /// Runs `body` with the provider listening on a loopback port.
    static func run(_ body: (MockProvider) async throws -> Void) async throws {
        let provider = MockProvider()
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: provider.routes(),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: Logger(label: "oidc-mock-provider"))
        let services = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [],
                                                         logger: Logger(label: "oidc-mock-provider")))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            var iterator = ports.makeAsyncIterator()
            let port = await iterator.next() ?? 0
            provider.update { $0.issuer = "http://127.0.0.1:\(port)" }
            do {
                try await body(provider)
            } catch {
                await services.triggerGracefulShutdown()
                throw error
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}

/// A clock the test moves.
final class TestClock: Sendable {
    private let current = Mutex(Date())
    var now: Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}
