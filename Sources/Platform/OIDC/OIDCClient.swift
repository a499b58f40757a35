import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// Sign-in with one provider: `begin` makes the authorization request, `finish` takes the
/// callback's code to an `ExternalIdentity`. The protocol only — the caller keeps the
/// `AuthorizationRequest` between the two and links the identity to an account.
///
/// Discovery and the provider's keys are fetched when first needed and kept for
/// `Tuning.metadataLifetime`; a failed fetch is not kept, so the next sign-in fetches again
/// (and a stale copy, when there is one, serves meanwhile). A token signed with a key the
/// cached set lacks refetches the set, at most once per `Tuning.minimumKeyRefetchInterval`, so
/// tokens with made-up `kid`s cannot make us hammer the provider.
package final class OIDCClient: Sendable {
    /// Limits and lifetimes; the defaults suit production.
    package struct Tuning: Sendable {
        /// How long a sign-in attempt may take from `begin` to `finish`.
        package var attemptLifetime: TimeInterval = 600
        /// How long discovery and the JWKS are used before they are fetched again.
        package var metadataLifetime: TimeInterval = 3600
        /// The least time between two JWKS refetches caused by an unknown `kid`.
        package var minimumKeyRefetchInterval: TimeInterval = 60
        /// Allowed clock difference with the provider for `exp` and `iat`.
        package var clockLeeway: TimeInterval = 60
        /// The most bytes read of any answer from a provider.
        package var maxBodyBytes: Int = 256 * 1024
        package var requestTimeout: TimeAmount = .seconds(10)

        package init() {}
    }

    package let configuration: ProviderConfiguration
    private let tuning: Tuning
    private let http: ProviderHTTP
    private let now: @Sendable () -> Date
    private let randomBytes: @Sendable (Int) -> [UInt8]
    private let cache = ProviderCache()
    private let logger: Logger

    /// - Parameters:
    ///   - httpClient: owned by the caller, who shuts it down.
    ///   - now: the clock, for expiry of attempts and tokens and for the caches.
    ///   - randomBytes: a cryptographically secure source; replaceable for tests only.
    /// - Throws: `OIDCError.invalidConfiguration` for an id that cannot be a path segment, an
    ///   empty client id, or an issuer or endpoint that is not HTTPS (HTTP only to loopback).
    package init(configuration: ProviderConfiguration, httpClient: HTTPClient, tuning: Tuning = Tuning(),
                 logger: Logger = Logger(label: "streamtube.oidc"),
                 now: @escaping @Sendable () -> Date = { Date() },
                 randomBytes: @escaping @Sendable (Int) -> [UInt8] = Randomness.systemBytes) throws(OIDCError) {
        guard ProviderConfiguration.isValidID(configuration.id) else {
            throw .invalidConfiguration("provider id \"\(OIDCError.excerpt(configuration.id))\" must be 1–32 of a-z, 0-9, - and _")
        }
        guard !configuration.clientID.isEmpty else {
            throw .invalidConfiguration("\(configuration.id) has no client id")
        }
        switch configuration.kind {
        case .openIDConnect(let issuer):
            guard SecureURL.isAcceptable(issuer) else {
                throw .invalidConfiguration("issuer \(issuer.absoluteString) is not an https URL")
            }
        case .oauth2(let endpoints):
            for url in [endpoints.authorizationEndpoint, endpoints.tokenEndpoint, endpoints.userInfoEndpoint]
            where !SecureURL.isAcceptable(url) {
                throw .invalidConfiguration("endpoint \(url.absoluteString) is not an https URL")
            }
        }
        self.configuration = configuration
        self.tuning = tuning
        self.http = ProviderHTTP(client: httpClient, maxBodyBytes: tuning.maxBodyBytes, timeout: tuning.requestTimeout)
        self.now = now
        self.randomBytes = randomBytes
        var logger = logger
        logger[metadataKey: "oidc.provider"] = "\(configuration.id)"
        self.logger = logger
    }

    // MARK: - Begin

    /// Makes a sign-in attempt: fresh `state`, `nonce` (OpenID Connect) and PKCE verifier, and
    /// the authorization URL that carries them (the verifier as its S256 challenge).
    ///
    /// - Parameter redirectURI: the absolute callback URL registered at the provider
    ///   (`https://HOST/auth/{id}/callback`); `finish` must get the same.
    package func begin(redirectURI: String) async throws(OIDCError) -> AuthorizationRequest {
        guard let redirect = URL(string: redirectURI), redirect.scheme != nil, redirect.host != nil else {
            throw .invalidConfiguration("redirect URI \"\(OIDCError.excerpt(redirectURI))\" is not an absolute URL")
        }
        let state = Randomness.base64URL(randomBytes(32))
        var nonce: String?
        var verifier: String?
        let authorizationEndpoint: URL
        let separator: String
        var scopes = configuration.scopes
        switch configuration.kind {
        case .openIDConnect:
            authorizationEndpoint = try await metadata().authorizationEndpoint
            nonce = Randomness.base64URL(randomBytes(32))
            verifier = Randomness.base64URL(randomBytes(32))
            separator = " "
            if !scopes.contains("openid") { scopes.insert("openid", at: 0) }
        case .oauth2(let endpoints):
            authorizationEndpoint = endpoints.authorizationEndpoint
            if endpoints.usesPKCE { verifier = Randomness.base64URL(randomBytes(32)) }
            separator = endpoints.scopeSeparator
        }

        var parameters: [(String, String)] = [
            ("response_type", "code"),
            ("client_id", configuration.clientID),
            ("redirect_uri", redirectURI),
            ("scope", scopes.joined(separator: separator)),
            ("state", state),
        ]
        if let nonce { parameters.append(("nonce", nonce)) }
        if let verifier {
            parameters.append(("code_challenge", Randomness.s256Challenge(of: verifier)))
            parameters.append(("code_challenge_method", "S256"))
        }
        let base = authorizationEndpoint.absoluteString
        let joiner = authorizationEndpoint.query == nil ? "?" : "&"
        guard let url = URL(string: base + joiner + FormEncoding.encode(parameters)) else {
            throw .invalidConfiguration("the authorization URL cannot be built from \(base)")
        }
        logger.debug("sign-in started")
        return AuthorizationRequest(url: url, provider: configuration.id, state: state, nonce: nonce,
                                    codeVerifier: verifier, redirectURI: redirectURI,
                                    expiresAt: now().addingTimeInterval(tuning.attemptLifetime))
    }

    // MARK: - Finish

    /// Completes a sign-in from the callback's query parameters: `error` (and
    /// `error_description`) become `OIDCError.providerRefused`; otherwise `code` and `state` go
    /// to `finish(code:returnedState:pending:redirectURI:)`. An `iss` parameter (RFC 9207), when
    /// an OpenID Connect provider sends one, must be its issuer.
    ///
    /// An error callback without `state` is still reported as the provider's refusal (some
    /// providers omit it there; a forged one can only make a sign-in fail), but one with a wrong
    /// `state` is a state mismatch.
    package func finish(callbackQuery query: [String: String], pending: AuthorizationRequest,
                        redirectURI: String) async throws(OIDCError) -> ExternalIdentity {
        if let refusal = OIDCError.refusal(inCallbackQuery: query) {
            if let state = query["state"] {
                try checkAttempt(returnedState: state, pending: pending, redirectURI: redirectURI)
            }
            throw refusal
        }
        if let iss = query["iss"], case .openIDConnect(let issuer) = configuration.kind, iss != issuer.absoluteString {
            throw .wrongIssuer(expected: issuer.absoluteString, found: OIDCError.excerpt(iss))
        }
        guard let code = query["code"], !code.isEmpty else { throw .missingCode }
        return try await finish(code: code, returnedState: query["state"] ?? "", pending: pending, redirectURI: redirectURI)
    }

    /// Completes a sign-in: checks the attempt (provider, expiry, `state` in constant time,
    /// redirect URI), exchanges the code (with the PKCE verifier) at the token endpoint, then
    /// for OpenID Connect verifies the ID token (signature by the provider's JWKS, issuer,
    /// audience, expiry, nonce) and for OAuth 2.0 reads the user endpoint.
    package func finish(code: String, returnedState: String, pending: AuthorizationRequest,
                        redirectURI: String) async throws(OIDCError) -> ExternalIdentity {
        try checkAttempt(returnedState: returnedState, pending: pending, redirectURI: redirectURI)
        do throws(OIDCError) {
            let identity: ExternalIdentity
            switch configuration.kind {
            case .openIDConnect(let issuer):
                identity = try await finishOpenIDConnect(code: code, pending: pending, issuer: issuer)
            case .oauth2(let endpoints):
                identity = try await finishOAuth2(code: code, pending: pending, endpoints: endpoints)
            }
            logger.debug("sign-in finished")
            return identity
        } catch {
            logger.info("sign-in failed", metadata: ["oidc.error": "\(error.description)"])
            throw error
        }
    }

    private func checkAttempt(returnedState: String, pending: AuthorizationRequest, redirectURI: String) throws(OIDCError) {
        guard pending.provider == configuration.id else {
            throw .attemptMismatch("it was started with \(OIDCError.excerpt(pending.provider)), not \(configuration.id)")
        }
        guard now() < pending.expiresAt else { throw .expiredAttempt(expiredAt: pending.expiresAt) }
        guard Randomness.constantTimeEqual(returnedState, pending.state) else { throw .stateMismatch }
        guard redirectURI == pending.redirectURI else {
            throw .attemptMismatch("it was started for another redirect URI")
        }
    }

    private func finishOpenIDConnect(code: String, pending: AuthorizationRequest, issuer: URL) async throws(OIDCError) -> ExternalIdentity {
        let metadata = try await metadata()
        let method = metadata.clientAuthentication(hasSecret: configuration.clientSecret != nil)
        let tokens: TokenResponse
        do throws(OIDCError) {
            tokens = try await exchange(code: code, pending: pending, tokenEndpoint: metadata.tokenEndpoint, method: method)
        } catch {
            // The endpoints may have moved: read discovery again next time.
            if case .unreachable = error { await cache.forgetMetadata() }
            throw error
        }
        guard let idToken = tokens.id_token else { throw .missingIDToken }
        let claims = try await verifyIDToken(idToken, metadata: metadata, nonce: pending.nonce)

        var email = claims.email
        var emailVerified = claims.email_verified?.value ?? false
        var name = claims.name
        // Providers may keep email and name out of the ID token (OIDC Core §5.4): ask UserInfo.
        if email == nil || name == nil, let userInfoEndpoint = metadata.userInfoEndpoint {
            let info = try await fetchUser(userInfoEndpoint, accessToken: tokens.access_token)
            guard info["sub"]?.string == claims.sub else { throw .subjectMismatch }
            if email == nil, let found = info["email"]?.string {
                email = found
                emailVerified = info["email_verified"]?.isTrue ?? false
            }
            if name == nil { name = info["name"]?.string }
        }
        return ExternalIdentity(provider: configuration.id, subject: claims.sub, email: email,
                                emailVerified: email != nil && emailVerified, name: name)
    }

    private func finishOAuth2(code: String, pending: AuthorizationRequest,
                              endpoints: ProviderConfiguration.OAuth2Endpoints) async throws(OIDCError) -> ExternalIdentity {
        let method: ProviderConfiguration.ClientAuthentication =
            configuration.clientSecret == nil ? .none : endpoints.clientAuthentication
        let tokens = try await exchange(code: code, pending: pending, tokenEndpoint: endpoints.tokenEndpoint, method: method)
        let answer = try await fetchUser(endpoints.userInfoEndpoint, accessToken: tokens.access_token)
        let mapping = endpoints.userInfo
        var user = answer
        if let container = mapping.container {
            guard let inner = answer[container], case .object = inner else {
                throw .invalidResponse("the user endpoint's answer has no \"\(container)\" object")
            }
            user = inner
        }
        guard let subject = user[mapping.subject]?.identifier else {
            throw .invalidResponse("the user endpoint's answer has no \"\(mapping.subject)\"")
        }
        let email = mapping.email.flatMap { user[$0]?.string }
        let verified = mapping.emailVerified.flatMap { user[$0]?.isTrue } ?? false
        return ExternalIdentity(provider: configuration.id, subject: subject, email: email,
                                emailVerified: email != nil && verified,
                                name: mapping.name.flatMap { user[$0]?.string })
    }

    // MARK: - Token endpoint

    struct TokenResponse: Decodable {
        var access_token: String
        var token_type: String?
        var id_token: String?
    }

    private struct TokenError: Decodable {
        var error: String?
        var error_description: String?
    }

    private func exchange(code: String, pending: AuthorizationRequest, tokenEndpoint: URL,
                          method: ProviderConfiguration.ClientAuthentication) async throws(OIDCError) -> TokenResponse {
        var form: [(String, String)] = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirectURI),
        ]
        if let verifier = pending.codeVerifier { form.append(("code_verifier", verifier)) }
        var basic: (user: String, password: String)?
        switch method {
        case .clientSecretBasic:
            basic = (configuration.clientID, configuration.clientSecret ?? "")
        case .clientSecretPost:
            form.append(("client_id", configuration.clientID))
            form.append(("client_secret", configuration.clientSecret ?? ""))
        case .none:
            form.append(("client_id", configuration.clientID))
        }
        let answer = try await http.postForm(tokenEndpoint, form: form, basic: basic, purpose: .token)
        let secrets = [code, configuration.clientSecret ?? "", pending.codeVerifier ?? ""]
        guard answer.isSuccess else {
            throw .tokenExchangeFailed(status: answer.status, excerpt: Self.errorExcerpt(answer.body, redacting: secrets))
        }
        do {
            return try JSONDecoder().decode(TokenResponse.self, from: answer.body)
        } catch {
            throw .invalidResponse("the token endpoint's answer is not JSON with an access_token")
        }
    }

    /// The provider's `error` and `error_description` when the body is an OAuth error object,
    /// otherwise the start of the body; with any secret we sent cut out.
    private static func errorExcerpt(_ body: Data, redacting secrets: [String]) -> String {
        if let error = try? JSONDecoder().decode(TokenError.self, from: body), let code = error.error {
            let text = error.error_description.map { "\(code): \($0)" } ?? code
            return OIDCError.excerpt(text, redacting: secrets)
        }
        let text = String(decoding: body.prefix(OIDCError.excerptLimit * 4), as: UTF8.self)
        return text.isEmpty ? "(empty body)" : OIDCError.excerpt(text, redacting: secrets)
    }

    // MARK: - User endpoint

    private func fetchUser(_ url: URL, accessToken: String) async throws(OIDCError) -> JSONValue {
        let answer = try await http.get(url, bearer: accessToken, purpose: .userInfo)
        guard answer.isSuccess else {
            throw .userInfoFailed(status: answer.status, excerpt: Self.errorExcerpt(answer.body, redacting: [accessToken]))
        }
        guard let object = try? JSONDecoder().decode(JSONValue.self, from: answer.body), case .object = object else {
            throw .invalidResponse("the user endpoint's answer is not a JSON object")
        }
        return object
    }

    // MARK: - Discovery and keys

    private func metadata() async throws(OIDCError) -> ProviderMetadata {
        guard case .openIDConnect(let issuer) = configuration.kind else {
            throw .invalidConfiguration("\(configuration.id) is not an OpenID Connect provider")
        }
        let now = now()
        let cached = await cache.metadata
        if let cached, now.timeIntervalSince(cached.fetchedAt) < tuning.metadataLifetime {
            return cached.value
        }
        do throws(OIDCError) {
            let answer = try await http.get(ProviderMetadata.discoveryURL(for: issuer), purpose: .discovery)
            guard answer.isSuccess else {
                throw OIDCError.discoveryFailed("\(ProviderMetadata.discoveryURL(for: issuer).absoluteString) answered HTTP \(answer.status)")
            }
            let metadata = try ProviderMetadata.decode(answer.body, issuer: issuer)
            await cache.setMetadata(metadata, at: now)
            logger.debug("discovery read")
            return metadata
        } catch {
            if let cached {
                logger.warning("discovery failed; using the copy from before", metadata: ["oidc.error": "\(error.description)"])
                return cached.value
            }
            throw error
        }
    }

    /// Verifies an ID token's signature, then its claims.
    private func verifyIDToken(_ token: String, metadata: ProviderMetadata, nonce: String?) async throws(OIDCError) -> IDTokenClaims {
        let header = try SigningKeys.header(of: token)
        try SigningKeys.checkAlgorithm(header)
        var keys = try await signingKeys(metadata: metadata)
        if let kid = header.kid, !keys.contains(kid: kid) {
            // A rotated key, or a made-up kid: refetch once, and not again for a while.
            guard await cache.claimKeyRefetch(now: now(), minimumInterval: tuning.minimumKeyRefetchInterval) else {
                throw .unknownSigningKey(kid: OIDCError.excerpt(kid))
            }
            logger.info("unknown signing key; fetching the provider's keys again", metadata: ["oidc.kid": "\(OIDCError.excerpt(kid))"])
            keys = try await fetchKeys(metadata: metadata)
            guard keys.contains(kid: kid) else { throw .unknownSigningKey(kid: OIDCError.excerpt(kid)) }
        }
        let candidates = keys.candidates(for: header)
        guard let alg = header.alg, !candidates.isEmpty else {
            if header.kid == nil { throw .unknownSigningKey(kid: nil) }
            throw .unsupportedAlgorithm("\(header.alg ?? "none") with the key \"\(OIDCError.excerpt(header.kid ?? ""))\" (the key's type or algorithm differs)")
        }
        var claims: IDTokenClaims?
        var lastError = OIDCError.badSignature
        for key in candidates {
            do throws(OIDCError) {
                claims = try await SigningKeys.verify(token, alg: alg, key: key)
                break
            } catch {
                lastError = error
            }
        }
        guard let claims else { throw lastError }
        try claims.check(issuer: metadata.issuer, clientID: configuration.clientID, nonce: nonce,
                         now: now(), leeway: tuning.clockLeeway)
        return claims
    }

    private func signingKeys(metadata: ProviderMetadata) async throws(OIDCError) -> SigningKeys {
        if let cached = await cache.keys, now().timeIntervalSince(cached.fetchedAt) < tuning.metadataLifetime {
            return cached
        }
        do throws(OIDCError) {
            return try await fetchKeys(metadata: metadata)
        } catch {
            if let stale = await cache.keys {
                logger.warning("fetching the provider's keys failed; using the copy from before", metadata: ["oidc.error": "\(error.description)"])
                return stale
            }
            throw error
        }
    }

    private func fetchKeys(metadata: ProviderMetadata) async throws(OIDCError) -> SigningKeys {
        let answer = try await http.get(metadata.jwksURI, purpose: .keys)
        guard answer.isSuccess else {
            throw .invalidResponse("the provider's JWKS answered HTTP \(answer.status)")
        }
        let keys = try SigningKeys.decode(answer.body, fetchedAt: now())
        await cache.setKeys(keys)
        logger.debug("signing keys read", metadata: ["oidc.keys": "\(keys.keys.count)"])
        return keys
    }
}

/// What an `OIDCClient` remembers between sign-ins.
actor ProviderCache {
    private(set) var metadata: (value: ProviderMetadata, fetchedAt: Date)?
    private(set) var keys: SigningKeys?
    private var lastKeyRefetch: Date?

    func setMetadata(_ value: ProviderMetadata, at date: Date) { metadata = (value, date) }
    func forgetMetadata() { metadata = nil }
    func setKeys(_ value: SigningKeys) { keys = value }

    /// True (and remembers `now`) when no unknown-kid refetch happened in `minimumInterval`.
    func claimKeyRefetch(now: Date, minimumInterval: TimeInterval) -> Bool {
        if let last = lastKeyRefetch, now.timeIntervalSince(last) < minimumInterval { return false }
        lastKeyRefetch = now
        return true
    }
}
