// ClusterTokens: short-lived tokens between nodes, signed with a key derived from the
// cluster key: `<scope>.<expiry>.<hmac>`. A relay publishes with one whose scope is the
// stream id; a replica post carries one for its stream; a record lookup one for "records".
import Catalog
import Crypto
import Foundation

package struct ClusterTokens: Sendable {
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    /// The RTMP application relays publish to.
    package static let relayApp = "relay"
    /// How long a token is good for.
    package static let lifetime = 300

    package init(clusterKey: [UInt8]) {
        // A key of its own, derived from the cluster key, so the two uses never mix.
        keyBytes = Array(HMAC<SHA256>.authenticationCode(for: Array("streamtube relay v1".utf8), using: SymmetricKey(data: clusterKey)))
    }

    package func token(scope: String, now: Date = Date()) -> String {
        let expiry = Int(now.timeIntervalSince1970) + Self.lifetime
        let mac = HMAC<SHA256>.authenticationCode(for: Self.message(scope, expiry), using: key)
        return "\(scope).\(expiry).\(Self.hex(mac))"
    }

    /// The scope a token is good for, or nil (malformed, expired, or not signed by this cluster).
    package func verify(_ token: String, now: Date = Date()) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let expiry = Int(parts[1]), expiry >= Int(now.timeIntervalSince1970),
              StreamIdentifiers.isWellFormed(parts[0]), let mac = Self.bytes(hex: parts[2]) else { return nil }
        let scope = String(parts[0])
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Self.message(scope, expiry), using: key) else { return nil }
        return scope
    }

    private static func message(_ scope: String, _ expiry: Int) -> [UInt8] { Array("\(scope):\(expiry)".utf8) }

    private static func hex(_ mac: some Sequence<UInt8>) -> String { mac.map { String(format: "%02x", $0) }.joined() }

    private static func bytes(hex: Substring) -> [UInt8]? {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
