import Foundation
import JWTKit

/// A provider's signature keys, from its JWKS (RFC 7517), and the check of an ID token's
/// signature against them.
///
/// jwt-kit verifies the signature; this type decides which key may be used, because jwt-kit's
/// key collection falls back to a default key for an unknown `kid` and takes the algorithm from
/// the token's header for a key that names none. Here the algorithm must be one of
/// `acceptedAlgorithms` (never `none` nor HMAC: an HMAC "key" would be the public key) and fit
/// the key: RSA keys sign RS*/PS*, EC keys ES* on their own curve, OKP keys EdDSA; a key that
/// names its `alg` signs only that.
struct SigningKeys: Sendable {
    var keys: [JWK]
    var fetchedAt: Date

    static let acceptedAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]

    /// One JWKS member: a key jwt-kit can read, or nil (an encryption key, a symmetric key, an
    /// algorithm it does not know), so one odd key does not make the whole set unreadable.
    private struct Member: Decodable {
        var jwk: JWK?
        var use: String?
        private enum CodingKeys: String, CodingKey { case use }
        init(from decoder: any Decoder) throws {
            jwk = try? JWK(from: decoder)
            use = try? decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .use)
        }
    }

    private struct Document: Decodable {
        var keys: [Member]
    }

    static func decode(_ data: Data, fetchedAt: Date) throws(OIDCError) -> SigningKeys {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw .invalidResponse("the provider's JWKS is not a JSON object with \"keys\"")
        }
        let keys = document.keys.compactMap { member -> JWK? in
            guard let jwk = member.jwk, member.use == nil || member.use == "sig" else { return nil }
            return jwk
        }
        return SigningKeys(keys: keys, fetchedAt: fetchedAt)
    }

    /// The header fields that choose the key.
    struct Header: Decodable, Sendable {
        var alg: String?
        var kid: String?
        var crit: [String]?
    }

    /// Reads the (unverified) header of a compact JWS; refuses anything but three base64url parts.
    static func header(of token: String) throws(OIDCError) -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .malformedIDToken("not a signed JWT of three parts")
        }
        guard let data = base64URLDecode(parts[0]),
              let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw .malformedIDToken("the header is not base64url JSON")
        }
        return header
    }

    /// Whether an algorithm is acceptable before any key is looked at.
    static func checkAlgorithm(_ header: Header) throws(OIDCError) {
        guard let alg = header.alg else { throw .unsupportedAlgorithm("no algorithm") }
        guard acceptedAlgorithms.contains(alg) else { throw .unsupportedAlgorithm(OIDCError.excerpt(alg)) }
        // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        if let crit = header.crit, !crit.isEmpty {
            throw .malformedIDToken("the header has critical extensions (\(OIDCError.excerpt(crit.joined(separator: ","))))")
        }
    }

    /// The keys that may have signed a token with this header: those with its `kid` (all keys
    /// when it names none), of a type and curve that fit its algorithm.
    func candidates(for header: Header) -> [JWK] {
        guard let alg = header.alg else { return [] }
        return keys.filter { key in
            if let kid = header.kid, key.keyIdentifier?.string != kid { return false }
            return Self.key(key, fits: alg)
        }
    }

    func contains(kid: String) -> Bool {
        keys.contains { $0.keyIdentifier?.string == kid }
    }

    static func key(_ key: JWK, fits alg: String) -> Bool {
        if let named = key.algorithm, named.rawValue != alg { return false }
        switch key.keyType {
        case .rsa:
            return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"].contains(alg)
        case .ecdsa:
            let curves = ["ES256": "P-256", "ES384": "P-384", "ES512": "P-521"]
            guard let curve = curves[alg] else { return false }
            return key.curve?.rawValue == curve
        case .octetKeyPair:
            return alg == "EdDSA" && key.curve?.rawValue == "Ed25519"
        default:
            return false
        }
    }

    /// Verifies the token's signature with `key` under `alg` and decodes its claims. The claims
    /// are not checked here (`IDTokenClaims.check` does, with the injected clock).
    static func verify(_ token: String, alg: String, key: JWK) async throws(OIDCError) -> IDTokenClaims {
        var pinned = key
        // Pin the algorithm (so jwt-kit does not take it from the header) and give the key the
        // token's kid (so jwt-kit picks it, and not a default).
        pinned.algorithm = JWK.Algorithm(rawValue: alg)
        if pinned.keyIdentifier == nil { pinned.keyIdentifier = JWKIdentifier(string: "provider-key") }
        let collection = JWTKeyCollection()
        do {
            try await collection.add(jwk: pinned)
        } catch {
            throw .invalidResponse("a key in the provider's JWKS is unusable (\(OIDCError.excerpt(String(describing: error))))")
        }
        do {
            return try await collection.verify(token, as: IDTokenClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw .badSignature
        } catch let error as JWTError where error.errorType == .malformedToken {
            throw .malformedIDToken(OIDCError.excerpt(error.reason ?? "its claims cannot be read"))
        } catch {
            // Anything else from the signature check (a signature of the wrong length, …) is a
            // signature that does not verify.
            throw .badSignature
        }
    }

    static func base64URLDecode(_ text: some StringProtocol) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
