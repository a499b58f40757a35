// RetentionSweep: which of a node's recording copies go, and why — a channel's rule (keep
// N days, or N bytes of its recordings, oldest first) and the node's byte budget for all its
// copies (oldest first). A value type without I/O: `RecordingSweeper` gathers the copies and
// deletes what it returns. The copy being recorded is never one of them. Every holder of a
// recording applies the same channel rule to its own copy, so a channel's rule removes the
// recording on both; the node budget is each node's own.
import Catalog
import Foundation

package struct RetentionSweep: Sendable {
    /// One copy on this node's disk.
    package struct Copy: Sendable, Equatable {
        package var id: String
        package var stream: String
        package var startedAt: Date
        package var bytes: Int
        /// Still being made here (or waiting out its reconnect grace): never removed.
        package var beingRecorded: Bool
    }

    /// Why a copy goes (the metric's label: `age`, `channel-bytes`, `node-budget`).
    package struct Removal: Sendable, Equatable {
        package var copy: Copy
        package var reason: String
        package var detail: String
    }

    /// The copies to remove, in the order found: each channel's rule first (its streams' copies,
    /// oldest first), then the node budget over what is left (oldest first). `channel`: a
    /// stream's channel and its rule (nil: the stream has none).
    package static func removals(copies: [Copy], channel: (String) -> (id: String, rule: ChannelRecording)?,
                                 maxBytes: Int?, now: Date) -> [Removal] {
        let oldestFirst = copies.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
        var out: [Removal] = []
        var gone = Set<String>()
        var byChannel: [String: (rule: ChannelRecording, copies: [Copy])] = [:]
        for c in oldestFirst {
            guard let ch = channel(c.stream), !ch.rule.keepsEverything else { continue }
            byChannel[ch.id, default: (ch.rule, [])].copies.append(c)
        }
        for (id, group) in byChannel.sorted(by: { $0.key < $1.key }) {
            if let days = group.rule.keepDays {
                let limit = now.addingTimeInterval(-Double(days) * 86_400)
                for c in group.copies where !c.beingRecorded && c.startedAt < limit {
                    out.append(Removal(copy: c, reason: "age", detail: "channel \(id) keeps \(days) days"))
                    gone.insert(c.id)
                }
            }
            if let keep = group.rule.keepBytes {
                var total = group.copies.filter { !gone.contains($0.id) }.reduce(0) { $0 + $1.bytes }
                for c in group.copies where total > keep && !c.beingRecorded && !gone.contains(c.id) {
                    out.append(Removal(copy: c, reason: "channel-bytes", detail: "channel \(id) keeps \(keep) bytes"))
                    gone.insert(c.id)
                    total -= c.bytes
                }
            }
        }
        if let maxBytes {
            var total = oldestFirst.filter { !gone.contains($0.id) }.reduce(0) { $0 + $1.bytes }
            for c in oldestFirst where total > maxBytes && !c.beingRecorded && !gone.contains(c.id) {
                out.append(Removal(copy: c, reason: "node-budget", detail: "the node keeps \(maxBytes) bytes of recordings"))
                gone.insert(c.id)
                total -= c.bytes
            }
        }
        return out
    }
}
