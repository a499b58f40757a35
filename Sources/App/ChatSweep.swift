// ChatSweep: now and then, this node's chat rooms that nobody is in leave memory, and rooms of
// streams another node owns now close (their viewers reconnect there). See `ChatRooms.sweep`.
import Chat
import ServiceLifecycle

struct ChatSweep: Service {
    let rooms: ChatRooms
    var every: Duration = .seconds(60)

    func run() async throws {
        let every = self.every
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // The wait ends with a graceful shutdown: a node leaving must not wait a minute for it.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            await rooms.sweep()
        }
    }
}
