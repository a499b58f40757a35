import Foundation

/// One sign-in provider as the operator configured it: who we are to the provider (client id
/// and secret), what we ask for (scopes) and how the provider speaks (OpenID Connect with
/// discovery, or plain OAuth 2.0 with fixed endpoints and a user endpoint).
///
/// The `id` names the provider in routes (`/auth/{id}/start`) and in `ExternalIdentity.provider`,
/// so it must stay stable and URL-safe: lowercase letters, digits, `-` and `_`.
package struct ProviderConfiguration: Sendable {
    package enum Kind: Sendable {
        /// Endpoints and keys come from `ISSUER/.well-known/openid-configuration`, whose
        /// `issuer` must equal this URL exactly. Identity comes from a verified ID token.
        case openIDConnect(issuer: URL)
        /// No ID token: identity comes from the user endpoint, read with the access token.
        case oauth2(OAuth2Endpoints)
    }

    /// How the client proves itself at the token endpoint (RFC 6749 §2.3.1, OIDC Core §9).
    package enum ClientAuthentication: String, Sendable, Codable {
        /// HTTP Basic with the form-encoded client id and secret.
        case clientSecretBasic = "client_secret_basic"
        /// `client_id` and `client_secret` in the form body.
        case clientSecretPost = "client_secret_post"
        /// A public client: `client_id` in the body, no secret (PKCE protects the code).
        case none
    }

    /// Where to find the user's id, email and name in a provider's user endpoint's JSON.
    package struct UserInfoMapping: Sendable {
        /// The member that holds the user object (X answers `{"data": {...}}`), or nil for the top level.
        package var container: String?
        package var subject: String
        package var email: String?
        /// A member that says the email was verified; without one, emails count as unverified.
        package var emailVerified: String?
        package var name: String?

        package init(container: String? = nil, subject: String = "id", email: String? = "email",
                     emailVerified: String? = nil, name: String? = "name") {
            self.container = container
            self.subject = subject
            self.email = email
            self.emailVerified = emailVerified
            self.name = name
        }
    }

    /// The endpoints of a provider that has no OpenID Connect discovery or ID tokens.
    package struct OAuth2Endpoints: Sendable {
        package var authorizationEndpoint: URL
        package var tokenEndpoint: URL
        package var userInfoEndpoint: URL
        package var clientAuthentication: ClientAuthentication
        package var userInfo: UserInfoMapping
        /// Send a PKCE challenge (RFC 7636, S256). On by default; only turn it off for a provider
        /// that refuses the parameters.
        package var usesPKCE: Bool
        /// How scopes are joined in the authorization URL (RFC 6749 says a space; Facebook
        /// documents commas).
        package var scopeSeparator: String

        package init(authorizationEndpoint: URL, tokenEndpoint: URL, userInfoEndpoint: URL,
                     clientAuthentication: ClientAuthentication = .clientSecretPost,
                     userInfo: UserInfoMapping = UserInfoMapping(), usesPKCE: Bool = true,
                     scopeSeparator: String = " ") {
            self.authorizationEndpoint = authorizationEndpoint
            self.tokenEndpoint = tokenEndpoint
            self.userInfoEndpoint = userInfoEndpoint
            self.clientAuthentication = clientAuthentication
            self.userInfo = userInfo
            self.usesPKCE = usesPKCE
            self.scopeSeparator = scopeSeparator
        }
    }

    package var id: String
    package var displayName: String
    package var clientID: String
    /// Nil for a public client. Never logged, never put in an error.
    package var clientSecret: String?
    package var scopes: [String]
    package var kind: Kind

    package init(id: String, displayName: String, clientID: String, clientSecret: String?,
                 scopes: [String], kind: Kind) {
        self.id = id
        self.displayName = displayName
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scopes = scopes
        self.kind = kind
    }

    /// Whether `id` can name a provider in a URL path: 1–32 of `a-z 0-9 - _`.
    package static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 32
            && id.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x5F }
    }
}

// MARK: - Presets

extension ProviderConfiguration {
    /// Google, an OpenID Connect provider.
    /// Issuer and discovery: https://developers.google.com/identity/openid-connect/reference
    /// (`https://accounts.google.com/.well-known/openid-configuration`).
    package static func google(clientID: String, secret: String) -> ProviderConfiguration {
        ProviderConfiguration(id: "google", displayName: "Google", clientID: clientID, clientSecret: secret,
                              scopes: ["openid", "email", "profile"],
                              kind: .openIDConnect(issuer: URL(string: "https://accounts.google.com")!))
    }

    /// Facebook Login, OAuth 2.0 with PKCE; the user comes from the Graph API.
    /// Endpoints: https://developers.facebook.com/documentation/facebook-login/guides/advanced/manual-flow
    /// (dialog `www.facebook.com/vXX/dialog/oauth`, code exchange at `graph.facebook.com/vXX/oauth/access_token`);
    /// PKCE: https://developers.facebook.com/documentation/facebook-login/guides/advanced/oidc-token.
    /// Facebook does not say whether an email was verified, so `emailVerified` is always false.
    package static func facebook(clientID: String, secret: String) -> ProviderConfiguration {
        ProviderConfiguration(
            id: "facebook", displayName: "Facebook", clientID: clientID, clientSecret: secret,
            scopes: ["email", "public_profile"],
            kind: .oauth2(OAuth2Endpoints(
                authorizationEndpoint: URL(string: "https://www.facebook.com/v19.0/dialog/oauth")!,
                tokenEndpoint: URL(string: "https://graph.facebook.com/v19.0/oauth/access_token")!,
                userInfoEndpoint: URL(string: "https://graph.facebook.com/me?fields=id,name,email")!,
                clientAuthentication: .clientSecretPost,
                userInfo: UserInfoMapping(subject: "id", email: "email", name: "name"),
                usesPKCE: true, scopeSeparator: ",")))
    }

    /// X (Twitter), OAuth 2.0 authorization code with PKCE; confidential clients authenticate
    /// with HTTP Basic at the token endpoint. X gives no email.
    /// Flow and endpoints: https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code
    /// and https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token;
    /// the user: https://docs.x.com/x-api/users/lookup/quickstart/authenticated-lookup (`GET /2/users/me`,
    /// answers `{"data": {"id", "name", "username"}}`).
    package static func x(clientID: String, secret: String) -> ProviderConfiguration {
        ProviderConfiguration(
            id: "x", displayName: "X", clientID: clientID, clientSecret: secret,
            scopes: ["users.read", "tweet.read"],
            kind: .oauth2(OAuth2Endpoints(
                authorizationEndpoint: URL(string: "https://x.com/i/oauth2/authorize")!,
                tokenEndpoint: URL(string: "https://api.x.com/2/oauth2/token")!,
                userInfoEndpoint: URL(string: "https://api.x.com/2/users/me")!,
                clientAuthentication: .clientSecretBasic,
                userInfo: UserInfoMapping(container: "data", subject: "id", email: nil, name: "name"),
                usesPKCE: true)))
    }

    /// Any OpenID Connect provider found by discovery at `issuer` (Keycloak, Authentik, Okta, …).
    package static func generic(issuer: URL, clientID: String, secret: String?, name: String,
                                id: String = "oidc", scopes: [String] = ["openid", "email", "profile"]) -> ProviderConfiguration {
        ProviderConfiguration(id: id, displayName: name, clientID: clientID, clientSecret: secret,
                              scopes: scopes, kind: .openIDConnect(issuer: issuer))
    }
}
