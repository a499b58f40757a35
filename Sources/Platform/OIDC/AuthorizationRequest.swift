import Foundation

/// What `OIDCClient.begin` made: the URL to send the browser to, and the values the caller
/// keeps until the callback (in a short-lived server-side record, or a sealed — encrypted and
/// authenticated — cookie; never a plain cookie, since the PKCE verifier and nonce are secrets
/// of this sign-in attempt). Hand the whole value back to `finish`.
package struct AuthorizationRequest: Codable, Sendable, Equatable {
    /// The provider's authorization endpoint with every parameter: redirect the browser here.
    package var url: URL
    /// `ProviderConfiguration.id` of the provider this attempt is for.
    package var provider: String
    /// 32 random bytes, base64url; the callback must bring it back.
    package var state: String
    /// 32 random bytes, base64url, for OpenID Connect providers; the ID token must carry it.
    package var nonce: String?
    /// The PKCE code verifier (43 characters); its S256 challenge is in `url`.
    package var codeVerifier: String?
    /// The redirect URI given to `begin`; the token request must repeat it.
    package var redirectURI: String
    /// After this the attempt is refused (10 minutes after `begin`).
    package var expiresAt: Date

    package init(url: URL, provider: String, state: String, nonce: String?, codeVerifier: String?,
                 redirectURI: String, expiresAt: Date) {
        self.url = url
        self.provider = provider
        self.state = state
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.redirectURI = redirectURI
        self.expiresAt = expiresAt
    }
}

/// Who signed in, as the provider says. The caller links `(provider, subject)` to an account;
/// `subject` is the provider's stable id for the user, never the email.
package struct ExternalIdentity: Codable, Sendable, Equatable {
    package var provider: String
    package var subject: String
    package var email: String?
    /// True only when the provider said so (`email_verified: true`).
    package var emailVerified: Bool
    package var name: String?

    package init(provider: String, subject: String, email: String?, emailVerified: Bool, name: String?) {
        self.provider = provider
        self.subject = subject
        self.email = email
        self.emailVerified = emailVerified
        self.name = name
    }
}
