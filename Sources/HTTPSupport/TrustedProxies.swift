// TrustedProxies: the load balancers a node believes about its clients' addresses. Behind
// HAProxy every connection comes from the proxy; the proxy says who the client is, in the
// X-Forwarded-For header (HTTP) or the PROXY protocol header (RTMP). A node takes that word
// only from the addresses it is told to trust (`--trusted-proxies`), else anyone could claim
// any address and walk around per-address limits and throttles.
import Foundation
import NIOCore

/// A set of address ranges (CIDR), IPv4 and IPv6.
package struct TrustedProxies: Sendable, Equatable {
    package struct Range: Sendable, Equatable {
        var network: [UInt8]
        var prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == network.count else { return false }
            var bits = prefix
            for i in 0..<address.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[i] & mask != network[i] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    package private(set) var ranges: [Range] = []

    package init() {}

    /// `spec`: comma-separated addresses or CIDR ranges, e.g. `10.0.0.0/8,127.0.0.1,::1`.
    package init(_ spec: String) throws {
        for item in spec.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "/", maxSplits: 1)
            guard let bytes = Self.bytes(of: String(parts[0])) else {
                throw TrustedProxiesError("trusted proxy \"\(item)\" is not an IPv4 or IPv6 address or CIDR range")
            }
            let prefix: Int
            if parts.count == 2 {
                guard let p = Int(parts[1]), p >= 0, p <= bytes.count * 8 else {
                    throw TrustedProxiesError("trusted proxy \"\(item)\": the prefix length must be 0 to \(bytes.count * 8)")
                }
                prefix = p
            } else {
                prefix = bytes.count * 8
            }
            ranges.append(Range(network: bytes, prefix: prefix))
        }
    }

    package var isEmpty: Bool { ranges.isEmpty }

    package func contains(_ address: SocketAddress?) -> Bool {
        guard !ranges.isEmpty, let ip = address?.ipAddress, let bytes = Self.bytes(of: ip) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// The client's address a request carries: the right-most X-Forwarded-For entry that is not
    /// a trusted proxy (each proxy appends the address it saw), when the connection comes from a
    /// trusted proxy; else the connection's own address.
    package func clientAddress(peer: SocketAddress?, forwardedFor: [String]) -> String? {
        guard contains(peer) else { return peer?.ipAddress }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let bytes = Self.bytes(of: hop) else { break }
            if !ranges.contains(where: { $0.contains(bytes) }) { return Self.text(of: bytes) }
        }
        return peer?.ipAddress
    }

    /// An address's bytes (4 or 16), or nil when it is not an address.
    package static func bytes(of text: String) -> [UInt8]? {
        guard text.count <= 45 else { return nil }
        if let v4 = try? SocketAddress(ipAddress: text, port: 0), case .v4(let a) = v4 {
            return withUnsafeBytes(of: a.address.sin_addr.s_addr) { Array($0) }
        }
        if let v6 = try? SocketAddress(ipAddress: text, port: 0), case .v6(let a) = v6 {
            return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        }
        return nil
    }

    static func text(of bytes: [UInt8]) -> String? {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0).ipAddress
    }
}

package struct TrustedProxiesError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
