// ChatRoom: a stream's room, on the node that owns the stream (the ring). It applies the
// room's rules (`ChatRoomState`), fans events out to its subscribers — the viewers connected
// here and one link per relaying node — and keeps messages and rules in the database.
import Foundation
import Logging

/// What a room hands a subscriber: an event's JSON, or "close this connection" (the room went
/// away: its node is no longer the owner, or the link to it broke).
package enum ChatOut: Sendable {
    case text(String)
    case close(reason: String)
}

package typealias ChatSink = @Sendable (ChatOut) -> Void

/// The subscribers of a room or a link, by id; once closed it takes no one.
struct ChatSubscribers {
    private(set) var sinks: [Int: ChatSink] = [:]
    private var nextID = 0
    private(set) var closed = false

    mutating func add(_ sink: @escaping ChatSink) -> Int? {
        guard !closed else { return nil }
        nextID += 1
        sinks[nextID] = sink
        return nextID
    }

    mutating func remove(_ id: Int) { sinks[id] = nil }

    func send(_ out: ChatOut) {
        for sink in sinks.values { sink(out) }
    }

    /// Closes every subscriber (they reconnect, to the room's node as the ring says then).
    mutating func close(reason: String) {
        closed = true
        send(.close(reason: reason))
        sinks = [:]
    }
}

/// A room as a connection sees it: the room itself on its node, or the link to it elsewhere.
package protocol ChatRoomHandle: AnyObject, Sendable {
    /// Subscribes to every event of the room; nil: the handle closed, ask for another.
    func subscribe(_ sink: @escaping ChatSink) async -> Int?
    func unsubscribe(_ id: Int) async
    /// A command from the subscriber `conn`; what concerns it alone comes back through `reply`.
    func submit(_ command: ChatCommand, from author: ChatAuthor?, conn: Int, reply: @escaping @Sendable (String) -> Void) async
}

package actor ChatRoom: ChatRoomHandle {
    package let stream: String
    private var state: ChatRoomState
    private let store: ChatStore?
    /// When the broadcast began (seconds since 1970), for messages' offsets; nil: not live here.
    private let liveSince: @Sendable () -> Double?
    private let now: @Sendable () -> Double
    /// Whether an account follows the stream owner's channel (asked in followers-only mode).
    private let follows: @Sendable (String) async -> Bool
    private let logger: Logger
    private var subscribers = ChatSubscribers()
    /// Nobody was in the room at the last sweep, and nobody came since (`closeIfIdle`).
    private var idleAtLastSweep = false

    package init(state: ChatRoomState, store: ChatStore?, logger: Logger, liveSince: @escaping @Sendable () -> Double? = { nil },
                 follows: @escaping @Sendable (String) async -> Bool = { _ in false },
                 now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.stream = state.stream
        self.state = state
        self.store = store
        self.liveSince = liveSince
        self.follows = follows
        self.now = now
        self.logger = logger
    }

    /// The room as its database left it: rules and the newest messages.
    package static func load(stream: String, store: ChatStore?, limits: ChatLimits, logger: Logger,
                             liveSince: @escaping @Sendable () -> Double? = { nil },
                             follows: @escaping @Sendable (String) async -> Bool = { _ in false }) async -> ChatRoom {
        var state = ChatRoomState(stream: stream, limits: limits)
        if let store {
            do {
                let rules = try await store.rules(stream: stream)
                state = ChatRoomState(stream: stream, limits: limits, recent: try await store.recent(stream: stream, count: limits.history),
                                      banned: rules.banned, timedOut: rules.timedOut)
                let room = ChatAuthor(id: "room", name: "room", moderator: true)
                if rules.slow > 0 { try? state.setSlowMode(rules.slow, by: room) }
                if rules.followersOnly { try? state.setFollowersOnly(true, by: room) }
            } catch {
                logger.error("chat: the room's messages and rules could not be read", metadata: ["stream": "\(stream)", "error": "\(error)"])
            }
        }
        return ChatRoom(state: state, store: store, logger: logger, liveSince: liveSince, follows: follows)
    }

    package var subscriberCount: Int { subscribers.sinks.count }

    package func subscribe(_ sink: @escaping ChatSink) -> Int? {
        idleAtLastSweep = false
        return subscribers.add(sink)
    }

    /// A sweep's visit: closes the room when nobody has been in it since the last sweep (its rules
    /// and messages are in the database, the next viewer loads it again). A viewer who got the
    /// room just before is refused by the closed room and asks again.
    package func closeIfIdle() -> Bool {
        guard subscribers.sinks.isEmpty else {
            idleAtLastSweep = false
            return false
        }
        guard idleAtLastSweep else {
            idleAtLastSweep = true
            return false
        }
        subscribers.close(reason: "the room was idle")
        return true
    }

    package func unsubscribe(_ id: Int) { subscribers.remove(id) }

    /// Closes every subscriber (they reconnect, to the room's new node).
    package func close(reason: String) { subscribers.close(reason: reason) }

    private func broadcast(_ event: ChatEvent) { subscribers.send(.text(event.json)) }

    package func submit(_ command: ChatCommand, from author: ChatAuthor?, conn: Int, reply: @escaping @Sendable (String) -> Void) async {
        let t = now()
        do throws(ChatRefusal) {
            switch command.type {
            case "join":
                reply(ChatEvent.hello(state.recent, slow: state.slowSeconds, followersOnly: state.followersOnly,
                                      reactions: state.reactions, author: author).json)
            case "post":
                let offset = liveSince().map { max(0, t - $0) }
                // Asked only when it matters: the mode is on and the author is no moderator.
                var follower = false
                if state.followersOnly, let author, !author.moderator { follower = await follows(author.id) }
                let message = try state.post(command.text ?? "", by: author, id: ChatIDs.make(), now: t, offset: offset, follower: follower)
                broadcast(.message(message))
                await persist("message") { try await $0.save(message) }
            case "delete":
                let id = command.id ?? ""
                try state.delete(id, by: author)
                broadcast(.deleted(id))
                let stream = self.stream
                await persist("deletion") { try await $0.delete(id: id, stream: stream, at: t) }
            case "timeout":
                let user = command.user ?? ""
                let until = try state.timeOut(user, minutes: command.minutes ?? 0, by: author, now: t)
                reply(ChatEvent.notice(until == nil ? "\(user) may chat again" : "\(user) is timed out for \(command.minutes ?? 0) min").json)
                await persistStanding(of: user)
            case "ban", "unban":
                let user = command.user ?? ""
                try state.ban(user, command.type == "ban", by: author)
                reply(ChatEvent.notice(command.type == "ban" ? "\(user) is banned" : "\(user) is no longer banned").json)
                await persistStanding(of: user)
            case "slow":
                let seconds = command.seconds ?? 0
                try state.setSlowMode(seconds, by: author)
                broadcast(.slow(seconds))
                let stream = self.stream
                let followersOnly = state.followersOnly
                await persist("slow mode") { try await $0.setRules(stream: stream, slowSeconds: seconds, followersOnly: followersOnly) }
            case "followers":
                guard let on = command.on else { throw .badRequest("followers-only mode: send on: true or false") }
                try state.setFollowersOnly(on, by: author)
                broadcast(.followers(on))
                let (stream, slow) = (self.stream, state.slowSeconds)
                await persist("followers-only mode") { try await $0.setRules(stream: stream, slowSeconds: slow, followersOnly: on) }
            case "react":
                let counts = try state.react(command.reaction ?? "", by: author, now: t)
                broadcast(.reactions(counts))
            default:
                throw .badRequest("unknown command: send post, react, delete, timeout, ban, unban, slow or followers")
            }
        } catch {
            reply(ChatEvent.notice(error.description).json)
        }
    }

    private func persistStanding(of user: String) async {
        let stream = self.stream
        let banned = state.banned.contains(user)
        let until = state.timedOut[user]
        await persist("sanction") { try await $0.setSanction(stream: stream, account: user, banned: banned, timedOutUntil: until) }
    }

    /// A write that fails is logged: the room goes on (the live chat matters more than its replay).
    private func persist(_ what: String, _ write: @Sendable (ChatStore) async throws -> Void) async {
        guard let store else { return }
        do { try await write(store) } catch {
            logger.error("chat: not kept", metadata: ["what": "\(what)", "stream": "\(stream)", "error": "\(error)"])
        }
    }
}
