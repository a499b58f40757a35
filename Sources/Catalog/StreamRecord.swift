// A stream as the platform records it.
import Crypto
import Foundation

package struct StreamRecord: Codable, Equatable, Sendable {
    package var id: String
    /// The stream key, when this node knows it: it made the stream, or a broadcaster presented
    /// it. Never sent to another node; kept sealed at rest.
    package var key: String?
    /// SHA-256 of the key (hex): how a presented key is checked, and all another node is told.
    package var keyDigest: String
    package var title: String
    package var createdAt: Date
    /// This stream's own ladder ("name:height:kbps,..." or "none") and x264 preset; nil: the node's.
    package var ladder: String? = nil
    package var x264Preset: String? = nil
    /// Keep the source rendition in the master playlist even when its keyframes are far apart.
    package var keepSource = false
    /// The account that owns the stream; nil for streams made with the operator token.
    package var owner: String? = nil

    package init(id: String, key: String?, keyDigest: String? = nil, title: String, createdAt: Date, ladder: String? = nil,
                 x264Preset: String? = nil, keepSource: Bool = false, owner: String? = nil) {
        self.id = id
        self.key = key
        self.keyDigest = keyDigest ?? key.map(StreamIdentifiers.digest) ?? ""
        self.title = title
        self.createdAt = createdAt
        self.ladder = ladder
        self.x264Preset = x264Preset
        self.keepSource = keepSource
        self.owner = owner
    }
}

package enum StreamError: Error, CustomStringConvertible, Equatable {
    case badTitle(String)
    case badLadder(String)
    package var description: String {
        switch self {
        case .badTitle(let why): return "bad title: \(why)"
        case .badLadder(let why): return "bad ladder: \(why)"
        }
    }
}

/// Stream ids and keys: short, URL-safe tokens.
package enum StreamIdentifiers {
    /// Length and letters of the ids the node makes.
    package static let idLength = 12
    static let idAlphabet = Set("abcdefghijkmnopqrstuvwxyz23456789")

    package static func randomID(length: Int = idLength) -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyz23456789")
        var g = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(g.next(upperBound: UInt32(alphabet.count)))] })
    }

    /// A stream key: the stream's id, `_`, and 128 random bits in hex. The id in front lets
    /// any node tell which node to ask about a key it does not know (the stream's place on
    /// the ring); the secret is the random part.
    package static func randomKey(for id: String) -> String { id + "_" + randomSecret() }

    /// `bytes` random bytes in hex.
    package static func randomSecret(bytes: Int = 16) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// The stream id a key names in front (`{id}_{secret}`); nil for keys without one (made
    /// before keys carried it) and anything else.
    package static func streamID(inKey key: String) -> String? {
        guard let underscore = key.firstIndex(of: "_") else { return nil }
        let id = key[..<underscore]
        guard id.count == idLength, id.allSatisfy(idAlphabet.contains) else { return nil }
        return String(id)
    }

    /// SHA-256, hex: what is kept of a stream key to check one presented.
    package static func digest(_ key: String) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Anything else is refused before it is looked up.
    package static func isWellFormed(_ s: Substring) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// Seals secrets kept at rest (stream keys) so the database file alone does not give them
/// away; the node provides one made from the cluster key.
package protocol SecretSealer: Sendable {
    func seal(_ plaintext: String) throws -> String
    /// nil when the text was sealed with another key or altered.
    func open(_ sealed: String) -> String?
}
