// ChatRooms: this node's rooms and links, by stream. The ring decides: the stream's owner
// holds its room; any other node opens one link to it (`ChatUplink`) shared by its viewers.
// When the owner changes (a failover, a node joining), the old room or link closes its viewers
// and they reconnect, to the room on its new node.
import Foundation
import Logging
import NIOSSL

/// Where a stream's room is, as the ring says now.
package enum ChatPlace: Sendable, Equatable {
    case here
    /// Another node, by its base URL (`http://host:port` or `https://…`).
    case node(String)
    /// No ring yet (the node is joining).
    case unknown
}

package actor ChatRooms {
    package let limits: ChatLimits
    private let store: ChatStore?
    private let place: @Sendable (String) -> ChatPlace
    /// A one-time cluster token for a link to `path` about the stream.
    private let token: @Sendable (_ stream: String, _ path: String) -> String
    private let tls: TLSConfiguration?
    private let liveSince: @Sendable (String) -> Double?
    /// Whether an account (second) follows the channel of the stream's (first) owner.
    private let follows: @Sendable (_ stream: String, _ account: String) async -> Bool
    private let logger: Logger
    private var rooms: [String: ChatRoom] = [:]
    private var uplinks: [String: (generation: Int, task: Task<ChatUplink, any Error>)] = [:]
    private var generation = 0

    package init(limits: ChatLimits = ChatLimits(), store: ChatStore?, place: @escaping @Sendable (String) -> ChatPlace,
                 token: @escaping @Sendable (String, String) -> String, tls: TLSConfiguration? = nil,
                 liveSince: @escaping @Sendable (String) -> Double? = { _ in nil },
                 follows: @escaping @Sendable (_ stream: String, _ account: String) async -> Bool = { _, _ in false }, logger: Logger) {
        self.limits = limits
        self.store = store
        self.place = place
        self.token = token
        self.tls = tls
        self.liveSince = liveSince
        self.follows = follows
        self.logger = logger
    }

    package static func linkPath(_ stream: String) -> String { "/internal/chat/\(stream)" }

    /// The room of `stream` for a viewer connected here: the room itself, or the link to it.
    package func handle(for stream: String) async throws -> any ChatRoomHandle {
        switch place(stream) {
        case .here:
            return await room(stream)
        case .unknown:
            throw ChatPlaceError.noRing
        case .node(let base):
            if let old = rooms.removeValue(forKey: stream) {
                await old.close(reason: "the chat moved to another node: reconnecting")
            }
            if let entry = uplinks[stream], let uplink = try? await entry.task.value { return uplink }
            generation += 1
            let g = generation
            let path = Self.linkPath(stream)
            let url = (base.hasPrefix("https://") ? "wss://" + base.dropFirst(8) : "ws://" + base.dropFirst(7)) + path
            let linkToken = self.token(stream, path)
            let (tls, logger) = (self.tls, self.logger)
            let task = Task {
                try await ChatUplink.open(stream: stream, url: url, token: linkToken, tls: tls, logger: logger) { [weak self] in
                    Task { await self?.forget(stream, generation: g) }
                }
            }
            uplinks[stream] = (g, task)
            do {
                return try await task.value
            } catch {
                forget(stream, generation: g)
                logger.info("chat: the room's node cannot be reached", metadata: ["stream": "\(stream)", "error": "\(error)"])
                throw error
            }
        }
    }

    /// A handle that turned out closed: forgotten, so that the next ask opens a new one.
    package func discard(_ stream: String, _ handle: any ChatRoomHandle) async {
        if let entry = uplinks[stream], let uplink = try? await entry.task.value, uplink === handle {
            uplinks[stream] = nil
        }
    }

    /// The room held here, when this node owns the stream (a relaying node's link asks).
    package func roomIfOwner(_ stream: String) async -> ChatRoom? {
        guard place(stream) == .here else { return nil }
        return await room(stream)
    }

    private func room(_ stream: String) async -> ChatRoom {
        if let room = rooms[stream] { return room }
        let (since, follows) = (liveSince, self.follows)
        let loaded = await ChatRoom.load(stream: stream, store: store, limits: limits, logger: logger, liveSince: { since(stream) },
                                         follows: { await follows(stream, $0) })
        if let raced = rooms[stream] { return raced }
        rooms[stream] = loaded
        return loaded
    }

    /// Run now and then (`App`): a room nobody was in over two sweeps leaves memory, and a room
    /// whose stream another node owns now (a node joined, the ring moved) closes its viewers, who
    /// reconnect to the room's new node. Returns how many rooms went.
    @discardableResult
    package func sweep() async -> Int {
        var gone = 0
        for (stream, room) in rooms {
            if case .node = place(stream) {
                await room.close(reason: "the chat moved to another node: reconnecting")
            } else if !(await room.closeIfIdle()) {
                continue
            }
            if rooms[stream] === room { rooms[stream] = nil }
            gone += 1
        }
        return gone
    }

    /// How many rooms this node holds (tests, metrics).
    package var roomCount: Int { rooms.count }

    private func forget(_ stream: String, generation g: Int) {
        if uplinks[stream]?.generation == g { uplinks[stream] = nil }
    }
}

package enum ChatPlaceError: Error, CustomStringConvertible {
    case noRing
    package var description: String { "this node does not know the cluster's ring yet" }
}
