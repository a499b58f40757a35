// ClusterTLS: mutual TLS between the nodes of a cluster, with no certificate file to hand out.
// Every node holds the cluster key, so every node derives the same CA key from it (HKDF-SHA256)
// and makes the CA certificate itself; at each start it makes a fresh key and a certificate for
// itself, signed by that CA. Whoever holds the cluster key is the CA: trust stays exactly where
// it was (SECURITY.md). Rotation: the CA of every key of the keyring is trusted, the first
// (primary) key's CA signs.
import Crypto
import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// What went wrong making the cluster's certificates, and what to do about it.
package enum ClusterTLSError: Error, CustomStringConvertible {
    case noClusterKey
    case badName(String)
    case cannotMake(String)

    package var description: String {
        switch self {
        case .noClusterKey: return "cluster TLS needs a cluster key (make one with `streamtube keygen`)"
        case .badName(let name):
            return "\"\(name)\" cannot name a certificate: use letters, digits, '.', '-' and '_', at most 64"
        case .cannotMake(let why): return "cannot make the cluster TLS certificates: \(why)"
        }
    }
}

/// The cluster's certificate authority for one cluster key. Its key and subject are the same
/// on every node holding that cluster key; the certificate's bytes are not (an ECDSA signature
/// is randomized, and the serial is random), which does not matter: a chain is checked by the
/// issuer's name and key, and each node trusts its own copy.
package struct ClusterCA: Sendable {
    package let privateKey: Certificate.PrivateKey
    package let certificate: Certificate
    /// A short fingerprint of the CA's public key, which its name carries.
    package let fingerprint: String

    /// Valid from 2024-01-01 for a century: the CA lives as long as its cluster key.
    static let notValidBefore = Date(timeIntervalSince1970: 1_704_067_200)
    static let notValidAfter = Date(timeIntervalSince1970: 1_704_067_200 + 100 * 365 * 86_400)

    package init(clusterKey: [UInt8]) throws(ClusterTLSError) {
        let key = Self.deriveKey(from: clusterKey)
        let publicKey = Certificate.PublicKey(key.publicKey)
        fingerprint = Self.fingerprint(of: key.publicKey)
        do {
            let name = try Self.name(fingerprint: fingerprint)
            certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: Self.notValidBefore, notValidAfter: Self.notValidAfter,
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: publicKey)
                },
                issuerPrivateKey: Certificate.PrivateKey(key))
        } catch {
            throw .cannotMake("the CA certificate: \(error)")
        }
        privateKey = Certificate.PrivateKey(key)
    }

    /// The CA's signing key, the same wherever `clusterKey` is: HKDF-SHA256 of the cluster key
    /// as a P-256 scalar; the rare output that is not a valid scalar is skipped with a counter.
    package static func deriveKey(from clusterKey: [UInt8]) -> P256.Signing.PrivateKey {
        var counter = 0
        while true {
            let bytes = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: clusterKey),
                                               salt: Array("streamtube cluster CA".utf8),
                                               info: Array("streamtube cluster CA v1 P-256 \(counter)".utf8),
                                               outputByteCount: 32)
            if let key = try? bytes.withUnsafeBytes({ try P256.Signing.PrivateKey(rawRepresentation: $0) }) { return key }
            counter += 1
        }
    }

    /// A short fingerprint of a CA key: the first 8 bytes of the SHA-256 of its public key, hex.
    package static func fingerprint(of key: P256.Signing.PublicKey) -> String {
        SHA256.hash(data: key.x963Representation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// `O=StreamTube, CN=StreamTube cluster CA <fingerprint>`: CAs of different cluster keys
    /// (a rotation) have different names.
    static func name(fingerprint: String) throws -> DistinguishedName {
        try DistinguishedName {
            OrganizationName("StreamTube")
            CommonName("StreamTube cluster CA \(fingerprint)")
        }
    }

    /// A certificate for `commonName` and `hosts` (IP address or DNS name each), signed by this CA.
    package func issue(commonName: String, hosts: [String], publicKey subjectKey: Certificate.PublicKey, usages: [ExtendedKeyUsage.Usage],
                       now: Date, validity: TimeInterval) throws(ClusterTLSError) -> Certificate {
        do {
            let authorityKey = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
            let names = hosts.map { host -> GeneralName in
                if let ip = Self.addressBytes(host) { return .ipAddress(ASN1OctetString(contentBytes: ip[...])) }
                return .dnsName(host)
            }
            return try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: subjectKey,
                // An hour back: another node's clock may run a little behind this one's.
                notValidBefore: now - 3600, notValidAfter: now + validity,
                issuer: certificate.subject,
                subject: try DistinguishedName {
                    OrganizationName("StreamTube")
                    CommonName(commonName)
                },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage(usages)
                    SubjectKeyIdentifier(hash: subjectKey)
                    AuthorityKeyIdentifier(keyIdentifier: authorityKey)
                    if !names.isEmpty { SubjectAlternativeNames(names) }
                },
                issuerPrivateKey: privateKey)
        } catch {
            throw .cannotMake("a certificate for \(commonName): \(error)")
        }
    }

    /// The bytes of an IPv4 or IPv6 address (brackets allowed), nil for a DNS name.
    static func addressBytes(_ host: String) -> [UInt8]? {
        var text = host
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

/// A certificate signed by the cluster CA, with its key, and the CAs to trust: what a node
/// presents (made at every start) or what `streamtube cluster-cert` writes for an operator.
package struct ClusterIdentity: Sendable {
    /// The CA of every cluster key, primary first: all are trusted (rotation), the first signed.
    package let authorities: [ClusterCA]
    package let certificate: Certificate
    package let privateKey: Certificate.PrivateKey

    /// How long a node's own certificate is good for; a node makes a new one at every start.
    package static let nodeValidity: TimeInterval = 365 * 86_400

    /// A new key and a certificate for it. A node's (`client: false`) names its hosts and may
    /// serve and connect; a client's (`client: true`) may only connect.
    package init(clusterKeys: [[UInt8]], name: String, hosts: [String], client: Bool = false, now: Date = Date(),
                 validity: TimeInterval = ClusterIdentity.nodeValidity) throws(ClusterTLSError) {
        guard !clusterKeys.isEmpty else { throw .noClusterKey }
        guard Self.isValidName(name) else { throw .badName(name) }
        var authorities: [ClusterCA] = []
        for key in clusterKeys { authorities.append(try ClusterCA(clusterKey: key)) }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        var unique: [String] = []
        for host in hosts where !host.isEmpty && !unique.contains(host) { unique.append(host) }
        certificate = try authorities[0].issue(commonName: name, hosts: unique, publicKey: key.publicKey,
                                               usages: client ? [.clientAuth] : [.serverAuth, .clientAuth], now: now, validity: validity)
        self.authorities = authorities
        self.privateKey = key
    }

    /// A node id or a client's name: letters, digits, '.', '-', '_'.
    package static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && !name.hasPrefix(".") && name.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
                || c == UInt8(ascii: "_")
        }
    }

    /// The CAs' fingerprints, primary first (for the log: they name the CAs, they are no secret).
    package var fingerprints: [String] { authorities.map(\.fingerprint) }

    /// PEM: the CA certificates (all of them, for `--cacert`), the certificate, and its key.
    package func pem() throws(ClusterTLSError) -> (authorities: String, certificate: String, privateKey: String) {
        do {
            let cas = try authorities.map { try $0.certificate.serializeAsPEM().pemString }.joined(separator: "\n")
            return (cas + "\n", try certificate.serializeAsPEM().pemString + "\n", try privateKey.serializeAsPEM().pemString + "\n")
        } catch {
            throw .cannotMake("PEM: \(error)")
        }
    }

    /// The same for NIOSSL.
    func forNIOSSL() throws(ClusterTLSError) -> (authorities: [NIOSSLCertificate], certificate: NIOSSLCertificate, key: NIOSSLPrivateKey) {
        do {
            let cas = try authorities.map { try NIOSSLCertificate(bytes: Self.der($0.certificate), format: .der) }
            let leaf = try NIOSSLCertificate(bytes: Self.der(certificate), format: .der)
            let key = try NIOSSLPrivateKey(bytes: privateKey.serializeAsPEM().derBytes, format: .der)
            return (cas, leaf, key)
        } catch {
            throw .cannotMake("for TLS: \(error)")
        }
    }

    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}

/// A node's TLS between nodes: its identity, and the contexts for the connections it accepts
/// (a client certificate from a cluster CA required) and makes (the peer's certificate checked
/// against the cluster CAs and the host it was reached at).
package struct ClusterTLS: Sendable {
    package let identity: ClusterIdentity
    /// For the listeners: TLS 1.3, a client certificate chained to a cluster CA required.
    package let serverContext: NIOSSLContext
    /// For this node's own connections to others (AsyncHTTPClient takes the configuration).
    package let clientConfiguration: TLSConfiguration
    package let clientContext: NIOSSLContext

    package init(identity: ClusterIdentity) throws(ClusterTLSError) {
        let parts = try identity.forNIOSSL()
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(parts.certificate)],
                                                              privateKey: .privateKey(parts.key))
        server.minimumTLSVersion = .tlsv13
        // A client is not reached at a host name: its certificate is checked for its chain only.
        server.certificateVerification = .noHostnameVerification
        server.trustRoots = .certificates(parts.authorities)
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv13
        client.certificateVerification = .fullVerification
        client.trustRoots = .certificates(parts.authorities)
        client.certificateChain = [.certificate(parts.certificate)]
        client.privateKey = .privateKey(parts.key)
        do {
            serverContext = try NIOSSLContext(configuration: server)
            clientContext = try NIOSSLContext(configuration: client)
        } catch {
            throw .cannotMake("TLS contexts: \(error)")
        }
        clientConfiguration = client
        self.identity = identity
    }

    /// A node's: a new certificate for `nodeID` at `hosts`, signed by the primary key's CA.
    package init(clusterKeys: [[UInt8]], nodeID: String, hosts: [String], now: Date = Date()) throws(ClusterTLSError) {
        try self.init(identity: ClusterIdentity(clusterKeys: clusterKeys, name: nodeID, hosts: hosts, now: now))
    }
}
