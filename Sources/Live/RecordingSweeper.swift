// RecordingSweeper: a service that, now and then, removes this node's recording copies that
// their channel's retention or the node's byte budget (`--recordings-max-bytes`) no longer
// keeps (`RetentionSweep` decides; `Recorder.deleteCopy` removes), logged and counted.
import Catalog
import Foundation
import Logging
import NodeMetrics
import ServiceLifecycle
import Synchronization

package final class RecordingSweeper: Service, Sendable {
    private let recorder: Recorder
    private let every: Duration
    /// The node's budget for its copies; nil: none.
    package let maxBytes: Int?
    private let held = Atomic<Int>(0)
    /// A pass is due before the period is over (a recording ended, a channel's rule changed).
    private let poked = Atomic<Bool>(false)
    /// A stream's channel and its rule (from the stream's record); nil: none.
    private let channel: @Sendable (String) -> (id: String, rule: ChannelRecording)?
    private let logger: Logger

    package init(recorder: Recorder, every: Duration = .seconds(60), maxBytes: Int?,
                 channel: @escaping @Sendable (String) -> (id: String, rule: ChannelRecording)?, logger: Logger) {
        self.recorder = recorder
        self.every = every
        self.maxBytes = maxBytes
        self.channel = channel
        self.logger = logger
    }

    /// The bytes of this node's copies as of the last pass.
    package var heldBytes: Int { held.load(ordering: .relaxed) }

    package func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await sweep()
            // Once a period, or within a second of being asked.
            var waited = Duration.zero
            while waited < every, !poked.exchange(false, ordering: .relaxed), !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: .seconds(1))
                waited += .seconds(1)
            }
        }
    }

    /// Asks for a pass now: a copy grew complete, or a rule changed.
    package func poke() { poked.store(true, ordering: .relaxed) }

    /// One pass: returns the copies removed.
    @discardableResult
    package func sweep(now: Date = Date()) async -> [RetentionSweep.Removal] {
        let copies = await recorder.copies()
        var total = copies.reduce(0) { $0 + $1.bytes }
        NodeMetrics.recordingBytesHeld.record(total)
        var removed: [RetentionSweep.Removal] = []
        for r in RetentionSweep.removals(copies: copies, channel: channel, maxBytes: maxBytes, now: now) {
            do {
                guard try await recorder.deleteCopy(id: r.copy.id) else { continue }
                removed.append(r)
                NodeMetrics.recordingsRemoved(reason: r.reason).increment()
                NodeMetrics.recordingBytesRemoved.increment(by: r.copy.bytes)
                logger.notice("recording copy removed by retention", metadata: [
                    "stream": "\(r.copy.stream)", "recording": "\(r.copy.id)", "reason": "\(r.reason)", "rule": "\(r.detail)",
                    "bytes": "\(r.copy.bytes)"])
            } catch {
                logger.warning("recording copy could not be removed", metadata: ["recording": "\(r.copy.id)", "error": "\(error)"])
            }
        }
        if !removed.isEmpty {
            total -= removed.reduce(0) { $0 + $1.copy.bytes }
            NodeMetrics.recordingBytesHeld.record(total)
        }
        held.store(total, ordering: .relaxed)
        return removed
    }
}
