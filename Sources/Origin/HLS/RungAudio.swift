// RungAudio: keeps a transcoded rung's audio in step with its video. The rung's video comes
// from the transcoder's thread later than the source audio arrives; the audio waits here
// until the rung's video has caught up with it, so the packager gets both in order.

/// The source audio a rung has not packaged yet, and how far the rung's video has come.
struct RungAudio {
    typealias Frame = (tag: FLVAudioTag, timestamp: UInt32)

    private(set) var pending: [Frame] = []
    /// The rung's first and last video timestamps this session (nil before its first frame).
    private(set) var firstVideoTimestamp: UInt32?
    private(set) var lastVideoTimestamp: UInt32?

    /// A new publishing session: nothing pending, no video yet.
    mutating func reset() {
        self = RungAudio()
    }

    /// The rung's packager starts again: the audio it held is dropped.
    mutating func dropPending() { pending = [] }

    mutating func append(_ frame: Frame) { pending.append(frame) }

    /// The rung's video reached `timestamp`. Its first frame starts its audio: it takes the
    /// source audio it has not missed (`recent`, from this moment on).
    mutating func videoReached(_ timestamp: UInt32, recent: [Frame]) {
        if firstVideoTimestamp == nil {
            firstVideoTimestamp = timestamp
            pending = recent.filter { $0.timestamp >= timestamp }
        }
        lastVideoTimestamp = timestamp
    }

    /// Takes out the audio the video has caught up with, in timestamp order.
    mutating func release() -> [Frame] {
        guard let upTo = lastVideoTimestamp else { return [] }
        let ready = pending.filter { $0.timestamp <= upTo }
        pending.removeAll { $0.timestamp <= upTo }
        return ready
    }
}
