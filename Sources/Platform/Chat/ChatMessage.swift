// ChatMessage: one line of a stream's chat, who may say what, and the bounds every message is
// held to. Values only: no socket, no database, no clock (times are passed in).
import Foundation

/// Who is speaking, as the node they are connected to established it (their session), and
/// whether they moderate this stream (its broadcaster or a co-host). A room trusts what a node
/// of the cluster tells it (the link is authenticated by the cluster key).
package struct ChatAuthor: Codable, Sendable, Equatable {
    package var id: String
    package var name: String
    package var moderator: Bool

    package init(id: String, name: String, moderator: Bool = false) {
        self.id = id
        self.name = name
        self.moderator = moderator
    }
}

/// A message as kept and sent: `at` in seconds since 1970, `offset` seconds into the broadcast
/// when the room knew when it began.
package struct ChatMessage: Codable, Sendable, Equatable {
    package var id: String
    package var stream: String
    package var user: String
    package var name: String
    package var text: String
    package var at: Double
    package var offset: Double?

    package init(id: String, stream: String, user: String, name: String, text: String, at: Double, offset: Double? = nil) {
        self.id = id
        self.stream = stream
        self.user = user
        self.name = name
        self.text = text
        self.at = at
        self.offset = offset
    }
}

/// The bounds of a room. Defaults are what a node runs with; tests pass smaller ones.
package struct ChatLimits: Sendable, Equatable {
    /// Characters in a message (grapheme clusters), after trimming.
    package var maxCharacters = 500
    /// Unicode scalars in a message: bounds combining-mark piles that count as few characters.
    package var maxScalars = 2000
    /// Bytes of one WebSocket message from a viewer, checked before it is decoded.
    package var maxFrameBytes = 4096
    /// Messages a person may post in a burst, refilled over `refillSeconds` (the per-user rate).
    package var burst = 5.0
    package var refillSeconds = 10.0
    /// Frames a connection may send in a burst, refilled at `framesPerSecond`: past it, a
    /// flood, and the connection (only it) is closed.
    package var frameBurst = 20.0
    package var framesPerSecond = 5.0
    /// Messages a room keeps in memory for people who join.
    package var history = 50
    package var maxTimeoutMinutes = 7 * 24 * 60
    package var maxSlowSeconds = 3600

    package init() {}
}

/// Why a room refused something: said to the one who asked, in words they can act on.
package enum ChatRefusal: Error, Equatable, CustomStringConvertible {
    case signInFirst
    case empty
    case tooLong(max: Int)
    case banned
    case timedOut(seconds: Int)
    case slowMode(seconds: Int)
    case tooFast(seconds: Int)
    case notModerator
    case noSuchMessage
    case followersOnly
    case unknownReaction
    case badRequest(String)

    package var description: String {
        switch self {
        case .signInFirst: return "sign in to chat"
        case .empty: return "the message is empty"
        case .tooLong(let max): return "messages are at most \(max) characters"
        case .banned: return "you are banned from this chat"
        case .timedOut(let s): return "you are timed out: you may chat again in \(s) s"
        case .slowMode(let s): return "slow mode: wait \(s) s between messages"
        case .tooFast(let s): return "you are sending messages too fast: wait \(s) s"
        case .notModerator: return "only the broadcaster and co-hosts may do that"
        case .noSuchMessage: return "no such message"
        case .followersOnly: return "followers-only mode: follow this channel to chat"
        case .unknownReaction: return "unknown reaction: send one of \(ChatReactions.all.joined(separator: ", "))"
        case .badRequest(let why): return why
        }
    }
}

/// The reactions a viewer may send, in the order a panel shows them.
package enum ChatReactions {
    package static let all = ["like", "love", "laugh", "wow", "clap"]
}

package enum ChatText {
    /// The text to keep: trimmed, control characters (newlines included) made spaces; refused
    /// when empty or past the limits. The text is kept as written: pages show it with
    /// `textContent`, never as HTML.
    package static func clean(_ raw: String, limits: ChatLimits = ChatLimits()) throws(ChatRefusal) -> String {
        guard raw.unicodeScalars.count <= limits.maxScalars else { throw .tooLong(max: limits.maxCharacters) }
        var scalars = String.UnicodeScalarView()
        for s in raw.unicodeScalars {
            // C0, DEL and C1 controls, and the bidirectional overrides that reorder the text around a message.
            let isControl = s.value < 0x20 || (0x7F...0x9F).contains(s.value) || (0x202A...0x202E).contains(s.value)
                || (0x2066...0x2069).contains(s.value)
            scalars.append(isControl ? " " : s)
        }
        let text = String(scalars).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw .empty }
        guard text.count <= limits.maxCharacters else { throw .tooLong(max: limits.maxCharacters) }
        return text
    }
}
