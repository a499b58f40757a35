// ChatRoomState: a room's rules as a value: who may post now (bans, timeouts, slow mode,
// followers-only mode, the per-user rate), the recent messages, the reactions' counts, and
// the moderators' actions. Time is passed in; the room actor (`ChatRoom`) does the I/O.
import Foundation

package struct ChatRoomState: Sendable {
    package let stream: String
    package let limits: ChatLimits
    /// The newest messages, oldest first (at most `limits.history`).
    package private(set) var recent: [ChatMessage] = []
    /// Seconds a person waits between two messages; 0: off.
    package private(set) var slowSeconds = 0
    /// Only the owner's channel's followers (and moderators) may post.
    package private(set) var followersOnly = false
    /// Reactions sent in this room, by kind (counted while the room is on its node).
    package private(set) var reactions: [String: Int] = [:]
    package private(set) var banned: Set<String> = []
    /// Who is timed out, until when (seconds since 1970).
    package private(set) var timedOut: [String: Double] = [:]
    /// Per person: when they last posted, and their rate bucket (tokens, when counted).
    private var lastPost: [String: Double] = [:]
    private var buckets: [String: (tokens: Double, at: Double)] = [:]

    package init(stream: String, limits: ChatLimits = ChatLimits(), recent: [ChatMessage] = [],
                 banned: Set<String> = [], timedOut: [String: Double] = [:]) {
        self.stream = stream
        self.limits = limits
        self.recent = Array(recent.suffix(limits.history))
        self.banned = banned
        self.timedOut = timedOut
    }

    /// A message `author` posts at `now`, or why not. Moderators are held to the size limit
    /// only (they must be able to speak in a flood they are stopping). `follower`: whether the
    /// author follows the owner's channel (asked only in followers-only mode).
    package mutating func post(_ raw: String, by author: ChatAuthor?, id: String, now: Double,
                               offset: Double? = nil, follower: Bool = false) throws(ChatRefusal) -> ChatMessage {
        guard let author else { throw .signInFirst }
        let text = try ChatText.clean(raw, limits: limits)
        if !author.moderator {
            if banned.contains(author.id) { throw .banned }
            if let until = timedOut[author.id] {
                if until > now { throw .timedOut(seconds: Int((until - now).rounded(.up))) }
                timedOut[author.id] = nil
            }
            if followersOnly, !follower { throw .followersOnly }
            if slowSeconds > 0, let last = lastPost[author.id], now - last < Double(slowSeconds) {
                throw .slowMode(seconds: Int((Double(slowSeconds) - (now - last)).rounded(.up)))
            }
            try spend(author.id, now: now)
        }
        lastPost[author.id] = now
        forgetIdle(now: now)
        let message = ChatMessage(id: id, stream: stream, user: author.id, name: author.name, text: text, at: now, offset: offset)
        recent.append(message)
        if recent.count > limits.history { recent.removeFirst(recent.count - limits.history) }
        return message
    }

    /// Removes a message from the room (the caller removes it from the kept ones too). A
    /// message no longer in memory may still be kept: deleting it is not an error.
    package mutating func delete(_ id: String, by author: ChatAuthor?) throws(ChatRefusal) {
        guard author?.moderator == true else { throw .notModerator }
        guard ChatIDs.isWellFormed(id) else { throw .noSuchMessage }
        recent.removeAll { $0.id == id }
    }

    /// Times `user` out for `minutes` (0 lifts it). Moderators cannot be timed out.
    package mutating func timeOut(_ user: String, minutes: Int, by author: ChatAuthor?, now: Double) throws(ChatRefusal) -> Double? {
        guard author?.moderator == true else { throw .notModerator }
        guard ChatIDs.isWellFormed(user) else { throw .badRequest("no such person") }
        guard (0...limits.maxTimeoutMinutes).contains(minutes) else {
            throw .badRequest("a timeout is 0 to \(limits.maxTimeoutMinutes) minutes")
        }
        guard minutes > 0 else {
            timedOut[user] = nil
            return nil
        }
        let until = now + Double(minutes) * 60
        timedOut[user] = until
        return until
    }

    /// Bans `user` from posting in this room (or lifts the ban).
    package mutating func ban(_ user: String, _ on: Bool = true, by author: ChatAuthor?) throws(ChatRefusal) {
        guard author?.moderator == true else { throw .notModerator }
        guard ChatIDs.isWellFormed(user) else { throw .badRequest("no such person") }
        if on { banned.insert(user) } else { banned.remove(user) }
    }

    package mutating func setSlowMode(_ seconds: Int, by author: ChatAuthor?) throws(ChatRefusal) {
        guard author?.moderator == true else { throw .notModerator }
        guard (0...limits.maxSlowSeconds).contains(seconds) else {
            throw .badRequest("slow mode is 0 (off) to \(limits.maxSlowSeconds) seconds")
        }
        slowSeconds = seconds
    }

    /// A reaction `author` sends at `now`: the room's counts after it, or why not. Held to the
    /// per-user rate as messages are (a reaction spends one of the same bucket).
    package mutating func react(_ kind: String, by author: ChatAuthor?, now: Double) throws(ChatRefusal) -> [String: Int] {
        guard let author else { throw .signInFirst }
        guard ChatReactions.all.contains(kind) else { throw .unknownReaction }
        if !author.moderator {
            if banned.contains(author.id) { throw .banned }
            if let until = timedOut[author.id], until > now { throw .timedOut(seconds: Int((until - now).rounded(.up))) }
            try spend(author.id, now: now)
        }
        reactions[kind, default: 0] += 1
        forgetIdle(now: now)
        return reactions
    }

    package mutating func setFollowersOnly(_ on: Bool, by author: ChatAuthor?) throws(ChatRefusal) {
        guard author?.moderator == true else { throw .notModerator }
        followersOnly = on
    }

    /// The per-user rate: a bucket of `burst` messages refilled over `refillSeconds`.
    private mutating func spend(_ user: String, now: Double) throws(ChatRefusal) {
        let rate = limits.burst / limits.refillSeconds
        var bucket = buckets[user] ?? (limits.burst, now)
        bucket.tokens = min(limits.burst, bucket.tokens + max(0, now - bucket.at) * rate)
        bucket.at = now
        guard bucket.tokens >= 1 else {
            buckets[user] = bucket
            throw .tooFast(seconds: Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
        bucket.tokens -= 1
        buckets[user] = bucket
    }

    /// What a room remembers per person is bounded: entries that no longer hold anyone back go.
    private mutating func forgetIdle(now: Double) {
        guard lastPost.count > 10_000 || buckets.count > 10_000 else { return }
        let horizon = max(Double(slowSeconds), limits.refillSeconds)
        lastPost = lastPost.filter { now - $0.value < horizon }
        buckets = buckets.filter { now - $0.value.at < limits.refillSeconds }
        timedOut = timedOut.filter { $0.value > now }
    }
}

/// Ids of messages and people as the chat accepts them (what the platform makes: letters,
/// digits, `-` and `_`), so nothing else reaches a query or a page.
package enum ChatIDs {
    package static func isWellFormed(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A)
            || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }

    package static func make() -> String {
        (0..<12).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}
