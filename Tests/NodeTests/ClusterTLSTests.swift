import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOSSL
import X509
import XCTest
@testable import Cluster
@testable import Live

/// TLS between nodes: the CA every node derives from the cluster key, node certificates checked
/// by real TLS handshakes between two in-memory channels (one node's client, another node's
/// listener with the sniffer in front), rotation, and the sniffer leaving plaintext untouched.
final class ClusterTLSTests: XCTestCase {
    static let key = Array(repeating: UInt8(7), count: 32)
    static let otherKey = Array(repeating: UInt8(9), count: 32)
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func der(_ certificate: Certificate) throws -> [UInt8] { try ClusterIdentity.der(certificate) }

    // MARK: The CA

    func testTheSameClusterKeyGivesTheSameCAOnTwoNodes() throws {
        let one = try ClusterCA(clusterKey: Self.key)
        let two = try ClusterCA(clusterKey: Self.key)
        XCTAssertEqual(one.certificate.publicKey, two.certificate.publicKey)
        XCTAssertEqual(one.certificate.subject, two.certificate.subject)
        XCTAssertEqual(one.fingerprint, two.fingerprint)
        XCTAssertTrue("\(one.certificate.subject)".contains("StreamTube cluster CA \(one.fingerprint)"), "\(one.certificate.subject)")
        // The certificates' bytes differ (random serial, randomized ECDSA signature): what the
        // handshake tests below check is that this does not matter.
        XCTAssertNotEqual(try der(one.certificate), try der(two.certificate))
        let basic = try XCTUnwrap(one.certificate.extensions.basicConstraints)
        XCTAssertEqual(basic, .isCertificateAuthority(maxPathLength: 0))
        XCTAssertEqual(try one.certificate.extensions.keyUsage?.keyCertSign, true)

        let other = try ClusterCA(clusterKey: Self.otherKey)
        XCTAssertNotEqual(other.certificate.publicKey, one.certificate.publicKey)
        XCTAssertNotEqual(other.certificate.subject, one.certificate.subject)
    }

    func testANodeCertificateNamesTheNodeAndItsHosts() throws {
        let identity = try ClusterIdentity(clusterKeys: [Self.key], name: "node-a", hosts: ["10.1.2.3", "media.example.com", "::1", "10.1.2.3"])
        let cert = identity.certificate
        XCTAssertEqual(cert.issuer, identity.authorities[0].certificate.subject)
        XCTAssertTrue("\(cert.subject)".contains("CN=node-a"), "\(cert.subject)")
        let names = try XCTUnwrap(cert.extensions.subjectAlternativeNames)
        XCTAssertEqual(Array(names).count, 3)
        XCTAssertTrue(names.contains(.dnsName("media.example.com")))
        XCTAssertTrue(names.contains(.ipAddress(.init(contentBytes: [10, 1, 2, 3]))))
        XCTAssertTrue(names.contains(.ipAddress(.init(contentBytes: ArraySlice(Array(repeating: 0, count: 15) + [1])))))
        let usages = try XCTUnwrap(cert.extensions.extendedKeyUsage)
        XCTAssertTrue(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        XCTAssertEqual(cert.notValidAfter.timeIntervalSince(cert.notValidBefore), ClusterIdentity.nodeValidity + 3600, accuracy: 2)
        XCTAssertThrowsError(try ClusterIdentity(clusterKeys: [Self.key], name: "../etc", hosts: []))
        XCTAssertThrowsError(try ClusterIdentity(clusterKeys: [], name: "a", hosts: []))
    }

    // MARK: Handshakes between nodes

    /// A client channel of one node (its client context, as a relay or AsyncHTTPClient uses it)
    /// and a listener's channel of another (the sniffer in front), connected in memory.
    struct Link {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()

        init(from client: ClusterTLS, to server: ClusterTLS, clientTrusts: ClusterTLS? = nil, sniffer: Bool = true) throws {
            let context = try clientTrusts.map { try NIOSSLContext(configuration: Self.config(presenting: client, trusting: $0)) }
                ?? client.clientContext
            // The peer is reached at 127.0.0.1, which its certificate must name.
            self.client.remoteAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 1935)
            try self.client.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
            if sniffer {
                try self.server.pipeline.syncOperations.addHandler(ClusterTLSSniffer(context: server.serverContext, listener: "test",
                                                                                     logger: ClusterTLSTests.logger))
            }
        }

        static func config(presenting identity: ClusterTLS, trusting other: ClusterTLS) -> TLSConfiguration {
            var c = identity.clientConfiguration
            c.trustRoots = other.clientConfiguration.trustRoots
            return c
        }

        /// Connects, moves bytes both ways until neither side writes, and sends `hello` from the
        /// client; returns what the server's application read (nil: the handshake failed).
        func exchange(_ hello: String = "hello, origin", byteByByte: Bool = false) throws -> String? {
            try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 50000)).wait()
            try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1935)).wait()
            var failed = false
            func pump() {
                var moved = true
                while moved {
                    moved = false
                    while let out = try? client.readOutbound(as: ByteBuffer.self) {
                        moved = true
                        let chunks = byteByByte ? out.readableBytesView.map { ByteBuffer(bytes: [$0]) } : [out]
                        for chunk in chunks where server.isActive { do { try server.writeInbound(chunk) } catch { failed = true } }
                    }
                    while let out = try? server.readOutbound(as: ByteBuffer.self) {
                        moved = true
                        if client.isActive { do { try client.writeInbound(out) } catch { failed = true } }
                    }
                }
            }
            pump()
            guard !failed, client.isActive, server.isActive else { return nil }
            client.writeAndFlush(ByteBuffer(string: hello), promise: nil)
            pump()
            var got = ""
            while let b = try? server.readInbound(as: ByteBuffer.self) { got += String(buffer: b) }
            return got.isEmpty ? nil : got
        }
    }

    func node(_ id: String, keys: [[UInt8]]) throws -> ClusterTLS {
        try ClusterTLS(clusterKeys: keys, nodeID: id, hosts: ["127.0.0.1"])
    }

    func testANodeTakesAnotherNodesCertificateMadeFromTheSameKey() throws {
        // Two nodes, each with its own CA certificate (other bytes, same name and key).
        let a = try node("a", keys: [Self.key])
        let b = try node("b", keys: [Self.key])
        XCTAssertNotEqual(try der(a.identity.authorities[0].certificate), try der(b.identity.authorities[0].certificate))
        let ab = try Link(from: a, to: b)
        XCTAssertEqual(try ab.exchange(), "hello, origin")
        // The listener's pipeline: TLS in front, the sniffer gone.
        XCTAssertTrue(ClusterTransport.isMutualTLS(ab.server.pipeline.syncOperations))
        XCTAssertNil(try? ab.server.pipeline.syncOperations.handler(type: ClusterTLSSniffer.self))
        // And the other way round, fed to the listener a byte at a time.
        XCTAssertEqual(try Link(from: b, to: a).exchange("hi", byteByByte: true), "hi")
    }

    func testANodeOfAnotherClusterKeyIsRefusedBothWays() throws {
        let ours = try node("b", keys: [Self.key])
        let stranger = try node("x", keys: [Self.otherKey])
        // The stranger connects to our listener: its certificate is from a CA we do not trust.
        let inbound = try Link(from: stranger, to: ours)
        XCTAssertNil(try inbound.exchange())
        XCTAssertFalse(inbound.server.isActive)
        // Even trusting our CA, its own certificate is refused.
        let trusting = try Link(from: stranger, to: ours, clientTrusts: ours)
        XCTAssertNil(try trusting.exchange())
        XCTAssertFalse(trusting.server.isActive)
        // We connect to the stranger's listener: we refuse its certificate.
        XCTAssertNil(try Link(from: ours, to: stranger).exchange())
    }

    func testACertificateThatDoesNotNameTheHostIsRefused() throws {
        let a = try node("a", keys: [Self.key])
        let elsewhere = try ClusterTLS(clusterKeys: [Self.key], nodeID: "b", hosts: ["10.9.9.9"])
        XCTAssertNil(try Link(from: a, to: elsewhere).exchange())
    }

    func testRotationTakesCertificatesOfTheOldKeysCA() throws {
        let old = Self.key, new = Self.otherKey
        let notYetRotated = try node("o", keys: [old])
        let newKeyInstalled = try node("i", keys: [old, new])
        let rotated = try node("n", keys: [new, old])
        let oldRemoved = try node("r", keys: [new])
        XCTAssertEqual(rotated.identity.certificate.issuer, try ClusterCA(clusterKey: new).certificate.subject)
        XCTAssertEqual(newKeyInstalled.identity.certificate.issuer, try ClusterCA(clusterKey: old).certificate.subject)
        // A node whose keyring is [new, old] takes a certificate signed by the old key's CA.
        XCTAssertEqual(try Link(from: notYetRotated, to: rotated, clientTrusts: rotated).exchange(), "hello, origin")
        // The order of a rotation keeps every pair of nodes talking: the new key second
        // everywhere (all still sign with the old CA), then first everywhere, then the old removed.
        for (x, y) in [(notYetRotated, newKeyInstalled), (newKeyInstalled, rotated), (rotated, oldRemoved)] {
            XCTAssertEqual(try Link(from: x, to: y).exchange(), "hello, origin")
            XCTAssertEqual(try Link(from: y, to: x).exchange(), "hello, origin")
        }
        // Skipping a step does not: a node that trusts only the old CA refuses the rotated node,
        // and once the old key is removed, its CA's certificates are refused.
        XCTAssertNil(try Link(from: rotated, to: notYetRotated).exchange())
        XCTAssertNil(try Link(from: rotated, to: notYetRotated, clientTrusts: rotated).exchange())
        XCTAssertNil(try Link(from: notYetRotated, to: oldRemoved, clientTrusts: oldRemoved).exchange())
    }

    // MARK: The sniffer

    func testPlaintextPassesTheSnifferUntouched() throws {
        let tls = try node("a", keys: [Self.key])
        for first in [Array("GET /live/s/master.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n".utf8), [0x03] + Array(repeating: UInt8(0x16), count: 1536)] {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ClusterTLSSniffer(context: tls.serverContext, listener: "test", logger: Self.logger))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
            try channel.writeInbound(ByteBuffer())
            try channel.writeInbound(ByteBuffer(bytes: first))
            try channel.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01]))
            XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self), ByteBuffer(bytes: first))
            XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self), ByteBuffer(bytes: [0x16, 0x03, 0x01]))
            XCTAssertNil(try? channel.pipeline.syncOperations.handler(type: ClusterTLSSniffer.self))
            XCTAssertFalse(ClusterTransport.isMutualTLS(channel.pipeline.syncOperations))
            XCTAssertTrue(try channel.finish().isClean)
        }
    }

    func testAHandshakeRecordGetsTLS() throws {
        let tls = try node("a", keys: [Self.key])
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ClusterTLSSniffer(context: tls.serverContext, listener: "test", logger: Self.logger))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(bytes: [ClusterTLSSniffer.handshakeRecord]))
        XCTAssertTrue(ClusterTransport.isMutualTLS(channel.pipeline.syncOperations))
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))  // nothing reaches the application
    }

    // MARK: The HTTP listener

    /// Hummingbird's HTTP/1 pipeline, as `HTTP1Channel` sets it up, with the media fast path
    /// (whose raw part puts itself first); no router behind it.
    struct FastPathOnly: ServerChildChannel {
        struct Value: ServerChildChannelValue { let channel: any Channel }
        let object: ByteBuffer

        func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                try channel.pipeline.syncOperations.addHandler(MediaFastPath { [object] _ in object })
                return Value(channel: channel)
            }
        }

        func handle(value: Value, logger: Logger) async {}
    }

    /// The sniffer goes in front of the whole HTTP pipeline, the media fast path's raw part
    /// included: a cached object answered there goes out through TLS.
    func testTheHTTPListenerAnswersTheFastPathOverTLS() throws {
        let object = ByteBuffer(bytes: (0..<3000).map { UInt8(truncatingIfNeeded: $0) })
        let origin = try node("b", keys: [Self.key])
        let link = try Link(from: try node("a", keys: [Self.key]), to: origin, sniffer: false)
        _ = try ClusterTLSChannel(base: FastPathOnly(object: object), tls: origin, logger: Self.logger)
            .setup(channel: link.server, logger: Self.logger).wait()
        let before = link.server.pipeline.debugDescription
        XCTAssertLessThan(try XCTUnwrap(before.range(of: "ClusterTLSSniffer")).lowerBound,
                          try XCTUnwrap(before.range(of: "RawMediaFastPath")).lowerBound, before)
        // Answered by the fast path: nothing reaches the router.
        XCTAssertNil(try link.exchange("GET /live/s1/source/seg3-0a1b2c3d.m4s HTTP/1.1\r\nHost: b\r\n\r\n"))
        var answer = ByteBuffer()
        while var b = try link.client.readInbound(as: ByteBuffer.self) { answer.writeBuffer(&b) }
        let text = String(buffer: answer)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), String(text.prefix(200)))
        XCTAssertTrue(answer.readableBytesView.suffix(3000).elementsEqual(object.readableBytesView))
        let after = link.server.pipeline.debugDescription
        XCTAssertLessThan(try XCTUnwrap(after.range(of: "NIOSSLServerHandler")).lowerBound,
                          try XCTUnwrap(after.range(of: "RawMediaFastPath")).lowerBound, after)
    }
}
