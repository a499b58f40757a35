// Co-hosts: other accounts a stream's owner lets broadcast into it, each with a stream key of
// their own (same format as the stream's, kept as a digest and sealed). One person is on the
// air at a time: the host (the owner, on the stream's own key) unless the stream is handed to
// a co-host; only the key of whoever is on the air is admitted.
import Foundation

/// An account that may broadcast into a stream with its own key.
package struct CoHost: Codable, Equatable, Sendable {
    /// The co-host's account id.
    package var account: String
    /// The key, when this node knows it (kept sealed at rest); never sent to another node.
    package var key: String?
    /// SHA-256 of the key (hex): how a presented key is checked, and all another node is told.
    package var keyDigest: String
    package var addedAt: Date

    package init(account: String, key: String?, keyDigest: String? = nil, addedAt: Date) {
        self.account = account
        self.key = key
        self.keyDigest = keyDigest ?? key.map(StreamIdentifiers.digest) ?? ""
        self.addedAt = addedAt
    }

    /// At most this many co-hosts a stream.
    package static let maxPerStream = 20
}

/// Who publishes a stream: its host, on the stream's key, or a co-host on theirs.
package enum Publisher: Hashable, Sendable, CustomStringConvertible {
    case host
    case cohost(account: String)

    package var description: String {
        switch self {
        case .host: return "host"
        case .cohost(let account): return "co-host \(account)"
        }
    }

    /// The co-host's account id; nil for the host.
    package var cohostAccount: String? {
        if case .cohost(let a) = self { return a }
        return nil
    }
}

extension StreamRecord {
    /// Who the presented key stands for; nil when it opens nothing of this stream.
    package func publisher(key: String) -> Publisher? {
        publisher(keyDigest: StreamIdentifiers.digest(key))
    }

    package func publisher(keyDigest digest: String) -> Publisher? {
        if digest == keyDigest { return .host }
        return cohosts.first { $0.keyDigest == digest }.map { .cohost(account: $0.account) }
    }

    /// Who is on the air: the host unless the stream is handed to one of its co-hosts.
    package var onAirPublisher: Publisher {
        guard let onAir, cohosts.contains(where: { $0.account == onAir }) else { return .host }
        return .cohost(account: onAir)
    }

    /// Whether `publisher` may broadcast into the stream at all (the host, or a co-host who still is one).
    package func isPublisher(_ publisher: Publisher) -> Bool {
        switch publisher {
        case .host: return true
        case .cohost(let account): return cohosts.contains { $0.account == account }
        }
    }

    package func cohost(account: String) -> CoHost? { cohosts.first { $0.account == account } }
}
