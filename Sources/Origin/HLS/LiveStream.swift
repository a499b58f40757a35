// LiveStream: the live state of one stream on its origin — the packager, the segments and
// parts it made, and the viewers waiting for the next one (LL-HLS blocking requests).
// Thread-safe; the RTMP connection pushes media in, HTTP handlers read and wait.
import Foundation
import Synchronization

/// What a blocking request waits for.
public enum LiveTarget: Sendable, Equatable {
    /// Part `index` of segment `sequence`, or anything later.
    case part(sequence: Int, index: Int)
    /// Segment `sequence` complete, or anything later.
    case segment(sequence: Int)
}

/// A stream's live figures, for the API and metrics.
public struct LiveStreamStatus: Sendable, Equatable, Codable {
    public var state: String            // "offline" (never published), "live", "ended"
    public var publishing: Bool
    public var sessions: Int
    public var firstSequence: Int?
    public var lastSequence: Int?
    public var bytesIn: UInt64
    public var videoFrames: UInt64
    public var audioFrames: UInt64
    public var averageBandwidth: Int?
    public var peakBandwidth: Int?
    public var width: Int?
    public var height: Int?
    public var frameRate: Double?
    public var codecs: String?
}

public final class LiveStream: Sendable {
    public let id: String
    public let settings: PackagingSettings
    private let state: Mutex<State>

    struct Segment {
        var sequence: Int
        var parts: [PackagedPart]
        var complete: Bool
        var discontinuity: Bool
        var initVersion: Int
        var programDateTime: Date
        var bytes: [UInt8]?
        var duration: Double { parts.reduce(0) { $0 + $1.duration } }
    }

    struct Waiter {
        var target: LiveTarget
        var continuation: CheckedContinuation<Bool, Never>
    }

    struct State {
        var packager: LivePackager?
        var publishing = false
        var sessions = 0
        var inits: [Int: (bytes: [UInt8], tracks: [CMAFTrack])] = [:]
        var segments: [Segment] = []
        var discontinuitySequence = 0
        var maxSegmentDuration = 0.0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var bytesIn: UInt64 = 0
        var videoFrames: UInt64 = 0
        var audioFrames: UInt64 = 0
        var bandwidthBits = 0.0
        var bandwidthSeconds = 0.0
        var peakBandwidth = 0.0
        var nextSequence = 0
        var nextInitVersion = 0
        var timelineEnd: Double?

        var lastPart: (sequence: Int, index: Int)? {
            for s in segments.reversed() {
                if let p = s.parts.last { return (s.sequence, p.index) }
            }
            return nil
        }
        var lastCompleteSequence: Int? { segments.last { $0.complete }?.sequence }
        var ended: Bool { !publishing }

        func isSatisfied(_ target: LiveTarget) -> Bool {
            switch target {
            case .segment(let seq):
                guard let last = lastCompleteSequence else { return false }
                return last >= seq
            case .part(var seq, var index):
                // A part index past the end of a complete segment means the next segment's first part.
                if let s = segments.first(where: { $0.sequence == seq }), s.complete, index >= s.parts.count {
                    seq += 1
                    index = 0
                }
                guard let last = lastPart else { return false }
                return last.sequence > seq || (last.sequence == seq && last.index >= index)
            }
        }
    }

    public init(id: String, settings: PackagingSettings = .default) {
        self.id = id
        self.settings = settings
        self.state = Mutex(State())
    }

    // MARK: Publishing

    /// A publisher starts. A stream that was live before continues its playlist with a
    /// discontinuity, its sequence numbers and timeline always growing.
    public func beginPublishing() {
        state.withLock { s in
            s.packager = LivePackager(settings: settings, firstSequence: s.nextSequence,
                                      firstInitVersion: s.nextInitVersion, timelineStart: s.timelineEnd,
                                      discontinuity: s.sessions > 0)
            s.publishing = true
            s.sessions += 1
        }
    }

    public func ingest(video tag: FLVVideoTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        let isFrame: Bool
        if case .avcNALUs = tag.packet { isFrame = true } else { isFrame = false }
        try ingest(byteCount: byteCount, videoFrame: isFrame, audioFrame: false) { p throws(PackagingError) in
            try p.push(video: tag, timestamp: timestamp)
        }
    }

    public func ingest(audio tag: FLVAudioTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        let isFrame: Bool
        if case .aacRaw = tag.packet { isFrame = true } else { isFrame = false }
        try ingest(byteCount: byteCount, videoFrame: false, audioFrame: isFrame) { p throws(PackagingError) in
            try p.push(audio: tag, timestamp: timestamp)
        }
    }

    /// Runs one packager step under the lock and answers the viewers it satisfied.
    private func ingest(byteCount: Int, videoFrame: Bool, audioFrame: Bool,
                        _ push: (inout LivePackager) throws(PackagingError) -> [PackagerOutput]) throws(PackagingError) {
        let resumed = try state.withLock { s throws(PackagingError) -> [Waiter] in
            guard s.publishing, var p = s.packager else { return [] }
            s.bytesIn += UInt64(byteCount)
            if videoFrame { s.videoFrames += 1 }
            if audioFrame { s.audioFrames += 1 }
            let out = try push(&p)
            s.packager = p
            return apply(out, to: &s)
        }
        for w in resumed { w.continuation.resume(returning: true) }
    }

    /// The publisher is gone: flush, end the playlist, and answer every waiting viewer.
    public func endPublishing() {
        let (ready, rest) = state.withLock { s -> ([Waiter], [Waiter]) in
            guard s.publishing else { return ([], []) }
            var ready: [Waiter] = []
            if var p = s.packager {
                ready = apply(p.finish(), to: &s)
                s.timelineEnd = p.timelineEnd
                s.packager = nil
            }
            s.publishing = false
            let rest = Array(s.waiters.values)
            s.waiters.removeAll()
            return (ready, rest)
        }
        for w in ready { w.continuation.resume(returning: true) }
        for w in rest { w.continuation.resume(returning: false) }
    }

    /// Applies packager output to the state; returns the waiters now satisfied.
    private func apply(_ outputs: [PackagerOutput], to s: inout State) -> [Waiter] {
        guard !outputs.isEmpty else { return [] }
        for o in outputs {
            switch o {
            case .initSegment(let version, let bytes, let tracks):
                s.inits[version] = (bytes, tracks)
                s.nextInitVersion = version + 1
            case .segmentStarted(let seq, let discontinuity, let initVersion):
                s.segments.append(Segment(sequence: seq, parts: [], complete: false, discontinuity: discontinuity,
                                          initVersion: initVersion, programDateTime: Date()))
                s.nextSequence = seq + 1
            case .part(let part):
                if let i = s.segments.lastIndex(where: { $0.sequence == part.segment }) {
                    s.segments[i].parts.append(part)
                    if s.segments[i].parts.count == 1 {
                        // The segment's wall-clock time is when its first media was packaged,
                        // less the part's own duration.
                        s.segments[i].programDateTime = Date().addingTimeInterval(-part.duration)
                    }
                }
            case .segmentEnded(let seq):
                if let i = s.segments.lastIndex(where: { $0.sequence == seq }) {
                    if s.segments[i].parts.isEmpty {
                        s.segments.remove(at: i)
                    } else {
                        s.segments[i].complete = true
                        s.segments[i].bytes = s.segments[i].parts.flatMap(\.bytes)
                        let d = s.segments[i].duration
                        s.maxSegmentDuration = max(s.maxSegmentDuration, d)
                        let bits = Double(s.segments[i].bytes!.count * 8)
                        s.bandwidthBits += bits
                        s.bandwidthSeconds += d
                        if d > 0.2 { s.peakBandwidth = max(s.peakBandwidth, bits / d) }
                    }
                }
                trim(&s)
            }
        }
        var ready: [Waiter] = []
        for (id, w) in s.waiters where s.isSatisfied(w.target) {
            ready.append(w)
            s.waiters[id] = nil
        }
        return ready
    }

    /// Keeps the live window plus a margin for slow players; drops the parts of old segments.
    private func trim(_ s: inout State) {
        let keep = settings.windowSegments + 6
        let complete = s.segments.filter(\.complete).count
        if complete > keep {
            let drop = complete - keep
            var dropped = 0
            while dropped < drop, let first = s.segments.first, first.complete {
                if s.segments.removeFirst().discontinuity { s.discontinuitySequence += 1 }
                dropped += 1
            }
        }
        // Parts are only listed near the live edge; keep them a little longer than that.
        let keepPartsFor = Int((Double(targetDuration(s)) * 3 / settings.segmentTarget).rounded(.up)) + 3
        if s.segments.count > keepPartsFor {
            for i in 0..<(s.segments.count - keepPartsFor) where s.segments[i].complete {
                for j in s.segments[i].parts.indices { s.segments[i].parts[j].bytes = [] }
            }
        }
        let usedInits = Set(s.segments.map(\.initVersion))
        for v in s.inits.keys where !usedInits.contains(v) && v < s.nextInitVersion - 1 { s.inits[v] = nil }
    }

    private func targetDuration(_ s: State) -> Int {
        Int(max(settings.segmentTarget, s.maxSegmentDuration).rounded(.up))
    }

    // MARK: Reading

    public var status: LiveStreamStatus {
        state.withLock { s in
            let video = currentVideoConfig(s)
            let st = s.publishing ? "live" : (s.sessions > 0 ? "ended" : "offline")
            return LiveStreamStatus(
                state: st, publishing: s.publishing, sessions: s.sessions,
                firstSequence: s.segments.first?.sequence, lastSequence: s.segments.last?.sequence,
                bytesIn: s.bytesIn, videoFrames: s.videoFrames, audioFrames: s.audioFrames,
                averageBandwidth: s.bandwidthSeconds > 0 ? Int(s.bandwidthBits / s.bandwidthSeconds) : nil,
                peakBandwidth: s.peakBandwidth > 0 ? Int(s.peakBandwidth) : nil,
                width: video?.width, height: video?.height, frameRate: video?.frameRate,
                codecs: codecs(s))
        }
    }

    private func currentVideoConfig(_ s: State) -> AVCDecoderConfiguration? {
        s.inits[s.nextInitVersion - 1]?.tracks.lazy.compactMap { t -> AVCDecoderConfiguration? in
            if case .avc(let c) = t.format { return c } else { return nil }
        }.first
    }

    private func codecs(_ s: State) -> String? {
        guard let tracks = s.inits[s.nextInitVersion - 1]?.tracks else { return nil }
        return tracks.map(\.format.codecString).joined(separator: ",")
    }

    /// True once a first complete segment exists: the stream can be played.
    public var isPlayable: Bool { state.withLock { $0.lastCompleteSequence != nil } }

    /// The media playlist as it stands.
    public func mediaPlaylist(skip: Bool = false) -> String? {
        state.withLock { s in
            guard s.lastCompleteSequence != nil else { return nil }
            let target = targetDuration(s)
            // The live window: the last `windowSegments` complete segments and the growing one.
            var listed = s.segments
            let complete = listed.filter(\.complete).count
            var discontinuities = s.discontinuitySequence
            if complete > settings.windowSegments {
                let drop = complete - settings.windowSegments
                discontinuities += listed.prefix(drop).filter(\.discontinuity).count
                listed.removeFirst(drop)
            }
            let playlist = MediaPlaylist(
                partTarget: settings.partTarget, targetDuration: target,
                segments: listed.map { seg in
                    PlaylistSegment(sequence: seg.sequence,
                                    parts: seg.parts.map { PlaylistPart(index: $0.index, duration: $0.duration, independent: $0.independent) },
                                    duration: seg.duration, complete: seg.complete, discontinuity: seg.discontinuity,
                                    initVersion: seg.initVersion, programDateTime: seg.programDateTime)
                },
                ended: !s.publishing, discontinuitySequence: discontinuities)
            return playlist.render(skipOlderThan: skip ? Double(target) * 6 : nil)
        }
    }

    /// Whether a blocking request for `target` is reasonable: at most two segments ahead.
    public func isWithinReach(_ target: LiveTarget) -> Bool {
        state.withLock { s in
            let next = s.segments.last.map { $0.complete ? $0.sequence + 1 : $0.sequence } ?? s.nextSequence
            switch target {
            case .part(let seq, _), .segment(let seq): return seq <= next + 2
            }
        }
    }

    public func initSegment(version: Int) -> [UInt8]? { state.withLock { $0.inits[version]?.bytes } }

    public func segment(sequence: Int) -> [UInt8]? {
        state.withLock { s in s.segments.first { $0.sequence == sequence && $0.complete }?.bytes }
    }

    public func part(sequence: Int, index: Int) -> [UInt8]? {
        state.withLock { s in
            guard let seg = s.segments.first(where: { $0.sequence == sequence }),
                  index < seg.parts.count, !seg.parts[index].bytes.isEmpty else { return nil }
            return seg.parts[index].bytes
        }
    }

    /// Master playlist figures: the one passthrough rendition as it is.
    public var rendition: (bandwidth: Int, averageBandwidth: Int, width: Int?, height: Int?, frameRate: Double?, codecs: String)? {
        state.withLock { s in
            guard s.lastCompleteSequence != nil, let codecs = codecs(s) else { return nil }
            let video = currentVideoConfig(s)
            let avg = s.bandwidthSeconds > 0 ? s.bandwidthBits / s.bandwidthSeconds : 1_000_000
            let peak = max(s.peakBandwidth, avg)
            // Frame rate from the SPS if it says, else from the frames counted over the media.
            var fps = video?.frameRate
            if fps == nil, s.bandwidthSeconds > 0, s.videoFrames > 0 {
                fps = (Double(s.videoFrames) / max(s.bandwidthSeconds, 1)).rounded()
            }
            return (Int(peak), Int(avg), video?.width, video?.height, fps, codecs)
        }
    }

    /// Waits until `target` exists, the stream ends, or `timeout` passes.
    /// Returns true when the target exists.
    public func wait(for target: LiveTarget, timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { s in
            if s.isSatisfied(target) || !s.publishing { return nil }
            s.nextWaiter += 1
            return s.nextWaiter
        }
        guard let id else { return state.withLock { $0.isSatisfied(target) } }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.cancelWaiter(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { s in
                    if s.isSatisfied(target) { return true }
                    if !s.publishing { return false }
                    s.waiters[id] = Waiter(target: target, continuation: c)
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            self.cancelWaiter(id)
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        let w = state.withLock { s -> Waiter? in s.waiters.removeValue(forKey: id) }
        w?.continuation.resume(returning: false)
    }

    public var waiterCount: Int { state.withLock { $0.waiters.count } }
}
