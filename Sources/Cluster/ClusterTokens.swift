// ClusterTokens: what one node signs for another, with keys derived from the cluster
// keyring. A token authorizes one request and nothing else: its purpose, the node that sends
// it, the method and path it is for, a digest of its body, a scope (the stream it concerns),
// a short expiry and a nonce that is refused the second time. Anyone holding the cluster key
// can make one; anyone who captures one can use it for nothing but the request it was made for,
// once.
//
// Format: `v2.<purpose>.<from>.<scope>.<expiry>.<nonce>.<body digest or ->.<hmac>`, the HMAC-SHA256
// over every field and the method and path.
import Catalog
import Crypto
import Foundation
import Synchronization

package enum ClusterPurpose: String, Sendable, CaseIterable {
    /// A relay publishing a broadcaster's stream to its origin over RTMP.
    case relay
    /// An origin replicating to its standby.
    case replica
    /// A node asking another for a stream record.
    case records
    /// A node linking its chat viewers to a stream's room on the room's node (a WebSocket).
    case chat
}

/// The request a token is made for, as the receiver sees it too.
package struct ClusterRequest: Sendable, Equatable {
    package var purpose: ClusterPurpose
    package var method: String
    /// Path and query.
    package var target: String

    package init(_ purpose: ClusterPurpose, _ method: String, _ target: String) {
        self.purpose = purpose
        self.method = method
        self.target = target
    }

    /// The relay of a stream, published over RTMP.
    package static let relay = ClusterRequest(.relay, "PUBLISH", "rtmp:/relay")
}

/// What a verified token says.
package struct ClusterGrant: Sendable, Equatable {
    package var from: String
    package var scope: String
    /// Hex SHA-256 of the body the sender signed, nil for none: the receiver checks the body it
    /// reads against it.
    package var bodyDigest: String?
}

package enum ClusterTokenError: Error, Equatable, CustomStringConvertible {
    case malformed, badSignature, expired, replayed, wrongBody

    package var description: String {
        switch self {
        case .malformed: return "malformed cluster token"
        case .badSignature: return "cluster token not signed by this cluster for this request"
        case .expired: return "cluster token expired"
        case .replayed: return "cluster token already used"
        case .wrongBody: return "the body is not the one the cluster token was signed for"
        }
    }
}

package final class ClusterTokens: Sendable {
    /// How long a token is good for: long enough for a request between nodes to arrive.
    package static let lifetime = 30
    /// The RTMP application relays publish to.
    package static let relayApp = "relay"
    /// Nonces kept (until their tokens expire) at the most; past it, tokens are refused until some expire.
    package static let maxRemembered = 200_000

    /// Signing keys, derived from the cluster keyring's: the first signs, all verify (rotation).
    private let keys: [[UInt8]]
    private let localID: String
    private let seen = Mutex<(nonces: [String: Int], oldest: Int)>(([:], 0))

    package init(clusterKeys: [[UInt8]], localID: String) {
        // Keys of their own, derived from the cluster keys, so the two uses never mix.
        keys = clusterKeys.map { key in
            Array(HMAC<SHA256>.authenticationCode(for: Array("streamtube cluster tokens v2".utf8), using: SymmetricKey(data: key)))
        }
        self.localID = localID
    }

    package static func digest(_ body: some Sequence<UInt8>) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(body))
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    package func token(for request: ClusterRequest, scope: String, body: [UInt8]? = nil, now: Date = Date()) -> String {
        let expiry = Int(now.timeIntervalSince1970) + Self.lifetime
        let nonce = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let digest = body.map(Self.digest) ?? "-"
        let fields = [request.purpose.rawValue, localID, scope, String(expiry), nonce, digest]
        let mac = HMAC<SHA256>.authenticationCode(for: Self.message(fields, request), using: SymmetricKey(data: keys[0]))
        return "v2." + fields.joined(separator: ".") + "." + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Checks a token for `request`; its nonce is used up. Throws what is wrong with it.
    package func verify(_ token: String, for request: ClusterRequest, now: Date = Date()) throws(ClusterTokenError) -> ClusterGrant {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 512, parts.count == 8, parts[0] == "v2", parts[1] == request.purpose.rawValue,
              StreamIdentifiers.isWellFormed(parts[2]), StreamIdentifiers.isWellFormed(parts[3]), let expiry = Int(parts[4]),
              parts[5].utf8.count == 32, parts[6] == "-" || parts[6].utf8.count == 64, let mac = Self.bytes(hex: parts[7]) else {
            throw .malformed
        }
        let fields = parts[1...6].map(String.init)
        let message = Self.message(fields, request)
        guard keys.contains(where: { HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: message, using: SymmetricKey(data: $0)) }) else {
            throw .badSignature
        }
        let nowSeconds = Int(now.timeIntervalSince1970)
        // Expired, or made to outlive the lifetime (another node's clock may run a little ahead).
        guard expiry >= nowSeconds, expiry <= nowSeconds + Self.lifetime + 5 else { throw .expired }
        let fresh = seen.withLock { s -> Bool in
            if s.nonces.count >= Self.maxRemembered || (s.oldest < nowSeconds && s.nonces.count > 1024) {
                s.nonces = s.nonces.filter { $0.value >= nowSeconds }
                s.oldest = s.nonces.values.min() ?? nowSeconds
            }
            guard s.nonces.count < Self.maxRemembered, s.nonces[String(parts[5])] == nil else { return false }
            s.nonces[String(parts[5])] = expiry
            s.oldest = min(s.oldest == 0 ? expiry : s.oldest, expiry)
            return true
        }
        guard fresh else { throw .replayed }
        return ClusterGrant(from: String(parts[2]), scope: String(parts[3]), bodyDigest: parts[6] == "-" ? nil : String(parts[6]))
    }

    private static func message(_ fields: [String], _ request: ClusterRequest) -> [UInt8] {
        Array((fields + [request.method, request.target]).joined(separator: "\n").utf8)
    }

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

/// What a relay token's scope says: the stream, and who publishes it — its host (`{id}`, as
/// before co-hosts) or a co-host (`{id}_{account}`) — so the owner admits exactly the person the
/// relaying node admitted, and the signature covers who that is.
package struct RelayScope: Equatable, Sendable {
    package var streamID: String
    package var publisher: Publisher

    package init(streamID: String, publisher: Publisher) {
        self.streamID = streamID
        self.publisher = publisher
    }

    package var scope: String {
        guard let account = publisher.cohostAccount else { return streamID }
        return streamID + "_" + account
    }

    /// nil for a scope that names no stream id (and account) of the forms the node makes.
    package init?(scope: String) {
        let parts = scope.split(separator: "_", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ StreamIdentifiers.isWellFormed($0) }) else { return nil }
        streamID = String(parts[0])
        publisher = parts.count == 2 ? .cohost(account: String(parts[1])) : .host
    }
}
