// ChatSweep: now and then, this node's chat rooms that nobody is in leave memory, and rooms of
// streams another node owns now close (their viewers reconnect there). See `ChatRooms.sweep`.
import Chat
import ServiceLifecycle

struct ChatSweep: Service {
    let rooms: ChatRooms
    var every: Duration = .seconds(60)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: every)
            await rooms.sweep()
        }
    }
}
