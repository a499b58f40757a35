import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import XCTest
@testable import OIDC

final class OIDCClientTests: XCTestCase {
    let redirect = "https://streamtube.test/auth/oidc/callback"

    private func makeClient(_ provider: MockProvider, clock: TestClock = TestClock(), secret: String? = "s3cret",
                            tuning: OIDCClient.Tuning = OIDCClient.Tuning()) throws -> OIDCClient {
        try OIDCClient(configuration: .generic(issuer: URL(string: provider.issuer)!, clientID: provider.clientID,
                                               secret: secret, name: "Test"),
                       httpClient: .shared, tuning: tuning, now: { clock.now })
    }

    private func withProvider(key: TestKey? = nil, _ body: (MockProvider, TestKey) async throws -> Void) async throws {
        let signing: TestKey
        if let key { signing = key } else { signing = await TestKey.es256(kid: "key-1") }
        try await MockProvider.run { provider in
            provider.update {
                $0.signingKey = signing
                $0.published = [signing.jwk]
            }
            try await body(provider, signing)
        }
    }

    /// begin, the provider says yes, finish.
    private func signIn(_ client: OIDCClient, _ provider: MockProvider) async throws(OIDCError) -> ExternalIdentity {
        let attempt = try await client.begin(redirectURI: redirect)
        let code = provider.authorize(attempt.url)
        return try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
    }

    private func assertRefused(_ client: OIDCClient, _ provider: MockProvider, file: StaticString = #filePath,
                               line: UInt = #line, _ check: (OIDCError) -> Bool) async {
        do throws(OIDCError) {
            let identity = try await signIn(client, provider)
            XCTFail("signed in as \(identity) but should have been refused", file: file, line: line)
        } catch {
            XCTAssert(check(error), "refused with the wrong error: \(error)", file: file, line: line)
        }
    }

    private func query(_ url: URL) -> [String: String] {
        var result: [String: String] = [:]
        for item in URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? [] { result[item.name] = item.value }
        return result
    }

    // MARK: - The flow

    func testHappyPathGivesTheClaims() async throws {
        try await withProvider { provider, _ in
            let client = try makeClient(provider)
            let attempt = try await client.begin(redirectURI: redirect)
            let parameters = query(attempt.url)
            XCTAssertEqual(attempt.url.absoluteString.components(separatedBy: "?").first, provider.issuer + "/authorize")
            XCTAssertEqual(parameters["response_type"], "code")
            XCTAssertEqual(parameters["client_id"], provider.clientID)
            XCTAssertEqual(parameters["redirect_uri"], redirect)
            XCTAssertEqual(parameters["scope"], "openid email profile")
            XCTAssertEqual(parameters["state"], attempt.state)
            XCTAssertEqual(parameters["nonce"], attempt.nonce)
            XCTAssertEqual(attempt.state.count, 43)
            XCTAssertEqual(attempt.expiresAt.timeIntervalSinceNow, 600, accuracy: 5)

            let code = provider.authorize(attempt.url)
            let identity = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
            XCTAssertEqual(identity, ExternalIdentity(provider: "oidc", subject: "user-1", email: "ada@example.com",
                                                      emailVerified: true, name: "Ada"))
            provider.state.withLock { state in
                // No token_endpoint_auth_methods_supported: client_secret_basic, the default.
                XCTAssertEqual(state.tokenAuthorizations.last??.hasPrefix("Basic "), true)
                XCTAssertNil(state.tokenForms.last?["client_secret"])
                XCTAssertEqual(state.tokenForms.last?["redirect_uri"], self.redirect)
                XCTAssertEqual(state.discoveryRequests, 1)
                XCTAssertEqual(state.jwksRequests, 1)
            }
            // A second sign-in uses the cached discovery and keys.
            _ = try await signIn(client, provider)
            provider.state.withLock { state in
                XCTAssertEqual(state.discoveryRequests, 1)
                XCTAssertEqual(state.jwksRequests, 1)
            }
        }
    }

    func testRS256WithClientSecretPostAndUserInfoForMissingClaims() async throws {
        try await withProvider(key: try await TestKey.rs256(kid: "rsa-1")) { provider, _ in
            provider.update {
                $0.tokenEndpointAuthMethods = ["client_secret_post"]
                $0.alterClaims = { claims in
                    claims.email = nil
                    claims.email_verified = nil
                    claims.name = nil
                }
                $0.userInfoJSON = #"{"sub": "user-1", "email": "ada@example.com", "email_verified": "true", "name": "Ada L"}"#
            }
            let client = try makeClient(provider)
            let identity = try await signIn(client, provider)
            XCTAssertEqual(identity, ExternalIdentity(provider: "oidc", subject: "user-1", email: "ada@example.com",
                                                      emailVerified: true, name: "Ada L"))
            provider.state.withLock { state in
                XCTAssertNil(state.tokenAuthorizations.last!)
                XCTAssertEqual(state.tokenForms.last?["client_secret"], "s3cret")
                XCTAssertEqual(state.tokenForms.last?["client_id"], provider.clientID)
                XCTAssertEqual(state.userRequests.last??.hasPrefix("Bearer "), true)
            }
        }
    }

    func testEmailIsUnverifiedUnlessTheProviderSaysTrue() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.email_verified = false } }
            let identity = try await signIn(try makeClient(provider), provider)
            XCTAssertEqual(identity.email, "ada@example.com")
            XCTAssertFalse(identity.emailVerified)
        }
    }

    func testPKCEVerifierMatchesTheChallengeInTheURL() async throws {
        try await withProvider { provider, _ in
            let client = try makeClient(provider)
            let attempt = try await client.begin(redirectURI: redirect)
            let parameters = query(attempt.url)
            XCTAssertEqual(parameters["code_challenge_method"], "S256")
            let code = provider.authorize(attempt.url)
            _ = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
            let verifier = try XCTUnwrap(provider.state.withLock { $0.tokenForms.last?["code_verifier"] })
            XCTAssert((43...128).contains(verifier.count))
            XCTAssertEqual(verifier, attempt.codeVerifier)
            let digest = SHA256Digest.of(verifier)
            XCTAssertEqual(parameters["code_challenge"], digest)
        }
    }

    func testPendingAttemptSurvivesEncoding() async throws {
        try await withProvider { provider, _ in
            let client = try makeClient(provider)
            let attempt = try await client.begin(redirectURI: redirect)
            let stored = try JSONEncoder().encode(attempt)
            let restored = try JSONDecoder().decode(AuthorizationRequest.self, from: stored)
            XCTAssertEqual(restored, attempt)
            let code = provider.authorize(restored.url)
            let identity = try await client.finish(callbackQuery: ["code": code, "state": restored.state],
                                                   pending: restored, redirectURI: redirect)
            XCTAssertEqual(identity.subject, "user-1")
        }
    }

    // MARK: - Refusals: the ID token

    func testForgedSignatureWithTheSameKidIsRefused() async throws {
        try await withProvider { provider, real in
            let forger = await TestKey.es256(kid: real.kid)  // same kid, another key
            provider.update { $0.signingKey = forger }       // the JWKS still has the real key
            await assertRefused(try makeClient(provider), provider) { $0 == .badSignature }
        }
    }

    func testExpiredTokenIsRefused() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.exp = ExpirationClaim(value: Date().addingTimeInterval(-120)) } }
            await assertRefused(try makeClient(provider), provider) {
                if case .tokenExpired = $0 { return true } else { return false }
            }
        }
    }

    func testTokenIssuedInTheFutureIsRefused() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.iat = IssuedAtClaim(value: Date().addingTimeInterval(600)) } }
            await assertRefused(try makeClient(provider), provider) {
                if case .tokenIssuedInFuture = $0 { return true } else { return false }
            }
        }
    }

    func testWrongAudienceIsRefused() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.aud = AudienceClaim(value: ["someone-else"]) } }
            await assertRefused(try makeClient(provider), provider) {
                if case .wrongAudience = $0 { return true } else { return false }
            }
            // Several audiences with us among them, but no azp naming us.
            provider.update { $0.alterClaims = { $0.aud = AudienceClaim(value: [provider.clientID, "other"]) } }
            await assertRefused(try makeClient(provider), provider) {
                if case .wrongAudience = $0 { return true } else { return false }
            }
            provider.update { $0.alterClaims = { claims in
                claims.aud = AudienceClaim(value: [provider.clientID, "other"])
                claims.azp = provider.clientID
            } }
            let identity = try await signIn(try makeClient(provider), provider)
            XCTAssertEqual(identity.subject, "user-1")
        }
    }

    func testWrongIssuerIsRefused() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.iss = "https://evil.example" } }
            await assertRefused(try makeClient(provider), provider) {
                $0 == .wrongIssuer(expected: provider.issuer, found: "https://evil.example")
            }
        }
    }

    func testWrongNonceIsRefused() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.alterClaims = { $0.nonce = "a-nonce-from-another-sign-in" } }
            await assertRefused(try makeClient(provider), provider) { $0 == .wrongNonce }
            provider.update { $0.alterClaims = { $0.nonce = nil } }
            await assertRefused(try makeClient(provider), provider) { $0 == .wrongNonce }
        }
    }

    func testAlgNoneAndHS256AreRefused() async throws {
        try await withProvider { provider, key in
            let now = Int(Date().timeIntervalSince1970)
            let payload = #"{"iss":"\#(provider.issuer)","sub":"user-1","aud":"\#(provider.clientID)","exp":\#(now + 300),"iat":\#(now)}"#
            let unsigned = Randomness.base64URL(Array(#"{"alg":"none","kid":"\#(key.kid)"}"#.utf8)) + "."
                + Randomness.base64URL(Array(payload.utf8)) + "."
            provider.update { $0.idTokenOverride = unsigned }
            await assertRefused(try makeClient(provider), provider) { $0 == .unsupportedAlgorithm("none") }

            // HS256 keyed with the public key's bytes: the classic algorithm confusion.
            let hmac = JWTKeyCollection()
            await hmac.add(hmac: HMACKey(from: key.jwk["x"]!), digestAlgorithm: .sha256, kid: JWKIdentifier(string: key.kid))
            let claims = TestClaims(iss: provider.issuer, sub: "user-1", aud: AudienceClaim(value: [provider.clientID]),
                                    exp: ExpirationClaim(value: Date().addingTimeInterval(300)),
                                    iat: IssuedAtClaim(value: Date()), nonce: nil)
            let hs256 = try await hmac.sign(claims, kid: JWKIdentifier(string: key.kid))
            provider.update { $0.idTokenOverride = hs256 }
            await assertRefused(try makeClient(provider), provider) { $0 == .unsupportedAlgorithm("HS256") }

            // An RS256 header on an EC key is refused before any signature check.
            let header = Randomness.base64URL(Array(#"{"alg":"RS256","kid":"\#(key.kid)"}"#.utf8))
            provider.update { $0.idTokenOverride = header + "." + Randomness.base64URL(Array(payload.utf8)) + ".c2ln" }
            await assertRefused(try makeClient(provider), provider) {
                if case .unsupportedAlgorithm = $0 { return true } else { return false }
            }
        }
    }

    func testUnknownKidRefetchesTheKeysOnceAndThenNotForAWhile() async throws {
        try await withProvider { provider, first in
            let clock = TestClock()
            let client = try makeClient(provider, clock: clock)
            _ = try await signIn(client, provider)
            XCTAssertEqual(provider.state.withLock { $0.jwksRequests }, 1)

            // The provider rotates to a new key: one refetch finds it.
            let second = await TestKey.es256(kid: "key-2")
            provider.update {
                $0.published = [first.jwk, second.jwk]
                $0.signingKey = second
            }
            _ = try await signIn(client, provider)
            XCTAssertEqual(provider.state.withLock { $0.jwksRequests }, 2)

            // A kid nobody published, soon after: no refetch.
            let stranger = await TestKey.es256(kid: "key-unknown")
            provider.update { $0.signingKey = stranger }
            clock.advance(10)
            await assertRefused(client, provider) { $0 == .unknownSigningKey(kid: "key-unknown") }
            let other = await TestKey.es256(kid: "key-unknown-2")
            provider.update { $0.signingKey = other }
            await assertRefused(client, provider) { $0 == .unknownSigningKey(kid: "key-unknown-2") }
            XCTAssertEqual(provider.state.withLock { $0.jwksRequests }, 2)

            // After the interval, one refetch again.
            clock.advance(61)
            await assertRefused(client, provider) { $0 == .unknownSigningKey(kid: "key-unknown-2") }
            XCTAssertEqual(provider.state.withLock { $0.jwksRequests }, 3)
        }
    }

    // MARK: - Refusals: the attempt and the callback

    func testMismatchedOrReplayedStateIsRefused() async throws {
        try await withProvider { provider, _ in
            let client = try makeClient(provider)
            let attempt = try await client.begin(redirectURI: redirect)
            let other = try await client.begin(redirectURI: redirect)
            let code = provider.authorize(attempt.url)
            do throws(OIDCError) {
                _ = try await client.finish(code: code, returnedState: other.state, pending: attempt, redirectURI: redirect)
                XCTFail("a callback with another attempt's state was accepted")
            } catch {
                XCTAssertEqual(error, .stateMismatch)
            }
            do throws(OIDCError) {
                _ = try await client.finish(callbackQuery: ["code": code], pending: attempt, redirectURI: redirect)
                XCTFail("a callback without state was accepted")
            } catch {
                XCTAssertEqual(error, .stateMismatch)
            }
            // The code was not spent by the refused callbacks; the right one works once.
            _ = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
            // Replaying the same callback: the provider refuses the spent code.
            do throws(OIDCError) {
                _ = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
                XCTFail("a replayed code was accepted")
            } catch {
                guard case .tokenExchangeFailed(let status, let excerpt) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(status, 400)
                XCTAssertFalse(excerpt.contains(code), "the error carries the code")
                XCTAssertFalse(error.description.contains("s3cret"))
            }
        }
    }

    func testExpiredAttemptIsRefused() async throws {
        try await withProvider { provider, _ in
            let clock = TestClock()
            let client = try makeClient(provider, clock: clock)
            let attempt = try await client.begin(redirectURI: redirect)
            let code = provider.authorize(attempt.url)
            clock.advance(601)
            do throws(OIDCError) {
                _ = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
                XCTFail("an expired attempt was accepted")
            } catch {
                XCTAssertEqual(error, .expiredAttempt(expiredAt: attempt.expiresAt))
            }
        }
    }

    func testProviderRefusalIsPassedOnBounded() async throws {
        try await withProvider { provider, _ in
            let client = try makeClient(provider)
            let attempt = try await client.begin(redirectURI: redirect)
            let long = String(repeating: "x", count: 5000)
            do throws(OIDCError) {
                _ = try await client.finish(callbackQuery: ["error": "access_denied", "error_description": "The user said no\n" + long,
                                                            "state": attempt.state], pending: attempt, redirectURI: redirect)
                XCTFail("a refusal was accepted")
            } catch {
                guard case .providerRefused(let code, let description) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(code, "access_denied")
                XCTAssert(description!.hasPrefix("The user said no "))
                XCTAssertLessThanOrEqual(description!.count, OIDCError.excerptLimit + 1)
            }
        }
    }

    func testRefusalReadFromACallbackQueryWithoutAttempt() {
        XCTAssertNil(OIDCError.refusal(inCallbackQuery: ["code": "c", "state": "s"]))
        let long = String(repeating: "y", count: 5000)
        guard case .providerRefused(let code, let description)? =
            OIDCError.refusal(inCallbackQuery: ["error": "access_denied", "error_description": "No\r\n" + long]) else {
            return XCTFail("no refusal read")
        }
        XCTAssertEqual(code, "access_denied")
        XCTAssert(description!.hasPrefix("No  y"))
        XCTAssertLessThanOrEqual(description!.count, OIDCError.excerptLimit + 1)
        XCTAssertEqual(OIDCError.refusal(inCallbackQuery: ["error": "server_error"]), .providerRefused(error: "server_error", description: nil))
    }

    func testTokenEndpointFailureCarriesStatusAndNoSecrets() async throws {
        try await withProvider { provider, _ in
            provider.update { $0.tokenError = (500, "internal trouble with client_secret=s3cret") }
            await assertRefused(try makeClient(provider), provider) { error in
                guard case .tokenExchangeFailed(500, let excerpt) = error else { return false }
                return excerpt.contains("internal trouble") && !excerpt.contains("s3cret")
            }
        }
    }

    // MARK: - Discovery

    func testDiscoveryIssuerMismatchIsRefused() async throws {
        try await withProvider { provider, _ in
            let issuer = provider.issuer
            provider.update { $0.discoveryIssuer = issuer + "/" }
            let client = try makeClient(provider)
            do throws(OIDCError) {
                _ = try await client.begin(redirectURI: redirect)
                XCTFail("discovery for another issuer was accepted")
            } catch {
                guard case .discoveryFailed(let reason) = error else { return XCTFail("\(error)") }
                XCTAssert(reason.contains("issuer"), reason)
            }
            // A failure is not cached: once discovery is right, sign-in works.
            provider.update { $0.discoveryIssuer = nil }
            _ = try await signIn(client, provider)
        }
    }

    func testAnswersAreReadOnlyUpToTheLimit() async throws {
        try await withProvider { provider, _ in
            var tuning = OIDCClient.Tuning()
            tuning.maxBodyBytes = 64
            let client = try makeClient(provider, tuning: tuning)
            do throws(OIDCError) {
                _ = try await client.begin(redirectURI: redirect)
                XCTFail("an oversized discovery document was read")
            } catch {
                guard case .invalidResponse(let reason) = error else { return XCTFail("\(error)") }
                XCTAssert(reason.contains("larger than 64 bytes"), reason)
            }
        }
    }

    func testConfigurationIsChecked() throws {
        XCTAssertThrowsError(try OIDCClient(configuration: .generic(issuer: URL(string: "http://idp.example")!, clientID: "c",
                                                                    secret: nil, name: "Plain HTTP"), httpClient: .shared))
        XCTAssertThrowsError(try OIDCClient(configuration: .generic(issuer: URL(string: "https://idp.example")!, clientID: "c",
                                                                    secret: nil, name: "Bad id", id: "Bad/Id"), httpClient: .shared))
        XCTAssertNoThrow(try OIDCClient(configuration: .google(clientID: "c", secret: "s"), httpClient: .shared))
        XCTAssertNoThrow(try OIDCClient(configuration: .facebook(clientID: "c", secret: "s"), httpClient: .shared))
        XCTAssertNoThrow(try OIDCClient(configuration: .x(clientID: "c", secret: "s"), httpClient: .shared))
    }

    // MARK: - OAuth 2.0

    func testOAuth2PresetUsesTheTokenAndUserEndpoints() async throws {
        try await withProvider { provider, _ in
            provider.update {
                $0.issueIDToken = false
                $0.userInfoJSON = #"{"data": {"id": "2244994945", "name": "X Developers", "username": "XDevelopers"}}"#
            }
            var configuration = ProviderConfiguration.x(clientID: "x-client", secret: "x-secret")
            guard case .oauth2(var endpoints) = configuration.kind else { return XCTFail() }
            endpoints.authorizationEndpoint = URL(string: provider.issuer + "/i/oauth2/authorize")!
            endpoints.tokenEndpoint = URL(string: provider.issuer + "/token")!
            endpoints.userInfoEndpoint = URL(string: provider.issuer + "/2/users/me")!
            configuration.kind = .oauth2(endpoints)
            let client = try OIDCClient(configuration: configuration, httpClient: .shared)
            let redirect = "https://streamtube.test/auth/x/callback"
            let attempt = try await client.begin(redirectURI: redirect)
            let parameters = query(attempt.url)
            XCTAssertNil(attempt.nonce)
            XCTAssertNil(parameters["nonce"])
            XCTAssertEqual(parameters["scope"], "users.read tweet.read")
            XCTAssertEqual(parameters["code_challenge_method"], "S256")
            let code = provider.authorize(attempt.url, subject: "2244994945")
            let identity = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
            XCTAssertEqual(identity, ExternalIdentity(provider: "x", subject: "2244994945", email: nil,
                                                      emailVerified: false, name: "X Developers"))
            provider.state.withLock { state in
                let basic = "Basic " + Data("x-client:x-secret".utf8).base64EncodedString()
                XCTAssertEqual(state.tokenAuthorizations.last!, basic)
                XCTAssertEqual(state.tokenForms.last?["code_verifier"], attempt.codeVerifier)
                XCTAssertEqual(state.userRequests.last!, "Bearer at-2244994945")
            }
        }
    }

    func testFacebookPresetReadsGraphUser() async throws {
        try await withProvider { provider, _ in
            provider.update {
                $0.issueIDToken = false
                $0.userInfoJSON = #"{"id": "10158", "name": "Ada", "email": "ada@example.com"}"#
            }
            var configuration = ProviderConfiguration.facebook(clientID: "fb-client", secret: "fb-secret")
            guard case .oauth2(var endpoints) = configuration.kind else { return XCTFail() }
            endpoints.authorizationEndpoint = URL(string: provider.issuer + "/dialog/oauth")!
            endpoints.tokenEndpoint = URL(string: provider.issuer + "/token")!
            endpoints.userInfoEndpoint = URL(string: provider.issuer + "/userinfo?fields=id,name,email")!
            configuration.kind = .oauth2(endpoints)
            let client = try OIDCClient(configuration: configuration, httpClient: .shared)
            let attempt = try await client.begin(redirectURI: redirect)
            XCTAssertEqual(query(attempt.url)["scope"], "email,public_profile")
            let code = provider.authorize(attempt.url)
            let identity = try await client.finish(code: code, returnedState: attempt.state, pending: attempt, redirectURI: redirect)
            XCTAssertEqual(identity, ExternalIdentity(provider: "facebook", subject: "10158", email: "ada@example.com",
                                                      emailVerified: false, name: "Ada"))
            provider.state.withLock { state in
                XCTAssertEqual(state.tokenForms.last?["client_secret"], "fb-secret")
            }
        }
    }
}

/// RFC 7636 §4.2 computed here, apart from the library's own code.
private enum SHA256Digest {
    static func of(_ text: String) -> String {
        Data(SHA256.hash(data: Data(text.utf8))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
