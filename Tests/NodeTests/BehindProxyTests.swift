import NIOCore
import NIOEmbedded
import XCTest
@testable import App
@testable import HTTPSupport
@testable import Live

/// What a node believes about its clients' addresses behind a load balancer, and when it says it is ready.
final class BehindProxyTests: XCTestCase {
    // MARK: Trusted proxies

    func testRangesMatchAddressesOfTheirFamilyOnly() throws {
        let t = try TrustedProxies("10.0.0.0/8, 192.168.1.7 ,fd00::/8")
        XCTAssertTrue(t.contains(try SocketAddress(ipAddress: "10.200.3.4", port: 1)))
        XCTAssertTrue(t.contains(try SocketAddress(ipAddress: "192.168.1.7", port: 1)))
        XCTAssertFalse(t.contains(try SocketAddress(ipAddress: "192.168.1.8", port: 1)))
        XCTAssertFalse(t.contains(try SocketAddress(ipAddress: "11.0.0.1", port: 1)))
        XCTAssertTrue(t.contains(try SocketAddress(ipAddress: "fd12::1", port: 1)))
        XCTAssertFalse(t.contains(try SocketAddress(ipAddress: "fe80::1", port: 1)))
        XCTAssertFalse(TrustedProxies().contains(try SocketAddress(ipAddress: "10.0.0.1", port: 1)))
        // A prefix that is not a whole number of bytes.
        let odd = try TrustedProxies("172.16.0.0/12")
        XCTAssertTrue(odd.contains(try SocketAddress(ipAddress: "172.31.255.255", port: 1)))
        XCTAssertFalse(odd.contains(try SocketAddress(ipAddress: "172.32.0.0", port: 1)))
    }

    func testBadRangesAreRefusedWithTheirText() {
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::1/129", "1.2.3"] {
            XCTAssertThrowsError(try TrustedProxies(bad)) { XCTAssertTrue("\($0)".contains(bad.split(separator: "/")[0]), "\($0)") }
        }
    }

    func testTheClientIsTheRightmostAddressNoTrustedProxyAdded() throws {
        let t = try TrustedProxies("10.0.0.0/8")
        let proxy = try SocketAddress(ipAddress: "10.0.0.5", port: 1234)
        // The client may put anything first; what the trusted proxies appended is believed.
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: ["6.6.6.6, 203.0.113.9"]), "203.0.113.9")
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: ["203.0.113.9, 10.1.1.1"]), "203.0.113.9")
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: ["203.0.113.9", "10.1.1.1"]), "203.0.113.9")
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: ["2001:db8::1"]), "2001:db8::1")
        // Nothing usable: the proxy's own address.
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: []), "10.0.0.5")
        XCTAssertEqual(t.clientAddress(peer: proxy, forwardedFor: ["not an address"]), "10.0.0.5")
        // From anyone else the header is not read.
        let stranger = try SocketAddress(ipAddress: "198.51.100.1", port: 1)
        XCTAssertEqual(t.clientAddress(peer: stranger, forwardedFor: ["203.0.113.9"]), "198.51.100.1")
    }

    // MARK: PROXY protocol

    static func v2(command: UInt8 = 0x21, family: UInt8 = 0x11, addresses: [UInt8], tlvs: [UInt8] = []) -> [UInt8] {
        let body = addresses + tlvs
        return ProxyHeader.v2Signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    func testVersion2NamesTheClient() throws {
        let header = Self.v2(addresses: [203, 0, 113, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x07, 0x8F], tlvs: [0x04, 0x00, 0x01, 0x00])
        guard case .header(let length, let source?) = ProxyHeader.parse((header + [3, 1, 2])[...]) else { return XCTFail() }
        XCTAssertEqual(length, header.count)
        XCTAssertEqual(source.ipAddress, "203.0.113.9")
        XCTAssertEqual(source.port, 50000)
        let v6 = Self.v2(family: 0x21, addresses: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
                                                   + [UInt8](repeating: 0, count: 16) + [0, 80, 0, 81])
        guard case .header(_, let source6?) = ProxyHeader.parse(v6[...]) else { return XCTFail() }
        XCTAssertEqual(source6.ipAddress, "2001:db8::1")
        // LOCAL (the proxy's health check): no client named.
        XCTAssertEqual(ProxyHeader.parse(Self.v2(command: 0x20, family: 0, addresses: [])[...]), .header(length: 16, source: nil))
    }

    func testVersion1NamesTheClient() {
        let line = Array("PROXY TCP4 198.51.100.22 10.0.0.1 35646 1935\r\n".utf8)
        guard case .header(let length, let source?) = ProxyHeader.parse((line + [3])[...]) else { return XCTFail() }
        XCTAssertEqual(length, line.count)
        XCTAssertEqual(source.ipAddress, "198.51.100.22")
        XCTAssertEqual(ProxyHeader.parse(Array("PROXY UNKNOWN\r\n".utf8)[...]), .header(length: 15, source: nil))
    }

    func testHeadersArriveInPiecesAndBadOnesAreRefusedEarly() {
        let header = Self.v2(addresses: [203, 0, 113, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x07, 0x8F])
        for cut in [1, 5, 12, 15, 16, 20] { XCTAssertEqual(ProxyHeader.parse(header.prefix(cut)), .incomplete, "\(cut)") }
        XCTAssertEqual(ProxyHeader.parse(Array("PROXY TCP4 1.2.3.4".utf8)[...]), .incomplete)
        // RTMP's first byte (3), HTTP, a wrong signature: refused at once, nothing buffered.
        for bad: [UInt8] in [[3, 0, 0, 0], Array("GET / HTTP/1.1\r\n".utf8), [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B]] {
            guard case .invalid = ProxyHeader.parse(bad[...]) else { return XCTFail("\(bad)") }
        }
        // Longer than the bound: refused, not waited for.
        var long = Self.v2(addresses: [UInt8](repeating: 1, count: 12))
        long[14] = 0x10
        guard case .invalid = ProxyHeader.parse(long[...]) else { return XCTFail() }
        let longV1 = Array(("PROXY TCP4 " + String(repeating: "1", count: 120)).utf8)
        guard case .invalid = ProxyHeader.parse(longV1[...]) else { return XCTFail() }
        for bad in ["PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "PROXY TCP4 example 5.6.7.8 1 1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 1\n"] {
            guard case .invalid = ProxyHeader.parse(Array(bad.utf8)[...]) else { return XCTFail(bad) }
        }
    }

    /// The handler in a pipeline: the header split over two reads, the bytes after it passed on
    /// in one piece, the next handlers added with the client's address and told the connection is active.
    func testTheHandlerHandsTheConnectionOnWithTheClientsAddress() throws {
        let channel = EmbeddedChannel()
        let seen = Seen()
        try channel.pipeline.syncOperations.addHandler(ProxyHeaderHandler(then: { pipeline, peer in
            seen.peer = peer
            try pipeline.addHandler(seen)
        }, refused: { seen.refused = $0 }))
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.9", port: 1)).wait()
        XCTAssertFalse(seen.active)
        let header = Self.v2(addresses: [203, 0, 113, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x07, 0x8F])
        try channel.writeInbound(ByteBuffer(bytes: header.prefix(10)))
        XCTAssertNil(seen.peer)
        try channel.writeInbound(ByteBuffer(bytes: header.dropFirst(10) + [3, 7, 7]))
        XCTAssertEqual(seen.peer?.ipAddress, "203.0.113.9")
        XCTAssertTrue(seen.active)
        try channel.writeInbound(ByteBuffer(bytes: [9]))
        XCTAssertEqual(seen.bytes, [3, 7, 7, 9])
        XCTAssertNil(seen.refused)
        _ = try channel.finish()
    }

    func testTheHandlerClosesOnGarbage() throws {
        let channel = EmbeddedChannel()
        let seen = Seen()
        try channel.pipeline.syncOperations.addHandler(ProxyHeaderHandler(then: { pipeline, _ in try pipeline.addHandler(seen) },
                                                                          refused: { seen.refused = $0 }))
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.9", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(bytes: [3, 0, 0, 0, 1]))
        XCTAssertNotNil(seen.refused)
        XCTAssertFalse(channel.isActive)
        XCTAssertTrue(seen.bytes.isEmpty)
    }

    final class Seen: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var peer: SocketAddress?
        var active = false
        var bytes: [UInt8] = []
        var refused: String?
        func channelActive(context: ChannelHandlerContext) { active = true }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            bytes += b.readBytes(length: b.readableBytes) ?? []
        }
    }

    // MARK: Readiness

    func testReadyOnceJoinedAndNotWhileHandingOver() {
        let others = ManagedCount()
        let r = NodeReadiness(hasSeeds: true, joinWait: .seconds(60), otherMembersAlive: { others.value })
        XCTAssertEqual(r.state, .joining)
        others.value = 1
        XCTAssertEqual(r.state, .ready)
        // Members leaving later do not take readiness away: that is the cluster's life.
        others.value = 0
        XCTAssertEqual(r.state, .ready)
        r.handoverBegan()
        XCTAssertEqual(r.state, .handingOver)
        XCTAssertNotNil(r.state.reason)
    }

    func testANodeWithoutSeedsOrWhoseSeedsNeverAnswerIsReady() async throws {
        XCTAssertEqual(NodeReadiness(hasSeeds: false, otherMembersAlive: { 0 }).state, .ready)
        let alone = NodeReadiness(hasSeeds: true, joinWait: .milliseconds(100), otherMembersAlive: { 0 })
        XCTAssertEqual(alone.state, .joining)
        try await Task.sleep(for: .milliseconds(150))
        XCTAssertEqual(alone.state, .ready)
    }

    final class ManagedCount: @unchecked Sendable {
        var value = 0
    }
}
