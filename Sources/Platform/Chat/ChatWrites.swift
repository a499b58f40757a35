// ChatWrites: how a room's events reach the viewers' sockets. One event goes to thousands of
// connections at once; a task and an async write per connection cost more than the message
// itself. Each viewer's frames are instead queued on its channel's event loop, and one job per
// loop writes all that is queued, then flushes each channel once — no task per connection.
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Frames waiting for the channels of one event loop.
final class ChatLoopWrites: Sendable {
    private let loop: any EventLoop
    private let pending = NIOLockedValueBox<[(any Channel, String)]>([])

    private init(loop: any EventLoop) { self.loop = loop }

    private static let byLoop = NIOLockedValueBox<[ObjectIdentifier: ChatLoopWrites]>([:])

    /// The queue of `loop` (event loops live as long as the process).
    static func of(_ loop: any EventLoop) -> ChatLoopWrites {
        byLoop.withLockedValue { all in
            if let q = all[ObjectIdentifier(loop)] { return q }
            let q = ChatLoopWrites(loop: loop)
            all[ObjectIdentifier(loop)] = q
            return q
        }
    }

    /// Queues `text` as one WebSocket text frame to `channel` (whose loop this is).
    func send(_ text: String, to channel: any Channel) {
        let first = pending.withLockedValue { p in
            p.append((channel, text))
            return p.count == 1
        }
        if first { loop.execute { self.drain() } }
    }

    /// Writes what is queued, then flushes each channel once. A channel whose peer does not read
    /// (not writable: NIO's high-water mark) loses the frame rather than buffer without bound.
    private func drain() {
        let batch = pending.withLockedValue { p -> [(any Channel, String)] in
            defer { p.removeAll(keepingCapacity: true) }
            return p
        }
        var written: [ObjectIdentifier: any Channel] = [:]
        for (channel, text) in batch where channel.isActive {
            guard channel.isWritable else { continue }
            let frame = WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: text))
            channel.write(frame, promise: nil)
            written[ObjectIdentifier(channel)] = channel
        }
        for channel in written.values { channel.flush() }
    }
}
