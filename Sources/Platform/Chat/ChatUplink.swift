// ChatUplink: on a node that does not hold a stream's room, the one WebSocket to the room's
// node that carries every local viewer's commands there and the room's events back.
//
// A WebSocket rather than long polls: the room pushes each message as it is posted (no poll
// interval added to its delivery), one connection per node and room carries all of that
// node's viewers in both directions, and its closing is the signal that the room's node went
// away. It is opened with a one-time cluster token (purpose `chat`, scoped to the stream).
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOSSL

package actor ChatUplink: ChatRoomHandle {
    package let stream: String
    private var subscribers = ChatSubscribers()
    private var replies: [Int: @Sendable (String) -> Void] = [:]
    /// The link is going or gone (the last viewer left, or it broke).
    private var closed = false
    private let outgoing: AsyncStream<String>.Continuation
    private let onClose: @Sendable () -> Void

    private init(stream: String, outgoing: AsyncStream<String>.Continuation, onClose: @escaping @Sendable () -> Void) {
        self.stream = stream
        self.outgoing = outgoing
        self.onClose = onClose
    }

    /// Connects to the room's node; returns once the link is up, throws when it cannot be.
    /// `onClose` is called once when the link goes (the registry forgets it).
    package static func open(stream: String, url: String, token: String, tls: TLSConfiguration?, logger: Logger,
                             onClose: @escaping @Sendable () -> Void) async throws -> ChatUplink {
        let (frames, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(4096))
        let uplink = ChatUplink(stream: stream, outgoing: continuation, onClose: onClose)
        var headers = HTTPFields()
        headers[ChatGateway.clusterTokenHeader] = token
        let configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20, additionalHeaders: headers,
                                                         autoPing: .enabled(timePeriod: .seconds(5)))
        let opened = OpenSignal()
        Task {
            do {
                try await WebSocketClient.connect(url: url, configuration: configuration, tlsConfiguration: tls, logger: logger) {
                    inbound, outbound, _ in
                    opened.succeed()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await frame in frames { try await outbound.write(.text(frame)) }
                            try await outbound.close(.normalClosure, reason: nil)
                        }
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                if case .text(let text) = message { await uplink.received(text) }
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                opened.fail(ChatUnavailable.refused)
            } catch {
                logger.debug("chat: link to the room's node ended", metadata: ["stream": "\(stream)", "error": "\(error)"])
                opened.fail(error)
            }
            await uplink.lost()
        }
        try await opened.wait()
        return uplink
    }

    package func subscribe(_ sink: @escaping ChatSink) -> Int? {
        guard !closed else { return nil }
        return subscribers.add(sink)
    }

    package func unsubscribe(_ id: Int) {
        subscribers.remove(id)
        replies[id] = nil
        // The last viewer here left: the link goes (the next one opens another).
        if subscribers.sinks.isEmpty, !closed {
            closed = true
            outgoing.finish()
            onClose()
        }
    }

    package func submit(_ command: ChatCommand, from author: ChatAuthor?, conn: Int, reply: @escaping @Sendable (String) -> Void) {
        guard !closed else { return }
        replies[conn] = reply
        guard let data = try? JSONEncoder().encode(ChatRelayFrame(conn: String(conn), user: author, command: command)) else { return }
        outgoing.yield(String(decoding: data, as: UTF8.self))
    }

    private func received(_ text: String) {
        guard let (to, event) = ChatRelayEnvelope.open(text) else { return }
        if let to {
            if let conn = Int(to) { replies[conn]?(event) }
        } else {
            subscribers.send(.text(event))
        }
    }

    /// The room's node went away (or refused): every viewer here is closed and reconnects, to
    /// the room's next node.
    private func lost() {
        let wasOpen = !closed
        closed = true
        outgoing.finish()
        subscribers.close(reason: "the chat's node went away: reconnecting")
        replies = [:]
        if wasOpen { onClose() }
    }
}

package enum ChatUnavailable: Error, CustomStringConvertible {
    case refused
    package var description: String { "the room's node refused the link" }
}

/// Set once: the link opened, or why not.
private final class OpenSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Void, any Error>?
    private var waiter: CheckedContinuation<Void, any Error>?

    func succeed() { finish(.success(())) }
    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ r: Result<Void, any Error>) {
        lock.lock()
        guard result == nil else { lock.unlock(); return }
        result = r
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume(with: r)
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            lock.lock()
            if let result {
                lock.unlock()
                c.resume(with: result)
            } else {
                waiter = c
                lock.unlock()
            }
        }
    }
}
