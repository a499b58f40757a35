// PublicTLS: the node's own certificate for HTTPS and RTMPS (viewers and broadcasters; not the
// cluster's mutual TLS), from a certificate chain file and a key file in PEM. `reload()` (on
// SIGHUP) reads them again: every handshake from then on gets the new certificate (NIOSSL asks
// `sslContextCallback` at each client hello), and connections already open keep theirs, so a
// renewal drops nobody. A pair that does not load is refused with the reason and the old one
// stays in use.
import Foundation
import Logging
import NIOSSL
import NodeMetrics
import Synchronization

package final class PublicTLS: Sendable {
    package struct Identity: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        /// When the leaf certificate stops being valid.
        package var notAfter: Date
    }

    let certificatePath: String
    let keyPath: String
    private let current: Mutex<Identity>
    private let logger: Logger

    package init(certificatePath: String, keyPath: String, logger: Logger) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.logger = logger
        let identity = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        current = Mutex(identity)
        Self.report(identity)
    }

    package var identity: Identity { current.withLock { $0 } }

    /// Reads the files again; the new pair serves every handshake from now on.
    @discardableResult
    package func reload() -> Bool {
        do {
            let identity = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
            current.withLock { $0 = identity }
            Self.report(identity)
            logger.notice("TLS certificate reloaded", metadata: ["file": "\(certificatePath)", "validUntil": "\(identity.notAfter)"])
            return true
        } catch {
            logger.error("TLS certificate not reloaded: the one loaded before stays in use",
                         metadata: ["file": "\(certificatePath)", "error": "\(error)"])
            return false
        }
    }

    /// A server configuration (TLS 1.2 and up) that takes the current pair at every handshake;
    /// `alpn`: the protocols offered (h2 and http/1.1 for HTTPS; none for RTMPS).
    package func serverConfiguration(alpn: [String] = []) -> TLSConfiguration {
        let first = identity
        var c = TLSConfiguration.makeServerConfiguration(certificateChain: first.chain.map { .certificate($0) }, privateKey: .privateKey(first.key))
        c.minimumTLSVersion = .tlsv12
        c.applicationProtocols = alpn
        c.sslContextCallback = { [self] _, promise in
            let now = self.identity
            var change = NIOSSLContextConfigurationOverride()
            change.certificateChain = now.chain.map { .certificate($0) }
            change.privateKey = .privateKey(now.key)
            promise.succeed(change)
        }
        return c
    }

    static func load(certificatePath: String, keyPath: String) throws -> Identity {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw PublicTLSError("cannot read the certificate chain \(certificatePath): \(error)")
        }
        guard let leaf = chain.first else { throw PublicTLSError("no certificate in \(certificatePath)") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw PublicTLSError("cannot read the private key \(keyPath): \(error)")
        }
        // The key must be the certificate's: a mismatch would fail every handshake.
        do {
            var check = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            check.minimumTLSVersion = .tlsv12
            _ = try NIOSSLContext(configuration: check)
        } catch {
            throw PublicTLSError("the key \(keyPath) does not go with the certificate \(certificatePath): \(error)")
        }
        return Identity(chain: chain, key: key, notAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }

    private static func report(_ identity: Identity) {
        NodeMetrics.tlsCertificateExpiry(listener: "https").record(identity.notAfter.timeIntervalSince1970)
        NodeMetrics.tlsCertificateExpiry(listener: "rtmps").record(identity.notAfter.timeIntervalSince1970)
    }
}

package struct PublicTLSError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
