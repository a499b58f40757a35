import Foundation

/// The parts of an OpenID Connect discovery document (OpenID Connect Discovery 1.0 §3) that
/// sign-in uses.
struct ProviderMetadata: Sendable, Equatable {
    var issuer: String
    var authorizationEndpoint: URL
    var tokenEndpoint: URL
    var userInfoEndpoint: URL?
    var jwksURI: URL
    var tokenEndpointAuthMethods: [String]?

    private struct Document: Decodable {
        var issuer: String?
        var authorization_endpoint: String?
        var token_endpoint: String?
        var userinfo_endpoint: String?
        var jwks_uri: String?
        var token_endpoint_auth_methods_supported: [String]?
    }

    /// The discovery URL of an issuer: `/.well-known/openid-configuration` appended to its path.
    static func discoveryURL(for issuer: URL) -> URL {
        var text = issuer.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        return URL(string: text + "/.well-known/openid-configuration")!
    }

    /// Decodes and checks a discovery document for `issuer`: the document's `issuer` must be the
    /// same string (§4.3: no trailing-slash or case games), every endpoint must be HTTPS (or HTTP
    /// on a loopback host, for tests and local providers).
    static func decode(_ data: Data, issuer: URL) throws(OIDCError) -> ProviderMetadata {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw .discoveryFailed("the document is not the JSON object discovery describes")
        }
        guard let found = document.issuer else { throw .discoveryFailed("the document has no issuer") }
        guard found == issuer.absoluteString else {
            throw .discoveryFailed("the document names issuer \"\(OIDCError.excerpt(found))\", not the configured \"\(issuer.absoluteString)\"")
        }
        func endpoint(_ value: String?, _ name: String) throws(OIDCError) -> URL {
            guard let value else { throw .discoveryFailed("the document has no \(name)") }
            guard let url = URL(string: value), SecureURL.isAcceptable(url) else {
                throw .discoveryFailed("\(name) \"\(OIDCError.excerpt(value))\" is not an https URL")
            }
            return url
        }
        var userInfoEndpoint: URL?
        if let value = document.userinfo_endpoint { userInfoEndpoint = try endpoint(value, "userinfo_endpoint") }
        return ProviderMetadata(
            issuer: found,
            authorizationEndpoint: try endpoint(document.authorization_endpoint, "authorization_endpoint"),
            tokenEndpoint: try endpoint(document.token_endpoint, "token_endpoint"),
            userInfoEndpoint: userInfoEndpoint,
            jwksURI: try endpoint(document.jwks_uri, "jwks_uri"),
            tokenEndpointAuthMethods: document.token_endpoint_auth_methods_supported)
    }

    /// The client authentication to use at the token endpoint. Discovery's default when the list
    /// is absent is `client_secret_basic` (Discovery §3); prefer it when listed, then `_post`.
    func clientAuthentication(hasSecret: Bool) -> ProviderConfiguration.ClientAuthentication {
        guard hasSecret else { return .none }
        guard let methods = tokenEndpointAuthMethods else { return .clientSecretBasic }
        if methods.contains("client_secret_basic") { return .clientSecretBasic }
        if methods.contains("client_secret_post") { return .clientSecretPost }
        return .clientSecretBasic
    }
}

/// Provider endpoints must be HTTPS; plain HTTP only to a loopback host (local test providers).
enum SecureURL {
    static func isAcceptable(_ url: URL) -> Bool {
        switch url.scheme?.lowercased() {
        case "https": return url.host?.isEmpty == false
        case "http": return ["127.0.0.1", "localhost", "::1", "[::1]"].contains(url.host?.lowercased() ?? "")
        default: return false
        }
    }
}
