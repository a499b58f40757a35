// LiveStream: the live state of one stream on its origin — one packager per rendition
// (the source passed through, plus the transcoded ladder), the segments and parts they
// made, the stream's health figures, and the viewers waiting for the next part (LL-HLS
// blocking requests). Thread-safe: the RTMP connection pushes media in, the transcoder's
// thread pushes its rungs in, HTTP handlers read and wait.
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
    public var state: LiveStreamState
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
    public var renditions: [String]
}

/// A rendition as the master playlist lists it.
public struct RenditionInfo: Sendable, Equatable {
    public var name: String
    public var bandwidth: Int
    public var averageBandwidth: Int
    public var width: Int?
    public var height: Int?
    public var frameRate: Double?
    public var codecs: String
}

/// Health of a live stream: what the broadcaster sends and what the origin makes of it.
public struct StreamHealth: Sendable, Equatable, Codable {
    public struct Output: Sendable, Equatable, Codable {
        public var rendition: String
        public var width: Int?
        public var height: Int?
        /// Bits per second over the segments made so far, and over the last one.
        public var averageBitrate: Int?
        public var lastSegmentBitrate: Int?
        public var shed: Bool
    }
    public var state: LiveStreamState
    /// Over the last five seconds of input.
    public var inputBitrate: Int
    public var frameRate: Double
    /// Time between the last two keyframes, in seconds.
    public var keyframeInterval: Double?
    /// Last video timestamp minus last audio timestamp, in milliseconds.
    public var audioVideoDriftMs: Int?
    /// Frames the transcoder dropped or skipped as corrupt.
    public var droppedFrames: Int
    /// Media seconds transcoded per second of work (1.0 = just real time); nil without a ladder.
    public var encoderSpeed: Double?
    public var shedRenditions: [String]
    public var outputs: [Output]
}

/// Something an operator wants to know: the node logs it and counts it.
public enum LiveStreamEvent: Sendable, Equatable {
    case transcodeStarted(rungs: [String])
    case renditionShed(rendition: String, reason: String)
    case transcodeFailed(reason: String)
}

public final class LiveStream: Sendable {
    public static let sourceRendition = "source"

    public let id: String
    public let settings: PackagingSettings
    public let ladder: TranscodeSettings?
    private let onEvent: @Sendable (LiveStreamEvent) -> Void
    private let state: Mutex<State>

    struct Segment: Sendable, Equatable {
        var sequence: Int
        var parts: [PackagedPart]
        var complete: Bool
        var discontinuity: Bool
        var initVersion: Int
        var programDateTime: Date
        var bytes: [UInt8]?
        var duration: Double { parts.reduce(0) { $0 + $1.duration } }
    }

    /// One rendition: its packager and everything it made.
    struct Rendition {
        var name: String
        var packager: LivePackager?
        var inits: [Int: (bytes: [UInt8], tracks: [CMAFTrack])] = [:]
        var segments: [Segment] = []
        var discontinuitySequence = 0
        var maxSegmentDuration = 0.0
        var bandwidthBits = 0.0
        var bandwidthSeconds = 0.0
        var peakBandwidth = 0.0
        var lastSegmentBitrate: Double?
        var nextSequence = 0
        var nextInitVersion = 0
        var timelineEnd: Double?
        var shed = false
        /// Held as a standby's replica: the origin says it is still being made.
        var replicaLive = false
        /// End of the last part's media (seconds on the output timeline).
        var partEnd: Double?
        /// Audio waiting for this rung's video to catch up (transcoded rungs only).
        var pendingAudio: [(tag: FLVAudioTag, timestamp: UInt32)] = []
        var lastVideoTimestamp: UInt32?
        var firstVideoTimestamp: UInt32?
        var session = 0

        var live: Bool { packager != nil || replicaLive }

        var lastPart: (sequence: Int, index: Int)? {
            for s in segments.reversed() {
                if let p = s.parts.last { return (s.sequence, p.index) }
            }
            return nil
        }
        var lastCompleteSequence: Int? { segments.last { $0.complete }?.sequence }

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

        var videoConfig: AVCDecoderConfiguration? {
            inits[nextInitVersion - 1]?.tracks.lazy.compactMap { t -> AVCDecoderConfiguration? in
                if case .avc(let c) = t.format { return c } else { return nil }
            }.first
        }

        var codecs: String? {
            inits[nextInitVersion - 1].map { $0.tracks.map(\.format.codecString).joined(separator: ",") }
        }
    }

    struct Waiter {
        var rendition: String
        var target: LiveTarget
        var continuation: CheckedContinuation<Bool, Never>
    }

    struct State {
        var renditions: [String: Rendition] = [:]
        /// Source first, then the rungs from the top of the ladder down.
        var order: [String] = []
        var publishing = false
        var sessions = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var bytesIn: UInt64 = 0
        var videoFrames: UInt64 = 0
        var audioFrames: UInt64 = 0
        var transcoder: StreamTranscoder?
        /// Non-AAC audio in: its AAC encoder, and where its output timeline starts.
        var audioTranscoder: AudioTranscoder?
        var audioTranscodeBase: (timestamp: UInt32, samples: Int64)?
        /// Source frames dropped as malformed this session (up to the next keyframe each time).
        var sourceCorruptFrames = 0
        var transcoderStats: TranscodeStats?
        var sourceConfig: AVCDecoderConfiguration?
        var audioHeader: (tag: FLVAudioTag, timestamp: UInt32)?
        /// Recent source audio, handed to a rung that starts after it arrived.
        var recentAudio: [(tag: FLVAudioTag, timestamp: UInt32)] = []
        // Health over a sliding window of input.
        var inputWindow: [(at: Double, bytes: Int)] = []
        var frameWindow: [Double] = []
        var keyframeTimestamps: [UInt32] = []
        var lastVideoTimestamp: UInt32?
        var lastAudioTimestamp: UInt32?
        /// Where this session's media starts: rungs that appear during it start here too.
        var sessionFirstSequence = 0
        var sessionTimelineStart: Double?
        /// Where what this node makes is replicated to (its standby), if anywhere.
        var sink: (@Sendable (ReplicaBatch) -> Void)?
        /// The replica epoch and the last batch applied (standby side).
        var replicaEpoch: UInt64?
        var replicaSequence: UInt64 = 0

        var source: Rendition? { renditions[LiveStream.sourceRendition] }
    }

    public init(id: String, settings: PackagingSettings = .default, ladder: TranscodeSettings? = nil,
                onEvent: @escaping @Sendable (LiveStreamEvent) -> Void = { _ in }) {
        self.id = id
        self.settings = settings
        self.ladder = ladder.flatMap { $0.rungs.isEmpty ? nil : $0 }
        self.onEvent = onEvent
        var s = State()
        s.renditions[Self.sourceRendition] = Rendition(name: Self.sourceRendition)
        s.order = [Self.sourceRendition]
        self.state = Mutex(s)
    }

    // MARK: Publishing

    /// A publisher starts. A stream that was live before continues its playlists with a
    /// discontinuity, their sequence numbers and timeline always growing.
    public func beginPublishing() {
        let resumed = state.withLock { s -> [Waiter] in
            let ready = promoteReplica(&s)
            s.sessions += 1
            s.publishing = true
            s.sourceConfig = nil
            s.audioHeader = nil
            s.audioTranscoder = nil
            s.audioTranscodeBase = nil
            s.sourceCorruptFrames = 0
            s.recentAudio = []
            s.keyframeTimestamps = []
            // Every rendition continues from the same sequence number and time, so they stay aligned.
            let next = s.renditions.values.map(\.nextSequence).max() ?? 0
            let timeline = s.source.flatMap { r in [r.timelineEnd, r.partEnd].compactMap { $0 }.max() }
            s.sessionFirstSequence = next
            s.sessionTimelineStart = timeline
            for name in s.order {
                guard var r = s.renditions[name] else { continue }
                r.nextSequence = next
                r.timelineEnd = timeline
                r.pendingAudio = []
                r.lastVideoTimestamp = nil
                r.firstVideoTimestamp = nil
                if name == Self.sourceRendition {
                    r.packager = makePackager(for: r, discontinuity: s.sessions > 1)
                    r.session = s.sessions
                }
                s.renditions[name] = r
            }
            return ready
        }
        resume(resumed)
    }

    /// A standby takes the stream over: what the old origin left unfinished ends here (its
    /// last segment is completed with the parts it announced), and nothing is a replica any more.
    private func promoteReplica(_ s: inout State) -> [Waiter] {
        var ready: [Waiter] = []
        for name in s.order {
            guard var r = s.renditions[name], r.packager == nil else { continue }
            let wasReplica = r.replicaLive
            r.replicaLive = false
            r.timelineEnd = [r.timelineEnd, r.partEnd].compactMap { $0 }.max()
            s.renditions[name] = r
            if wasReplica, let last = r.segments.last, !last.complete {
                if last.parts.isEmpty {
                    // Begun but nothing in it yet: it never happened, and its number is free again.
                    s.renditions[name]!.segments.removeLast()
                    s.renditions[name]!.nextSequence = last.sequence
                } else {
                    ready += apply([.segmentEnded(sequence: last.sequence)], to: &s, rendition: name, replicate: false)
                }
            }
        }
        s.replicaEpoch = nil
        return ready
    }

    private func makePackager(for r: Rendition, discontinuity: Bool) -> LivePackager {
        LivePackager(settings: settings, firstSequence: r.nextSequence, firstInitVersion: r.nextInitVersion,
                     timelineStart: r.timelineEnd, discontinuity: discontinuity)
    }

    public func ingest(video tag: FLVVideoTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        var startTranscoder: (AVCDecoderConfiguration, [UInt8])?
        let resumed = try state.withLock { s throws(PackagingError) -> [Waiter] in
            guard s.publishing else { return [] }
            noteInput(&s, bytes: byteCount)
            switch tag.packet {
            case .avcNALUs(let data, let cts):
                s.videoFrames += 1
                s.frameWindow.append(Self.clock())
                s.lastVideoTimestamp = timestamp
                if tag.isKeyframe {
                    s.keyframeTimestamps.append(timestamp)
                    if s.keyframeTimestamps.count > 2 { s.keyframeTimestamps.removeFirst() }
                }
                if let t = s.transcoder {
                    _ = t.submit(data: data, dts: Int64(timestamp), pts: Int64(timestamp) + Int64(cts), isKeyframe: tag.isKeyframe)
                } else if s.sourceConfig == nil, tag.isKeyframe, let record = LivePackager.recordFromInBandParameterSets(data),
                          let config = try? AVCDecoderConfiguration(record: record) {
                    // Parameter sets in band only: the ladder starts from those (at the next keyframe).
                    s.sourceConfig = config
                    startTranscoder = (config, record)
                }
            case .avcSequenceHeader(let record):
                if let config = try? AVCDecoderConfiguration(record: record), s.sourceConfig?.record != record {
                    s.sourceConfig = config
                    startTranscoder = (config, record)
                }

            default:
                break
            }
            let ready = try push(&s, rendition: Self.sourceRendition) { p throws(PackagingError) in
                try p.push(video: tag, timestamp: timestamp)
            }
            s.sourceCorruptFrames = s.renditions[Self.sourceRendition]?.packager?.droppedCorruptFrames ?? s.sourceCorruptFrames
            return ready
        }
        resume(resumed)
        if let (config, record) = startTranscoder { startLadder(config: config, record: record) }
    }

    public func ingest(audio tag: FLVAudioTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        let resumed = try state.withLock { s throws(PackagingError) -> [Waiter] in
            guard s.publishing else { return [] }
            noteInput(&s, bytes: byteCount)
            guard tag.soundFormat != 10 else { return try ingestAAC(&s, tag, timestamp) }
            // Audio that is not AAC is transcoded to AAC, so every rendition carries AAC.
            guard case .other(let payload) = tag.packet else { return [] }
            if s.audioTranscoder == nil {
                let t: AudioTranscoder
                do {
                    t = try AudioTranscoder(soundFormat: tag.soundFormat, sampleRate: tag.sampleRate,
                                            channels: Int(tag.channels), sampleSize: Int(tag.soundSize))
                } catch {
                    throw .unsupportedAudioCodec(tag.soundFormat)
                }
                s.audioTranscoder = t
                s.audioTranscodeBase = (timestamp, 0)
                let header = FLVAudioTag(soundFormat: 10, soundRate: 3, soundSize: 16, channels: 2,
                                         packet: .aacSequenceHeader(t.audioSpecificConfig))
                _ = try ingestAAC(&s, header, timestamp)
            }
            guard let t = s.audioTranscoder, var base = s.audioTranscodeBase else { return [] }
            var ready: [Waiter] = []
            for frame in t.push(payload) {
                let ts = base.timestamp &+ UInt32(truncatingIfNeeded: base.samples * 1000 / Int64(t.outputSampleRate))
                base.samples += 1024
                let aac = FLVAudioTag(soundFormat: 10, soundRate: 3, soundSize: 16, channels: 2, packet: .aacRaw(frame))
                ready += try ingestAAC(&s, aac, ts)
            }
            s.audioTranscodeBase = base
            return ready
        }
        resume(resumed)
    }

    /// AAC into the source rendition and, once their video catches up, the rungs.
    private func ingestAAC(_ s: inout State, _ tag: FLVAudioTag, _ timestamp: UInt32) throws(PackagingError) -> [Waiter] {
        var ready = try push(&s, rendition: Self.sourceRendition) { p throws(PackagingError) in
            try p.push(audio: tag, timestamp: timestamp)
        }
        switch tag.packet {
        case .aacSequenceHeader:
            s.audioHeader = (tag, timestamp)
        case .aacRaw:
            s.audioFrames += 1
            s.lastAudioTimestamp = timestamp
            s.recentAudio.append((tag, timestamp))
            if s.recentAudio.count > 500 { s.recentAudio.removeFirst(s.recentAudio.count - 500) }
            // The rungs get the same audio once their video has caught up with it.
            for name in s.order where name != Self.sourceRendition {
                guard s.renditions[name]?.live == true else { continue }
                s.renditions[name]!.pendingAudio.append((tag, timestamp))
                ready += releaseAudio(&s, rendition: name)
            }
        case .other:
            break
        }
        return ready
    }

    /// The publisher is gone: flush the source, end its playlist, and answer its viewers.
    /// The transcoder drains on its own thread; the rungs end when it has.
    public func endPublishing() {
        let (resumed, transcoder, session) = state.withLock { s -> ([(Waiter, Bool)], StreamTranscoder?, Int) in
            guard s.publishing else { return ([], nil, s.sessions) }
            s.publishing = false
            var out = finish(&s, rendition: Self.sourceRendition)
            let t = s.transcoder
            s.transcoder = nil
            if t == nil {
                for name in s.order where name != Self.sourceRendition { out += finish(&s, rendition: name) }
            }
            return (out, t, s.sessions)
        }
        for (w, ok) in resumed { w.continuation.resume(returning: ok) }
        if let transcoder {
            Thread.detachNewThread {
                transcoder.finish()
                let (rest, stats) = self.state.withLock { s -> ([(Waiter, Bool)], TranscodeStats) in
                    s.transcoderStats = transcoder.stats
                    guard s.sessions == session else { return ([], transcoder.stats) }
                    var out: [(Waiter, Bool)] = []
                    for name in s.order where name != Self.sourceRendition { out += self.finish(&s, rendition: name) }
                    return (out, transcoder.stats)
                }
                _ = stats
                for (w, ok) in rest { w.continuation.resume(returning: ok) }
            }
        }
    }

    /// Flushes a rendition's packager and ends it; returns its waiters with their answers.
    private func finish(_ s: inout State, rendition name: String) -> [(Waiter, Bool)] {
        guard var r = s.renditions[name], var p = r.packager else { return [] }
        r.packager = nil
        let out = p.finish()
        r.timelineEnd = p.timelineEnd
        s.renditions[name] = r
        let ready = apply(out, to: &s, rendition: name)
        if out.isEmpty { replicate(&s, rendition: name, outputs: []) }
        var result = ready.map { ($0, true) }
        for (id, w) in s.waiters where w.rendition == name {
            s.waiters[id] = nil
            result.append((w, s.renditions[name]!.isSatisfied(w.target)))
        }
        return result
    }

    private func resume(_ waiters: [Waiter]) {
        for w in waiters { w.continuation.resume(returning: true) }
    }

    private func noteInput(_ s: inout State, bytes: Int) {
        let now = Self.clock()
        s.bytesIn += UInt64(bytes)
        s.inputWindow.append((now, bytes))
        while let first = s.inputWindow.first, now - first.at > 5 { s.inputWindow.removeFirst() }
        while let first = s.frameWindow.first, now - first > 5 { s.frameWindow.removeFirst() }
    }

    static func clock() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Runs one packager step of a rendition and returns the waiters it satisfied.
    private func push(_ s: inout State, rendition name: String,
                      _ step: (inout LivePackager) throws(PackagingError) -> [PackagerOutput]) throws(PackagingError) -> [Waiter] {
        guard var p = s.renditions[name]?.packager else { return [] }
        let out = try step(&p)
        s.renditions[name]!.packager = p
        return apply(out, to: &s, rendition: name)
    }

    // MARK: The ladder

    private func startLadder(config: AVCDecoderConfiguration, record: [UInt8]) {
        guard let ladder else { return }
        let fitting = ladder.rungs.filter { $0.outputSize(sourceWidth: config.width, sourceHeight: config.height) != nil }
        guard !fitting.isEmpty else { return }
        let session = state.withLock { $0.sessions }
        let transcoder: StreamTranscoder
        do {
            transcoder = try StreamTranscoder(settings: ladder, sourceAVCC: record, sourceWidth: config.width,
                                              sourceHeight: config.height) { [weak self] output in
                self?.transcoded(output, session: session)
            }
        } catch {
            onEvent(.transcodeFailed(reason: "\(error)"))
            return
        }
        let old = state.withLock { s -> StreamTranscoder? in
            guard s.sessions == session, s.publishing else { return transcoder }
            let old = s.transcoder
            s.transcoder = transcoder
            for rung in fitting where s.renditions[rung.name] == nil {
                var r = Rendition(name: rung.name)
                r.nextSequence = s.sessionFirstSequence
                r.timelineEnd = s.sessionTimelineStart
                s.renditions[rung.name] = r
                s.order.append(rung.name)
            }
            return old
        }
        if let old { Thread.detachNewThread { old.finish() } }
        onEvent(.transcodeStarted(rungs: fitting.map(\.name)))
    }

    /// Output of the transcoder, on its thread.
    private func transcoded(_ output: TranscodeOutput, session: Int) {
        let resumed = state.withLock { s -> [(Waiter, Bool)] in
            guard s.sessions == session else { return [] }
            switch output {
            case .config(let rung, let avcC, _, _):
                guard var r = s.renditions[rung], !r.live else { return [] }
                r.shed = false
                r.packager = makePackager(for: r, discontinuity: r.nextSequence > 0 || r.session > 0)
                r.session = session
                r.pendingAudio = []
                s.renditions[rung] = r
                var ready: [Waiter] = []
                if let header = s.audioHeader {
                    ready += (try? push(&s, rendition: rung) { p throws(PackagingError) in
                        try p.push(audio: header.tag, timestamp: header.timestamp)
                    }) ?? []
                }
                let tag = FLVVideoTag(frameType: 1, codecID: 7, packet: .avcSequenceHeader(avcC))
                ready += (try? push(&s, rendition: rung) { p throws(PackagingError) in try p.push(video: tag, timestamp: 0) }) ?? []
                return ready.map { ($0, true) }
            case .frame(let f):
                guard s.renditions[f.rung]?.live == true else { return [] }
                let ts = UInt32(truncatingIfNeeded: f.dts)
                let tag = FLVVideoTag(frameType: f.isKeyframe ? 1 : 2, codecID: 7,
                                      packet: .avcNALUs(f.data, compositionTime: Int32(clamping: f.pts - f.dts)))
                var ready = (try? push(&s, rendition: f.rung) { p throws(PackagingError) in try p.push(video: tag, timestamp: ts) }) ?? []
                if s.renditions[f.rung]!.firstVideoTimestamp == nil {
                    // The rung starts now: it takes the source audio from this moment on.
                    s.renditions[f.rung]!.firstVideoTimestamp = ts
                    s.renditions[f.rung]!.pendingAudio = s.recentAudio.filter { $0.timestamp >= ts }
                }
                s.renditions[f.rung]!.lastVideoTimestamp = ts
                ready += releaseAudio(&s, rendition: f.rung)
                return ready.map { ($0, true) }
            case .shed(let rung, _):
                s.renditions[rung]?.shed = true
                return finish(&s, rendition: rung)
            }
        }
        if case .shed(let rung, let reason) = output { onEvent(.renditionShed(rendition: rung, reason: reason)) }
        for (w, ok) in resumed { w.continuation.resume(returning: ok) }
    }

    /// Hands a rung the audio its video has caught up with, in timestamp order.
    private func releaseAudio(_ s: inout State, rendition name: String) -> [Waiter] {
        guard let r = s.renditions[name], let upTo = r.lastVideoTimestamp else { return [] }
        var ready: [Waiter] = []
        var rest: [(tag: FLVAudioTag, timestamp: UInt32)] = []
        for a in r.pendingAudio {
            if a.timestamp <= upTo {
                ready += (try? push(&s, rendition: name) { p throws(PackagingError) in try p.push(audio: a.tag, timestamp: a.timestamp) }) ?? []
            } else {
                rest.append(a)
            }
        }
        s.renditions[name]?.pendingAudio = rest
        return ready
    }

    // MARK: Segments

    /// Applies packager output to a rendition; returns the waiters now satisfied.
    private func apply(_ outputs: [PackagerOutput], to s: inout State, rendition name: String,
                       replicate: Bool = true) -> [Waiter] {
        guard !outputs.isEmpty, var r = s.renditions[name] else { return [] }
        for o in outputs {
            switch o {
            case .initSegment(let version, let bytes, let tracks):
                r.inits[version] = (bytes, tracks)
                r.nextInitVersion = version + 1
            case .segmentStarted(let seq, let discontinuity, let initVersion):
                r.segments.append(Segment(sequence: seq, parts: [], complete: false, discontinuity: discontinuity,
                                          initVersion: initVersion, programDateTime: Date()))
                r.nextSequence = seq + 1
            case .part(let part):
                r.partEnd = max(r.partEnd ?? 0, part.startTime + part.duration)
                if let i = r.segments.lastIndex(where: { $0.sequence == part.segment }) {
                    r.segments[i].parts.append(part)
                    if r.segments[i].parts.count == 1 {
                        // The segment's wall-clock time is when its first media was packaged.
                        r.segments[i].programDateTime = Date().addingTimeInterval(-part.duration)
                    }
                }
            case .segmentEnded(let seq):
                if let i = r.segments.lastIndex(where: { $0.sequence == seq }) {
                    if r.segments[i].parts.isEmpty {
                        r.segments.remove(at: i)
                    } else {
                        r.segments[i].complete = true
                        let bytes = r.segments[i].parts.flatMap(\.bytes)
                        r.segments[i].bytes = bytes
                        let d = r.segments[i].duration
                        r.maxSegmentDuration = max(r.maxSegmentDuration, d)
                        let bits = Double(bytes.count * 8)
                        r.bandwidthBits += bits
                        r.bandwidthSeconds += d
                        if d > 0.2 {
                            r.peakBandwidth = max(r.peakBandwidth, bits / d)
                            r.lastSegmentBitrate = bits / d
                        }
                    }
                }
                trim(&r)
            }
        }
        s.renditions[name] = r
        if replicate { self.replicate(&s, rendition: name, outputs: outputs) }
        var ready: [Waiter] = []
        for (id, w) in s.waiters where w.rendition == name && r.isSatisfied(w.target) {
            ready.append(w)
            s.waiters[id] = nil
        }
        return ready
    }

    /// Keeps the live window plus a margin for slow players; drops the parts of old segments.
    private func trim(_ r: inout Rendition) {
        let keep = settings.windowSegments + 6
        var complete = r.segments.filter(\.complete).count
        while complete > keep, let first = r.segments.first, first.complete {
            if r.segments.removeFirst().discontinuity { r.discontinuitySequence += 1 }
            complete -= 1
        }
        // Parts are only listed near the live edge; keep them a little longer than that.
        let keepPartsFor = Int((Double(targetDuration(r)) * 3 / settings.segmentTarget).rounded(.up)) + 3
        if r.segments.count > keepPartsFor {
            for i in 0..<(r.segments.count - keepPartsFor) where r.segments[i].complete {
                for j in r.segments[i].parts.indices { r.segments[i].parts[j].bytes = [] }
            }
        }
        let used = Set(r.segments.map(\.initVersion))
        for v in r.inits.keys where !used.contains(v) && v < r.nextInitVersion - 1 { r.inits[v] = nil }
    }

    private func targetDuration(_ r: Rendition) -> Int {
        Int(max(settings.segmentTarget, r.maxSegmentDuration).rounded(.up))
    }

    // MARK: Replication

    /// Sends everything this node makes of the stream from now on to `sink` (the standby's
    /// sender), one batch per packager step, in order. Called with the stream's lock held:
    /// `sink` must only queue.
    public func replicate(to sink: (@Sendable (ReplicaBatch) -> Void)?) {
        state.withLock { $0.sink = sink }
    }

    private func replicate(_ s: inout State, rendition name: String, outputs: [PackagerOutput]) {
        guard let sink = s.sink, let r = s.renditions[name] else { return }
        var dates: [Int: Date] = [:]
        for o in outputs {
            let touched: Int
            switch o {
            case .part(let p): touched = p.segment
            case .segmentStarted(let sequence, _, _): touched = sequence
            default: continue
            }
            if let seg = r.segments.last(where: { $0.sequence == touched }) { dates[touched] = seg.programDateTime }
        }
        sink(ReplicaBatch(snapshot: false, sessions: s.sessions, order: s.order,
                          renditions: [ReplicaRendition(name: name, live: r.live, shed: r.shed, outputs: outputs, dates: dates, state: nil)]))
    }

    /// The whole stream as a snapshot batch. `whileLocked` runs before the lock is released:
    /// batches queued by the sink before it are covered by the snapshot, later ones are not.
    public func snapshot(_ whileLocked: () -> Void = {}) -> ReplicaBatch {
        state.withLock { s in
            whileLocked()
            let renditions = s.order.compactMap { name -> ReplicaRendition? in
                guard let r = s.renditions[name] else { return nil }
                let inits = r.inits.keys.sorted().map { v in ReplicaState.Init(version: v, bytes: r.inits[v]!.bytes, tracks: r.inits[v]!.tracks) }
                let state = ReplicaState(
                    inits: inits, segments: r.segments, discontinuitySequence: r.discontinuitySequence,
                    nextSequence: r.nextSequence, nextInitVersion: r.nextInitVersion, timelineEnd: r.timelineEnd, partEnd: r.partEnd,
                    maxSegmentDuration: r.maxSegmentDuration, bandwidthBits: r.bandwidthBits, bandwidthSeconds: r.bandwidthSeconds,
                    peakBandwidth: r.peakBandwidth, lastSegmentBitrate: r.lastSegmentBitrate)
                return ReplicaRendition(name: name, live: r.live, shed: r.shed, outputs: [], state: state)
            }
            return ReplicaBatch(snapshot: true, sessions: s.sessions, order: s.order, renditions: renditions)
        }
    }

    /// A standby applies a batch from the stream's origin. A snapshot replaces what it held;
    /// an incremental batch must follow the last one applied (same epoch, next sequence).
    public func applyReplica(_ batch: ReplicaBatch) throws(ReplicaError) {
        let resumed = try state.withLock { s throws(ReplicaError) -> [Waiter] in
            guard !s.publishing else { throw .publishingHere }
            if batch.snapshot {
                s.renditions = [:]
                for r in batch.renditions {
                    var rendition = Rendition(name: r.name)
                    if let st = r.state {
                        for i in st.inits { rendition.inits[i.version] = (i.bytes, i.tracks) }
                        rendition.segments = st.segments
                        rendition.discontinuitySequence = st.discontinuitySequence
                        rendition.nextSequence = st.nextSequence
                        rendition.nextInitVersion = st.nextInitVersion
                        rendition.timelineEnd = st.timelineEnd
                        rendition.partEnd = st.partEnd
                        rendition.maxSegmentDuration = st.maxSegmentDuration
                        rendition.bandwidthBits = st.bandwidthBits
                        rendition.bandwidthSeconds = st.bandwidthSeconds
                        rendition.peakBandwidth = st.peakBandwidth
                        rendition.lastSegmentBitrate = st.lastSegmentBitrate
                    }
                    rendition.replicaLive = r.live
                    rendition.shed = r.shed
                    s.renditions[r.name] = rendition
                }
                if s.renditions[Self.sourceRendition] == nil { s.renditions[Self.sourceRendition] = Rendition(name: Self.sourceRendition) }
                s.replicaEpoch = batch.epoch
                s.replicaSequence = batch.sequence
            } else {
                guard s.replicaEpoch == batch.epoch, batch.sequence == s.replicaSequence &+ 1 else {
                    throw .outOfSequence(expected: s.replicaEpoch == batch.epoch ? s.replicaSequence &+ 1 : nil, got: batch.sequence)
                }
                s.replicaSequence = batch.sequence
            }
            s.order = batch.order.filter { name in s.renditions[name] != nil || batch.renditions.contains { $0.name == name } }
            if !s.order.contains(Self.sourceRendition) { s.order.insert(Self.sourceRendition, at: 0) }
            s.sessions = max(s.sessions, batch.sessions)
            var ready: [Waiter] = []
            for r in batch.renditions {
                if s.renditions[r.name] == nil { s.renditions[r.name] = Rendition(name: r.name) }
                if !batch.snapshot {
                    ready += apply(r.outputs, to: &s, rendition: r.name, replicate: false)
                    for (sequence, date) in r.dates {
                        if let i = s.renditions[r.name]!.segments.lastIndex(where: { $0.sequence == sequence }) {
                            s.renditions[r.name]!.segments[i].programDateTime = date
                        }
                    }
                }
                s.renditions[r.name]!.replicaLive = r.live
                s.renditions[r.name]!.shed = r.shed
                if !r.live {
                    // The origin's publisher stopped: blocking viewers get their answer now.
                    for (id, w) in s.waiters where w.rendition == r.name {
                        s.waiters[id] = nil
                        if s.renditions[r.name]!.isSatisfied(w.target) { ready.append(w) } else { w.continuation.resume(returning: false) }
                    }
                }
            }
            return ready
        }
        resume(resumed)
    }

    /// True when this node holds something of the stream to serve (made here or replicated).
    public var hasMedia: Bool { state.withLock { $0.source?.lastCompleteSequence != nil || $0.source?.lastPart != nil } }

    /// True while this node holds the stream as a standby's replica (not publishing it here).
    public var isReplica: Bool { state.withLock { !$0.publishing && $0.replicaEpoch != nil } }

    // MARK: Reading

    public var status: LiveStreamStatus {
        state.withLock { s in
            let src = s.source!
            let video = src.videoConfig
            return LiveStreamStatus(
                state: Self.state(of: s), publishing: s.publishing, sessions: s.sessions,
                firstSequence: src.segments.first?.sequence, lastSequence: src.segments.last?.sequence,
                bytesIn: s.bytesIn, videoFrames: s.videoFrames, audioFrames: s.audioFrames,
                averageBandwidth: src.bandwidthSeconds > 0 ? Int(src.bandwidthBits / src.bandwidthSeconds) : nil,
                peakBandwidth: src.peakBandwidth > 0 ? Int(src.peakBandwidth) : nil,
                width: video?.width, height: video?.height, frameRate: video?.frameRate,
                codecs: src.codecs, renditions: s.order.filter { s.renditions[$0]?.lastCompleteSequence != nil })
        }
    }

    public var health: StreamHealth {
        let transcoder = state.withLock { $0.transcoder }
        let stats = transcoder?.stats
        return state.withLock { s in
            let window = max(0.5, min(5, (s.inputWindow.last?.at ?? 0) - (s.inputWindow.first?.at ?? 0)))
            let bits = Double(s.inputWindow.reduce(0) { $0 + $1.bytes } * 8)
            let fpsWindow = max(0.5, min(5, (s.frameWindow.last ?? 0) - (s.frameWindow.first ?? 0)))
            let fps = s.frameWindow.count > 1 ? Double(s.frameWindow.count - 1) / fpsWindow : 0
            let k = s.keyframeTimestamps
            let t = stats ?? s.transcoderStats
            let outputs = s.order.compactMap { name -> StreamHealth.Output? in
                guard let r = s.renditions[name] else { return nil }
                let v = r.videoConfig
                return StreamHealth.Output(
                    rendition: name, width: v?.width, height: v?.height,
                    averageBitrate: r.bandwidthSeconds > 0 ? Int(r.bandwidthBits / r.bandwidthSeconds) : nil,
                    lastSegmentBitrate: r.lastSegmentBitrate.map { Int($0) }, shed: r.shed)
            }
            return StreamHealth(
                state: Self.state(of: s),
                inputBitrate: s.publishing ? Int(bits / window) : 0, frameRate: s.publishing ? (fps * 10).rounded() / 10 : 0,
                keyframeInterval: k.count == 2 ? Double(Int64(k[1]) - Int64(k[0])) / 1000 : nil,
                audioVideoDriftMs: s.lastVideoTimestamp.flatMap { v in s.lastAudioTimestamp.map { Int(Int64(v) - Int64($0)) } },
                droppedFrames: (t?.framesDropped ?? 0) + (t?.framesSkippedCorrupt ?? 0) + s.sourceCorruptFrames,
                encoderSpeed: t.map { $0.encoderSpeed },
                shedRenditions: s.order.filter { s.renditions[$0]?.shed == true },
                outputs: outputs)
        }
    }

    private static func state(of s: State) -> LiveStreamState {
        if s.publishing { return .live }
        if s.replicaEpoch != nil { return .standby }
        return s.sessions > 0 ? .ended : .offline
    }

    /// True once a first complete segment exists: the stream can be played.
    public var isPlayable: Bool { state.withLock { $0.source?.lastCompleteSequence != nil } }

    /// The media playlist of a rendition as it stands.
    public func mediaPlaylist(rendition name: String = LiveStream.sourceRendition, skip: Bool = false) -> String? {
        state.withLock { s in
            guard let r = s.renditions[name], r.lastCompleteSequence != nil else { return nil }
            let target = targetDuration(r)
            // The live window: the last `windowSegments` complete segments and the growing one.
            var listed = r.segments
            var discontinuities = r.discontinuitySequence
            let complete = listed.filter(\.complete).count
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
                ended: !r.live, discontinuitySequence: discontinuities)
            return playlist.render(skipOlderThan: skip ? Double(target) * 6 : nil)
        }
    }

    public func hasRendition(_ name: String) -> Bool { state.withLock { $0.renditions[name] != nil } }
    public func isLive(rendition name: String) -> Bool { state.withLock { $0.renditions[name]?.live == true } }

    /// Whether a blocking request for `target` is reasonable: at most two segments ahead.
    public func isWithinReach(_ target: LiveTarget, rendition name: String = LiveStream.sourceRendition) -> Bool {
        state.withLock { s in
            guard let r = s.renditions[name] else { return false }
            let next = r.segments.last.map { $0.complete ? $0.sequence + 1 : $0.sequence } ?? r.nextSequence
            switch target {
            case .part(let seq, _), .segment(let seq): return seq <= next + 2
            }
        }
    }

    public func initSegment(rendition name: String = LiveStream.sourceRendition, version: Int) -> [UInt8]? {
        state.withLock { $0.renditions[name]?.inits[version]?.bytes }
    }

    public func segment(rendition name: String = LiveStream.sourceRendition, sequence: Int) -> [UInt8]? {
        state.withLock { s in s.renditions[name]?.segments.first { $0.sequence == sequence && $0.complete }?.bytes }
    }

    public func part(rendition name: String = LiveStream.sourceRendition, sequence: Int, index: Int) -> [UInt8]? {
        state.withLock { s in
            guard let seg = s.renditions[name]?.segments.first(where: { $0.sequence == sequence }),
                  index < seg.parts.count, !seg.parts[index].bytes.isEmpty else { return nil }
            return seg.parts[index].bytes
        }
    }

    /// Master playlist figures of the renditions that can be played, source first.
    public var renditions: [RenditionInfo] {
        state.withLock { s in
            s.order.compactMap { name -> RenditionInfo? in
                guard let r = s.renditions[name], !r.shed, r.lastCompleteSequence != nil, let codecs = r.codecs else { return nil }
                let video = r.videoConfig
                let avg = r.bandwidthSeconds > 0 ? r.bandwidthBits / r.bandwidthSeconds : 1_000_000
                let peak = max(r.peakBandwidth, avg)
                // Frame rate from the SPS if it says, else from the frames counted over the media.
                var fps = video?.frameRate
                if fps == nil, r.bandwidthSeconds > 0, s.videoFrames > 0, let src = s.source, src.bandwidthSeconds > 0 {
                    fps = (Double(s.videoFrames) / max(src.bandwidthSeconds, 1)).rounded()
                }
                return RenditionInfo(name: name, bandwidth: Int(peak), averageBandwidth: Int(avg),
                                     width: video?.width, height: video?.height, frameRate: fps, codecs: codecs)
            }
        }
    }

    /// Waits until `target` exists in a rendition, the rendition ends, or `timeout` passes.
    /// Returns true when the target exists.
    public func wait(for target: LiveTarget, rendition name: String = LiveStream.sourceRendition, timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { s in
            guard let r = s.renditions[name], !r.isSatisfied(target), r.live else { return nil }
            s.nextWaiter += 1
            return s.nextWaiter
        }
        guard let id else { return state.withLock { $0.renditions[name]?.isSatisfied(target) ?? false } }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.cancelWaiter(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { s in
                    guard let r = s.renditions[name] else { return false }
                    if r.isSatisfied(target) { return true }
                    if !r.live { return false }
                    s.waiters[id] = Waiter(rendition: name, target: target, continuation: c)
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
