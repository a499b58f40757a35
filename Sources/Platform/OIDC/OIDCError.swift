import Foundation

/// Why a sign-in failed, with a message a person can act on. No case ever carries a client
/// secret, an authorization code or a token; text that came from a provider is cut to
/// `OIDCError.excerptLimit` characters and stripped of control characters.
package enum OIDCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The provider configuration cannot work (bad id, non-HTTPS issuer, …).
    case invalidConfiguration(String)
    /// The callback's `state` is not the one this attempt sent: a forged or replayed callback,
    /// or a second tab that started another sign-in.
    case stateMismatch
    /// The stored attempt is for another provider or another redirect URI than this callback.
    case attemptMismatch(String)
    /// The sign-in attempt is older than its 10 minutes.
    case expiredAttempt(expiredAt: Date)
    /// The provider answered the callback with `error=` (the user said no, or the client is
    /// misconfigured there).
    case providerRefused(error: String, description: String?)
    /// The callback has neither `code` nor `error`.
    case missingCode
    /// The discovery document could not be had, or does not describe this issuer.
    case discoveryFailed(String)
    /// The token endpoint did not give tokens.
    case tokenExchangeFailed(status: UInt, excerpt: String)
    /// The user endpoint (OAuth 2.0) or the UserInfo endpoint (OpenID Connect) failed.
    case userInfoFailed(status: UInt, excerpt: String)
    /// A provider's answer was not what the protocol says (not JSON, a member missing, too large).
    case invalidResponse(String)
    /// A provider could not be reached.
    case unreachable(String)
    /// The token endpoint gave no ID token although this is an OpenID Connect provider.
    case missingIDToken
    /// The ID token is not a well-formed signed JWT.
    case malformedIDToken(String)
    /// The ID token's algorithm is `none`, HMAC, or not one the key allows.
    case unsupportedAlgorithm(String)
    /// No key in the provider's JWKS has the token's `kid` (after one refetch, when allowed).
    case unknownSigningKey(kid: String?)
    /// The signature does not verify with the provider's key.
    case badSignature
    case wrongIssuer(expected: String, found: String)
    case wrongAudience(String)
    case tokenExpired(expiredAt: Date)
    /// `iat` is in the future (beyond the leeway): the provider's clock or the token is wrong.
    case tokenIssuedInFuture(issuedAt: Date)
    case wrongNonce
    /// The UserInfo answer is for another subject than the ID token.
    case subjectMismatch

    /// The longest text from a provider that an error carries.
    package static let excerptLimit = 200

    package var description: String {
        switch self {
        case .invalidConfiguration(let reason):
            return "The sign-in provider is misconfigured: \(reason)."
        case .stateMismatch:
            return "The sign-in callback does not belong to the sign-in this browser started (state mismatch or replay). Start the sign-in again."
        case .attemptMismatch(let reason):
            return "The sign-in callback does not match the stored sign-in attempt: \(reason). Start the sign-in again."
        case .expiredAttempt(let date):
            return "The sign-in attempt expired at \(date.formatted(.iso8601)). Start the sign-in again."
        case .providerRefused(let error, let description):
            let detail = description.map { ": \($0)" } ?? ""
            return "The provider refused the sign-in (\(error))\(detail). If you cancelled, start again; otherwise check the client's settings at the provider."
        case .missingCode:
            return "The sign-in callback has no authorization code and no error. Start the sign-in again."
        case .discoveryFailed(let reason):
            return "Could not read the provider's OpenID Connect discovery document: \(reason). Check the issuer URL."
        case .tokenExchangeFailed(let status, let excerpt):
            return "The provider's token endpoint refused the code (HTTP \(status)): \(excerpt). Check the client id, secret and redirect URI registered there, then sign in again."
        case .userInfoFailed(let status, let excerpt):
            return "The provider's user endpoint failed (HTTP \(status)): \(excerpt). Check the scopes granted to the client."
        case .invalidResponse(let reason):
            return "The provider's answer is not valid: \(reason)."
        case .unreachable(let reason):
            return "Could not reach the provider: \(reason). Try again later."
        case .missingIDToken:
            return "The provider gave no ID token. Check that the scopes include \"openid\"."
        case .malformedIDToken(let reason):
            return "The provider's ID token is malformed: \(reason)."
        case .unsupportedAlgorithm(let alg):
            return "The ID token is signed with \(alg), which is refused (only RSA, ECDSA and EdDSA keys from the provider's JWKS are accepted)."
        case .unknownSigningKey(let kid):
            return "The ID token names signing key \(kid.map { "\"\($0)\"" } ?? "(none)"), which is not in the provider's key set. Try again in a minute if the provider just rotated its keys."
        case .badSignature:
            return "The ID token's signature does not verify with the provider's key: the token is forged or damaged."
        case .wrongIssuer(let expected, let found):
            return "The ID token was issued by \"\(found)\", not by the configured issuer \"\(expected)\"."
        case .wrongAudience(let reason):
            return "The ID token was not issued for this client: \(reason). Check the client id."
        case .tokenExpired(let date):
            return "The ID token expired at \(date.formatted(.iso8601)). Check this server's clock, then sign in again."
        case .tokenIssuedInFuture(let date):
            return "The ID token says it was issued at \(date.formatted(.iso8601)), in the future. Check this server's clock."
        case .wrongNonce:
            return "The ID token's nonce is not the one this sign-in sent (a replayed token). Start the sign-in again."
        case .subjectMismatch:
            return "The provider's UserInfo answer is for another user than its ID token."
        }
    }

    /// The provider's refusal in a callback's query (`error`, `error_description`), its text made
    /// safe to show; nil when the query has no `error`. For a caller that finds no stored attempt
    /// for a callback without `state`: providers may leave it out of an error redirect (as
    /// `finish(callbackQuery:pending:redirectURI:)` allows), and the person should read that the
    /// provider refused, not that the attempt is unknown.
    package static func refusal(inCallbackQuery query: [String: String]) -> OIDCError? {
        guard let error = query["error"] else { return nil }
        return .providerRefused(error: excerpt(error), description: query["error_description"].map { excerpt($0) })
    }

    /// Provider-supplied text made safe to carry: control characters removed, cut to `excerptLimit`.
    static func excerpt(_ text: some StringProtocol, redacting secrets: [String] = []) -> String {
        var text = String(text)
        for secret in secrets where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: "[redacted]")
        }
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map {
            CharacterSet.controlCharacters.contains($0) ? " " : $0
        }))
        if cleaned.count <= excerptLimit { return cleaned }
        return String(cleaned.prefix(excerptLimit)) + "…"
    }
}
