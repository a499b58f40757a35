// LadderTranscoder: what a live stream needs of the transcoder that makes its ladder. Origin
// packages what it is given and never links a codec; the `Transcode` target implements this
// with FFmpeg, and the node hands it in through `Transcoders`.

/// The running ladder of one publishing session. It takes the source's coded frames and
/// hands what it makes (`TranscodeOutput`, in order) to the callback it was made with, on a
/// thread of its own.
public protocol LadderTranscoder: AnyObject, Sendable {
    /// Queues one source access unit (length-prefixed NAL units, timestamps in ms). Returns
    /// false when it was dropped: the transcoder is behind and must not hold up the ingest.
    func submit(data: [UInt8], dts: Int64, pts: Int64, isKeyframe: Bool) -> Bool
    /// Transcodes what is queued, then stops. Blocks until done: call it on a thread of its
    /// own, never with the stream's lock held.
    func finish()
    /// Its counters so far (they have their own lock).
    var stats: TranscodeStats { get }
}
