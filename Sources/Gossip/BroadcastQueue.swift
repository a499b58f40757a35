// Updates waiting to be piggybacked. Each membership update (alive, suspect, dead) is sent a
// bounded number of times, `retransmitMult·⌈log10(N+1)⌉`, enough for an infection-style
// spread to reach every member with high probability. A newer update about a node replaces
// the older one, and the least-sent updates go first.

/// The transmit-limited queue of membership updates.
public struct BroadcastQueue: Hashable, Sendable {
    struct Item: Hashable, Sendable {
        var message: GossipMessage
        var size: Int
        var transmits: Int
        var order: UInt64
    }

    private var items: [NodeID: Item] = [:]
    private var nextOrder: UInt64 = 0

    public init() {}

    public var count: Int { items.count }
    public var isEmpty: Bool { items.isEmpty }

    /// Queued update about `node`, if any.
    public func pending(about node: NodeID) -> GossipMessage? { items[node]?.message }

    /// How often the update about `node` was sent so far.
    public func transmits(about node: NodeID) -> Int? { items[node]?.transmits }

    /// Queues an update about `node`, replacing any older update about it.
    public mutating func enqueue(_ message: GossipMessage, about node: NodeID) {
        items[node] = Item(message: message, size: MessageCodec.framedSize(message), transmits: 0, order: nextOrder)
        nextOrder += 1
    }

    /// Takes updates that fit in `budget` bytes (framed sizes), at most `maxCount`, least-sent
    /// and then newest first. Each one taken counts a transmission; those that reach `limit`
    /// leave the queue.
    public mutating func take(budget: Int, maxCount: Int, limit: Int) -> [GossipMessage] {
        guard budget > 0, maxCount > 0, !items.isEmpty else { return [] }
        let ordered = items.sorted { a, b in
            a.value.transmits != b.value.transmits ? a.value.transmits < b.value.transmits : a.value.order > b.value.order
        }
        var remaining = budget
        var taken: [GossipMessage] = []
        for (node, item) in ordered {
            if taken.count >= maxCount { break }
            guard item.size <= remaining else { continue }
            remaining -= item.size
            taken.append(item.message)
            let sent = item.transmits + 1
            if sent >= limit { items[node] = nil } else { items[node]?.transmits = sent }
        }
        return taken
    }

    /// Drops every queued update (used when a node is reaped).
    public mutating func remove(about node: NodeID) { items[node] = nil }
}
