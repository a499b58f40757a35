// ReplicaLink: a stream's replication, both ways. On its origin: where the batches of what
// this node makes are sent (the standby's sender). On a standby: which batch was applied
// last, so a lost or repeated one is refused and a snapshot asked for. And, on the origin, what
// waits for the standby's acknowledgement before players are shown it (replicate-before-announce).

/// The replication state of one stream on this node.
struct ReplicaLink {
    /// Origin side: the standby's sender, if the stream is replicated. It only queues.
    var sink: (@Sendable (ReplicaBatch) -> Void)?
    /// Origin side: the ordinal of the last batch handed to the sink (`ReplicaBatch.ordinal`).
    private(set) var made: UInt64 = 0
    /// Origin side: where renditions will be shown once the standby holds a batch, oldest first.
    var awaiting: [Awaiting] = []

    struct Awaiting {
        var ordinal: UInt64
        var rendition: String
        var position: MediaPosition
        /// When it was made (`LiveStream.clock()`).
        var madeAt: Double
    }
    /// Standby side: the epoch of the snapshot applied and the last batch since; no epoch
    /// when this node holds no replica of the stream.
    private(set) var epoch: UInt64?
    private(set) var sequence: UInt64 = 0

    var holdsReplica: Bool { epoch != nil }

    /// Takes a batch's place as the last applied: a snapshot starts an epoch; an incremental
    /// batch must follow the last one applied (same epoch, next sequence).
    mutating func accept(_ batch: ReplicaBatch) throws(ReplicaError) {
        if batch.snapshot {
            epoch = batch.epoch
        } else {
            guard epoch == batch.epoch, batch.sequence == sequence &+ 1 else {
                throw .outOfSequence(expected: epoch == batch.epoch ? sequence &+ 1 : nil, got: batch.sequence)
            }
        }
        sequence = batch.sequence
    }

    /// This node took the stream over: it holds no replica any more.
    mutating func stopHolding() { epoch = nil }

    /// Sends what a rendition just made to the standby, if there is one; returns the batch's ordinal.
    @discardableResult
    mutating func send(_ rendition: @autoclosure () -> ReplicaRendition, sessions: Int, order: [String], streamEpoch: StreamEpoch,
                       recordingStart: Int?) -> UInt64? {
        guard let sink else { return nil }
        var batch = ReplicaBatch(snapshot: false, sessions: sessions, order: order, renditions: [rendition()])
        batch.streamEpoch = streamEpoch
        batch.recordingStart = recordingStart
        made += 1
        batch.ordinal = made
        sink(batch)
        return made
    }

    /// Takes out what waits to be shown, from the oldest on, while `done` says so.
    mutating func takeAwaiting(while done: (Awaiting) -> Bool) -> [Awaiting] {
        let n = awaiting.prefix(while: done).count
        defer { awaiting.removeFirst(n) }
        return Array(awaiting.prefix(n))
    }
}
