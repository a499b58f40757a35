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

/// Binary min-heap of events ordered by (time, sequence).
struct EventQueue {
    private struct Entry {
        var time: Int64
        var seq: UInt64
        var event: SimEvent
        @inline(__always) func precedes(_ o: Entry) -> Bool { time != o.time ? time < o.time : seq < o.seq }
    }

    private var heap: [Entry] = []
    private var nextSeq: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int64? { heap.first?.time }

    mutating func push(_ event: SimEvent, at time: Int64) {
        heap.append(Entry(time: time, seq: nextSeq, event: event))
        nextSeq &+= 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: Int64, event: SimEvent)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n, heap[l].precedes(heap[m]) { m = l }
            if r < n, heap[r].precedes(heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }
}
