import CFFmpeg
import Dispatch
import Foundation
import Origin

/// One source access unit waiting for the transcoder thread.
struct SourceAccessUnit: Sendable {
    var data: [UInt8]
    var dts: Int64
    var pts: Int64
    var isKeyframe: Bool
}

/// The media work of one stream, run on the transcoder thread only: decode, then for each
/// rung scale and encode (rungs in parallel), forcing IDRs where the source has keyframes,
/// and shedding the highest rung when the work falls behind.
final class TranscodePipeline {
    private enum RungState {
        case pending            // encoder opens at the first decoded frame (needs the frame rate)
        case active(RungEncoder)
        case shed
        case closed             // flushed at finish
    }

    private struct Slot {
        let rung: LadderRung
        let width: Int
        let height: Int
        var state: RungState
        var statsIndex: Int
    }

    private let settings: TranscodeSettings
    private let stats: LockedStats
    private let decoder: H264Decoder?
    private let nalLengthSize: Int
    /// Highest rung first: shedding takes from the front.
    private var slots: [Slot]
    /// The source size the ladder was planned for.
    private var plannedSize: (Int, Int)
    private var policy: ShedPolicy
    /// After a decode error (and at the start) access units are skipped up to a keyframe.
    private var awaitingKeyframe = true
    /// The pts of the last keyframe given to the decoder: a damaged frame shown before it
    /// belongs to an earlier GOP (it came out late, reordered); it is dropped, but it does
    /// not stop the GOP now being decoded.
    private var lastKeyframePTS: Int64? = nil
    /// Source keyframe flags by pts, until the decoder puts that frame out.
    private var keyframeByPTS: [Int64: Bool] = [:]
    /// The pts of the keyframe the rungs' current segment starts with (`settings.keyframeInterval`).
    private var segmentKeyframePTS: Int64? = nil
    private var lastMediaMs: Int64? = nil
    /// The nominal frame rate the encoders are opened with (x264's zerolatency rate control
    /// needs it): from the SPS timing info, else from the first two frames.
    private var frameRate: AVRational? = nil
    /// The first decoded frame, kept while the frame rate is not known.
    private var heldFrame: (frame: UnsafeMutablePointer<AVFrame>, pts: Int64, keyframe: Bool)? = nil
    /// Test hook: act as if the SPS had no timing info.
    var trustsSignalledFrameRate = true
    /// The clock work time is measured with (nanoseconds). Tests inject one to make the
    /// measured encode speed, and so the speed policy, deterministic.
    var workClock: @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }
    private var lastDts: Int64? = nil
    private var mediaSeconds = 0.0
    private var busySeconds = 0.0

    init(settings: TranscodeSettings, sourceAVCC: [UInt8], sourceWidth: Int, sourceHeight: Int, stats: LockedStats) throws(TranscodeError) {
        self.settings = settings
        self.stats = stats
        let configuration = try AVCCRecord(parsing: sourceAVCC)
        nalLengthSize = configuration.nalUnitLengthSize
        policy = ShedPolicy(speedThreshold: settings.shedSpeedThreshold, windowSeconds: settings.speedWindowSeconds)

        plannedSize = (sourceWidth, sourceHeight)
        slots = Self.plan(settings: settings, width: sourceWidth, height: sourceHeight, stats: stats)
        guard avcodec_find_encoder_by_name("libx264") != nil else { throw .codecUnavailable("libx264") }
        // With no rung to make there is nothing to decode.
        decoder = slots.isEmpty ? nil : try H264Decoder(avcC: sourceAVCC)
    }

    /// The slots for a source size, highest rung first, and the stats rows for them.
    private static func plan(settings: TranscodeSettings, width: Int, height: Int, stats: LockedStats) -> [Slot] {
        let planned = settings.rungs
            .compactMap { rung in rung.outputSize(sourceWidth: width, sourceHeight: height).map { (rung, $0) } }
            .sorted { ($0.1.height, $0.0.videoBitrate) > ($1.1.height, $1.0.videoBitrate) }
        stats.update { s in
            s.rungs = planned.map { TranscodeStats.Rung(name: $0.0.name, width: $0.1.width, height: $0.1.height,
                                                         framesIn: 0, framesOut: 0, bytesOut: 0, isShed: false) }
        }
        return planned.enumerated().map { index, entry in
            Slot(rung: entry.0, width: entry.1.width, height: entry.1.height, state: .pending, statsIndex: index)
        }
    }

    /// Before the first encoder opens, trusts the decoded size over the announced one, so a
    /// wrong announcement can neither upscale nor distort.
    private func replanIfSourceSizeDiffers(_ frame: UnsafeMutablePointer<AVFrame>) {
        let size = (Int(frame.pointee.width), Int(frame.pointee.height))
        guard size != plannedSize, size.0 > 0, size.1 > 0,
              slots.allSatisfy({ if case .pending = $0.state { return true } else { return false } })
        else { return }
        plannedSize = size
        slots = Self.plan(settings: settings, width: size.0, height: size.1, stats: stats)
    }

    deinit {
        var held: UnsafeMutablePointer<AVFrame>? = heldFrame?.frame
        if held != nil { av_frame_free(&held) }
    }

    private var liveSlotCount: Int {
        slots.reduce(0) { n, slot in if case .shed = slot.state { return n } else { return n + 1 } }
    }

    /// Decodes and encodes one access unit, calling `emit` with what comes out.
    func process(_ unit: SourceAccessUnit, emit: (TranscodeOutput) -> Void) {
        guard let decoder, liveSlotCount > 0 else { return }
        let started = workClock()
        defer { account(unit: unit, startedNs: started, emit: emit) }

        if awaitingKeyframe {
            guard unit.isKeyframe else { stats.update { $0.framesSkippedCorrupt += 1 }; return }
            awaitingKeyframe = false
        }
        // Lengths that do not tile the access unit mean it is damaged: do not decode it.
        guard NALUnits.splitLengthPrefixed(unit.data, lengthSize: nalLengthSize) != nil else {
            decodeFailed()
            return
        }
        keyframeByPTS[unit.pts] = unit.isKeyframe
        if unit.isKeyframe { lastKeyframePTS = unit.pts }
        let damage = decoder.decode(unit.data, dts: unit.dts, pts: unit.pts) { frame in
            encode(frame, emit: emit)
        }
        guard !damage.isEmpty else { return }
        let current = damage.corruptPTS.filter { pts in lastKeyframePTS.map { pts >= $0 } ?? true }
        for pts in damage.corruptPTS { keyframeByPTS[pts] = nil }
        if damage.failed || !current.isEmpty {
            decodeFailed()
        } else {
            stats.update { $0.framesSkippedCorrupt += damage.corruptPTS.count }
        }
    }

    /// The input queue overflowed: shed a rung unless one was shed very recently.
    func queueOverflowed(emit: (TranscodeOutput) -> Void) {
        guard let reason = policy.queueOverflowed(mediaMs: lastMediaMs ?? 0) else { return }
        shedHighest(reason: reason, emit: emit)
    }

    /// Drains the decoder and the encoders and closes them.
    func finish(emit: (TranscodeOutput) -> Void) {
        if let decoder, liveSlotCount > 0 {
            decoder.flush { frame in encode(frame, emit: emit) }
        }
        if let held = heldFrame {  // a one-frame stream without timing info
            heldFrame = nil
            frameRate = AVRational(num: 30, den: 1)
            var heldPointer: UnsafeMutablePointer<AVFrame>? = held.frame
            encode(held.frame, pts: held.pts, keyframe: held.keyframe, emit: emit)
            av_frame_free(&heldPointer)
        }
        for index in slots.indices {
            if case .active(let encoder) = slots[index].state {
                emitFrames(encoder.flush(), slot: index, emit: emit)
            }
        }
        for index in slots.indices where !isShed(index) { slots[index].state = .closed }
        keyframeByPTS.removeAll()
    }

    private func isShed(_ index: Int) -> Bool {
        if case .shed = slots[index].state { return true }
        return false
    }

    private func decodeFailed() {
        awaitingKeyframe = true
        stats.update { $0.framesSkippedCorrupt += 1 }
    }

    private func encode(_ frame: UnsafeMutablePointer<AVFrame>, emit: (TranscodeOutput) -> Void) {
        stats.update { $0.framesDecoded += 1 }
        let pts = H264Decoder.pts(of: frame)
        let keyframe = keyframeByPTS[pts] ?? false
        // Frames come out in pts order: nothing at or before this pts is still to come.
        keyframeByPTS = keyframeByPTS.filter { $0.key > pts }

        if frameRate == nil {
            if trustsSignalledFrameRate, let signalled = decoder?.frameRate {
                frameRate = signalled
            } else if let held = heldFrame {
                // No timing in the SPS: take the rate from the first two frames' spacing.
                frameRate = Self.frameRate(forSpacingMs: pts - held.pts)
                heldFrame = nil
                var heldPointer: UnsafeMutablePointer<AVFrame>? = held.frame
                encode(held.frame, pts: held.pts, keyframe: held.keyframe, emit: emit)
                av_frame_free(&heldPointer)
            } else {
                heldFrame = av_frame_clone(frame).map { ($0, pts, keyframe) }
                return
            }
        }
        encode(frame, pts: pts, keyframe: keyframe, emit: emit)
    }

    /// Whether every rung encodes the frame at `pts` as an IDR: the source has a keyframe
    /// there, or a segment's worth of time (`keyframeInterval`, less half a frame: the
    /// packager's own rule for cutting a segment) has passed since the last keyframe that
    /// started one. Rungs therefore start segments on a grid of the segment target, aligned
    /// across the ladder, whatever the source's GOP.
    func keyframeDue(pts: Int64, sourceKeyframe: Bool) -> Bool {
        guard let interval = settings.keyframeInterval else { return sourceKeyframe }
        let rate = frameRate ?? AVRational(num: 30, den: 1)
        let halfFrameMs = 500 * Double(rate.den) / Double(max(rate.num, 1))
        let due = segmentKeyframePTS.map { Double(pts - $0) >= interval * 1000 - halfFrameMs } ?? true
        if due || segmentKeyframePTS.map({ pts < $0 }) == true { segmentKeyframePTS = pts }
        return due || sourceKeyframe
    }

    /// The nominal frame rate for a frame spacing in ms: a common rate within 3%, else 1000/spacing.
    static func frameRate(forSpacingMs spacing: Int64) -> AVRational {
        guard (3...1000).contains(spacing) else { return AVRational(num: 30, den: 1) }
        let fps = 1000 / Double(spacing)
        let common: [(Double, AVRational)] = [
            (24000.0 / 1001, AVRational(num: 24000, den: 1001)), (24, AVRational(num: 24, den: 1)),
            (25, AVRational(num: 25, den: 1)), (30000.0 / 1001, AVRational(num: 30000, den: 1001)),
            (30, AVRational(num: 30, den: 1)), (48, AVRational(num: 48, den: 1)), (50, AVRational(num: 50, den: 1)),
            (60000.0 / 1001, AVRational(num: 60000, den: 1001)), (60, AVRational(num: 60, den: 1)),
        ]
        if let nearest = common.min(by: { abs($0.0 - fps) < abs($1.0 - fps) }), abs(nearest.0 - fps) / nearest.0 < 0.03 {
            return nearest.1
        }
        return AVRational(num: 1000, den: Int32(spacing))
    }

    private func encode(_ frame: UnsafeMutablePointer<AVFrame>, pts: Int64, keyframe sourceKeyframe: Bool, emit: (TranscodeOutput) -> Void) {
        let keyframe = keyframeDue(pts: pts, sourceKeyframe: sourceKeyframe)
        replanIfSourceSizeDiffers(frame)
        openPendingEncoders(emit: emit)
        var active: [(slot: Int, encoder: RungEncoder)] = []
        for index in slots.indices {
            if case .active(let encoder) = slots[index].state { active.append((index, encoder)) }
        }
        guard !active.isEmpty else { return }

        var results = [Result<[EncodedVideoFrame], TranscodeError>](repeating: .success([]), count: active.count)
        results.withUnsafeMutableBufferPointer { buffer in
            let job = ParallelEncode(encoders: active.map(\.encoder), frame: frame, pts: pts, keyframe: keyframe, results: buffer)
            if active.count == 1 {
                job.run(0)
            } else {
                DispatchQueue.concurrentPerform(iterations: active.count) { job.run($0) }
            }
        }
        for (i, entry) in active.enumerated() {
            stats.update { $0.rungs[slots[entry.slot].statsIndex].framesIn += 1 }
            switch results[i] {
            case .success(let frames): emitFrames(frames, slot: entry.slot, emit: emit)
            case .failure(let error): shed(entry.slot, reason: "encoder failed: \(error)", emit: emit)
            }
        }
    }

    private func openPendingEncoders(emit: (TranscodeOutput) -> Void) {
        for index in slots.indices {
            guard case .pending = slots[index].state else { continue }
            let slot = slots[index]
            let frameRate = self.frameRate ?? AVRational(num: 30, den: 1)
            stats.update { $0.frameRate = Double(frameRate.num) / Double(frameRate.den) }
            do throws(TranscodeError) {
                let encoder = try RungEncoder(rung: slot.rung, width: slot.width, height: slot.height,
                                              settings: settings, frameRate: frameRate)
                slots[index].state = .active(encoder)
                emit(.config(rung: slot.rung.name, avcC: encoder.avcC, width: slot.width, height: slot.height))
            } catch {
                shed(index, reason: "encoder failed to open: \(error)", emit: emit)
            }
        }
    }

    private func emitFrames(_ frames: [EncodedVideoFrame], slot: Int, emit: (TranscodeOutput) -> Void) {
        guard !frames.isEmpty else { return }
        let bytes = frames.reduce(0) { $0 + $1.data.count }
        stats.update { s in
            s.rungs[slots[slot].statsIndex].framesOut += frames.count
            s.rungs[slots[slot].statsIndex].bytesOut += bytes
        }
        for frame in frames { emit(.frame(frame)) }
    }

    /// Sheds the highest rung still running, keeping the lowest one.
    private func shedHighest(reason: ShedPolicy.Reason, emit: (TranscodeOutput) -> Void) {
        guard liveSlotCount > 1, let index = slots.indices.first(where: { !isShed($0) }) else { return }
        policy.didShed(mediaMs: lastMediaMs ?? 0)
        shed(index, reason: reason.description, emit: emit)
    }

    private func shed(_ index: Int, reason: String, emit: (TranscodeOutput) -> Void) {
        if case .active(let encoder) = slots[index].state {
            emitFrames(encoder.flush(), slot: index, emit: emit)
        }
        slots[index].state = .shed
        let name = slots[index].rung.name
        stats.update { s in
            s.rungs[slots[index].statsIndex].isShed = true
            s.shedRungs.append(name)
        }
        emit(.shed(rung: name, reason: reason))
    }

    /// Books the work time and media time of one access unit and applies the speed policy.
    private func account(unit: SourceAccessUnit, startedNs: UInt64, emit: (TranscodeOutput) -> Void) {
        let now = workClock()
        let busy = Double(now >= startedNs ? now - startedNs : 0) / 1e9
        busySeconds += busy
        if let last = lastDts, unit.dts > last, unit.dts - last <= 10_000 {
            mediaSeconds += Double(unit.dts - last) / 1000
        }
        lastDts = unit.dts
        lastMediaMs = unit.dts
        let media = mediaSeconds, work = busySeconds
        stats.update { s in
            s.mediaSeconds = media
            s.busySeconds = work
            s.encoderSpeed = work > 0 ? media / work : 0
        }
        if let reason = policy.frameProcessed(mediaMs: unit.dts, busySeconds: busy) {
            shedHighest(reason: reason, emit: emit)
        }
    }
}

/// The encoding of one decoded frame by several rungs at once.
///
/// Unchecked: task `i` touches only `encoders[i]` and `results[i]` and reads the source
/// frame, which nobody writes while `concurrentPerform` runs.
private struct ParallelEncode: @unchecked Sendable {
    let encoders: [RungEncoder]
    let frame: UnsafeMutablePointer<AVFrame>
    let pts: Int64
    let keyframe: Bool
    let results: UnsafeMutableBufferPointer<Result<[EncodedVideoFrame], TranscodeError>>

    func run(_ i: Int) {
        do throws(TranscodeError) {
            results[i] = .success(try encoders[i].encode(frame, pts: pts, keyframe: keyframe))
        } catch {
            results[i] = .failure(error)
        }
    }
}

/// The stats shared between the submitting threads, the transcoder thread and readers.
final class LockedStats: @unchecked Sendable {
    private let lock = NSLock()
    private var value = TranscodeStats()

    func update(_ body: (inout TranscodeStats) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(&value)
    }

    var snapshot: TranscodeStats {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
