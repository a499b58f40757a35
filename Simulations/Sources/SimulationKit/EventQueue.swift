// The simulator's single event queue: a binary min-heap keyed by (time, sequence number),
// so events at the same instant run in the order they were scheduled, on every run.

import Gossip

/// What happens at an instant of simulated time.
enum SimEvent {
    case datagram(to: Int, from: Int, messages: [GossipMessage])
    case fullState(to: Int, from: Int, state: GossipMessage.PushPull)
    case tick(node: Int, life: Int)
    case action(Int)
    case sample
}

/// Binary min-heap of events ordered by (time, sequence). The heap holds plain keys (no
/// reference counting while sifting); the events wait in slots beside it.
struct EventQueue {
    private struct Key {
        var time: Int64
        var seq: UInt64
        var slot: Int
        @inline(__always) func precedes(_ o: Key) -> Bool { time != o.time ? time < o.time : seq < o.seq }
    }

    private var heap: [Key] = []
    private var events: [SimEvent?] = []
    private var freeSlots: [Int] = []
    private var nextSeq: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int64? { heap.first?.time }

    mutating func push(_ event: SimEvent, at time: Int64) {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
            events[s] = event
        } else {
            slot = events.count
            events.append(event)
        }
        let key = Key(time: time, seq: nextSeq, slot: slot)
        nextSeq &+= 1
        heap.append(key)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard key.precedes(heap[parent]) else { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = key
    }

    mutating func pop() -> (time: Int64, event: SimEvent)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        let n = heap.count
        if n > 0 {
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                guard l < n else { break }
                let c = r < n && heap[r].precedes(heap[l]) ? r : l
                guard heap[c].precedes(last) else { break }
                heap[i] = heap[c]
                i = c
            }
            heap[i] = last
        }
        let event = events[top.slot].take()!
        freeSlots.append(top.slot)
        return (top.time, event)
    }
}
