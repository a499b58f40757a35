// Transcode: the per-stream ABR ladder of the origin. H.264 access units in (as
// RTMP/FLV carries them), decode (libavcodec) -> scale (libswscale) -> encode (libx264)
// per rung out, with IDRs exactly on the source keyframes and the source timestamps.
//
// Owns: StreamTranscoder (thread, bounded queue, back-pressure), TranscodePipeline (the
// codecs), ShedPolicy (when to give up a rung; pure), the avcC/NAL framing helpers.
// Must not touch: sockets, event loops, RTMP sessions, CMAF packaging, playlists. Its
// consumer gets `TranscodeOutput` values on the transcoder thread and hands them on.
// Needs the st_* helpers in Sources/CFFmpeg/shim.h.

import Foundation
import Origin

/// Transcodes one live stream into its ladder, on a thread of its own.
///
/// The RTMP session (an event loop) calls `submit` for each H.264 access unit as it
/// arrives; `submit` only queues and never blocks. When the bounded queue is full the unit
/// is dropped (`submit` returns false), so are the units after it up to the next keyframe
/// (the decoder could not use them), and the highest rung is shed. The transcoder thread
/// decodes, scales and encodes, and calls `output` in order, from that thread.
///
/// Every rung gets an IDR exactly on the source's keyframes and nowhere else, with the
/// source's timestamps, so segments and parts cut on keyframes line up across the ladder
/// and the passthrough.
///
/// The lowest rung is never shed for speed: past that point the queue drops input.
public final class StreamTranscoder: @unchecked Sendable {
    private let worker: Worker

    /// Rungs taller than the source are left out. Throws if the settings, the avcC or the
    /// source size are unusable or this FFmpeg has no libx264.
    public convenience init(
        settings: TranscodeSettings,
        sourceAVCC: [UInt8],
        sourceWidth: Int,
        sourceHeight: Int,
        output: @escaping @Sendable (TranscodeOutput) -> Void
    ) throws {
        try self.init(settings: settings, sourceAVCC: sourceAVCC, sourceWidth: sourceWidth,
                      sourceHeight: sourceHeight, trustsSignalledFrameRate: true, output: output)
    }

    /// `trustsSignalledFrameRate: false` is a test hook: ignore the SPS timing info.
    init(
        settings: TranscodeSettings,
        sourceAVCC: [UInt8],
        sourceWidth: Int,
        sourceHeight: Int,
        trustsSignalledFrameRate: Bool,
        workClock: (@Sendable () -> UInt64)? = nil,
        output: @escaping @Sendable (TranscodeOutput) -> Void
    ) throws {
        try settings.validate()
        guard sourceWidth > 0, sourceHeight > 0, sourceWidth <= 16384, sourceHeight <= 16384 else {
            throw TranscodeError.invalidSourceSize(width: sourceWidth, height: sourceHeight)
        }
        let stats = LockedStats()
        let pipeline = try TranscodePipeline(settings: settings, sourceAVCC: sourceAVCC,
                                             sourceWidth: sourceWidth, sourceHeight: sourceHeight, stats: stats)
        pipeline.trustsSignalledFrameRate = trustsSignalledFrameRate
        if let workClock { pipeline.workClock = workClock }
        worker = Worker(pipeline: pipeline, stats: stats, maxQueued: settings.maxQueuedFrames, output: output)
        worker.start()
    }

    deinit {
        worker.finish()
    }

    /// Queues one access unit (length-prefixed NAL units, as in FLV; timestamps in ms).
    /// Returns false when it was dropped. Never blocks on the transcoding work.
    @discardableResult
    public func submit(data: [UInt8], dts: Int64, pts: Int64, isKeyframe: Bool) -> Bool {
        worker.submit(SourceAccessUnit(data: data, dts: dts, pts: pts, isKeyframe: isKeyframe))
    }

    /// Transcodes what is queued, flushes the encoders and stops the thread; `output` has
    /// been called for everything by the time it returns. Later submits are dropped.
    /// Called from within `output` it only asks the thread to stop.
    public func finish() {
        worker.finish()
    }

    /// Test hook: the transcoder thread takes no more input until ``resumeWork()``, as if the
    /// encoder were stuck; `submit` must still answer at once.
    func holdWork() { worker.setHolding(true) }

    /// Test hook: ends ``holdWork()``.
    func resumeWork() { worker.setHolding(false) }

    /// Test hook: waits until the transcoder thread has processed everything queued.
    func waitUntilIdle() { worker.waitUntilIdle() }

    /// Counters so far.
    public var stats: TranscodeStats {
        worker.stats.snapshot
    }
}

/// The queue between submitters and the transcoder thread, and the thread itself.
private final class Worker: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [SourceAccessUnit] = []
    private var head = 0
    private var finishing = false
    private var finished = false
    private var droppingUntilKeyframe = false
    private var overflowed = false
    private var started = false
    private var holding = false
    private var processing = false
    /// The transcoder thread, to tell a finish() from inside `output` (no strong reference:
    /// the thread's closure holds this worker).
    private var workerThread: pthread_t?

    // Transcoder thread only:
    private let pipeline: TranscodePipeline
    private let output: @Sendable (TranscodeOutput) -> Void

    let stats: LockedStats
    private let maxQueued: Int

    init(pipeline: TranscodePipeline, stats: LockedStats, maxQueued: Int, output: @escaping @Sendable (TranscodeOutput) -> Void) {
        self.pipeline = pipeline
        self.stats = stats
        self.maxQueued = maxQueued
        self.output = output
    }

    func start() {
        let thread = Thread { [self] in
            condition.lock()
            workerThread = pthread_self()
            condition.unlock()
            run()
        }
        thread.name = "streamtube.transcode"
        thread.stackSize = 8 << 20
        condition.lock()
        started = true
        condition.unlock()
        thread.start()
    }

    func submit(_ unit: SourceAccessUnit) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let queued = queue.count - head
        let accept: Bool
        if finishing {
            accept = false
        } else if queued >= maxQueued {
            accept = false
            droppingUntilKeyframe = true
            overflowed = true
            condition.broadcast()
        } else if droppingUntilKeyframe && !unit.isKeyframe {
            accept = false
        } else {
            accept = true
        }
        guard accept else {
            stats.update { $0.framesDropped += 1 }
            return false
        }
        droppingUntilKeyframe = false
        if head > 0 && head >= queue.count / 2 {
            queue.removeFirst(head)
            head = 0
        }
        queue.append(unit)
        stats.update { $0.framesIn += 1 }
        condition.broadcast()
        return true
    }

    func finish() {
        condition.lock()
        finishing = true
        condition.broadcast()
        if let workerThread, pthread_equal(workerThread, pthread_self()) != 0 {
            condition.unlock()
            return
        }
        while !finished && started { condition.wait() }
        condition.unlock()
    }

    func setHolding(_ hold: Bool) {
        condition.lock()
        holding = hold
        condition.broadcast()
        condition.unlock()
    }

    func waitUntilIdle() {
        condition.lock()
        while (head < queue.count || processing || overflowed) && !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        let emit = output
        while true {
            condition.lock()
            while (head == queue.count && !finishing && !overflowed) || (holding && !finishing) { condition.wait() }
            let overflow = overflowed
            overflowed = false
            var unit: SourceAccessUnit? = nil
            if head < queue.count {
                unit = queue[head]
                queue[head] = SourceAccessUnit(data: [], dts: 0, pts: 0, isKeyframe: false)  // release the bytes
                head += 1
            }
            let stop = unit == nil && finishing
            processing = true
            condition.unlock()

            if let unit { pipeline.process(unit, emit: emit) }
            if overflow { pipeline.queueOverflowed(emit: emit) }
            condition.lock()
            processing = false
            condition.broadcast()
            condition.unlock()
            if stop { break }
        }
        pipeline.finish(emit: emit)
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
