import Foundation
import JWTKit

/// The claims of an OpenID Connect ID token that sign-in reads (OIDC Core §2), and their checks
/// (OIDC Core §3.1.3.7).
struct IDTokenClaims: JWTPayload {
    var iss: String
    var sub: String
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nonce: String?
    var azp: String?
    var email: String?
    /// Some providers send `"true"`; `BoolClaim` reads both.
    var email_verified: BoolClaim?
    var name: String?

    /// jwt-kit calls this after the signature verifies; the checks need the injected clock and
    /// the attempt's nonce, so they are in `check`.
    func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// Checks issuer, audience, authorized party, expiry, issue time and nonce.
    func check(issuer: String, clientID: String, nonce expectedNonce: String?, now: Date,
               leeway: TimeInterval) throws(OIDCError) {
        guard iss == issuer else {
            throw .wrongIssuer(expected: issuer, found: OIDCError.excerpt(iss))
        }
        guard aud.value.contains(clientID) else {
            throw .wrongAudience("its audience is \(OIDCError.excerpt(aud.value.joined(separator: ", "))), not this client")
        }
        // Several audiences: the token must say it was issued to us (azp); an azp, when present,
        // must be us.
        if aud.value.count > 1, azp == nil {
            throw .wrongAudience("it has several audiences and no authorized party (azp)")
        }
        if let azp, azp != clientID {
            throw .wrongAudience("its authorized party (azp) is \(OIDCError.excerpt(azp)), not this client")
        }
        guard exp.value.addingTimeInterval(leeway) > now else {
            throw .tokenExpired(expiredAt: exp.value)
        }
        guard iat.value <= now.addingTimeInterval(leeway) else {
            throw .tokenIssuedInFuture(issuedAt: iat.value)
        }
        if let expectedNonce {
            guard let nonce, Randomness.constantTimeEqual(nonce, expectedNonce) else { throw .wrongNonce }
        }
    }
}
