// LiveStream: the live state of one stream on its origin, and the one lock over it. It
// coordinates the parts, each a value type of its own: one `LiveRendition` per rendition (the
// source passed through, plus the transcoded ladder), the `PlaylistWaiters` (LL-HLS blocking
// requests), the `IngestFigures` behind the health report, the `LadderHost` and the
// `AudioConversion` around the transcoders, and the `ReplicaLink` to or from a standby.
// Thread-safe: the RTMP connection pushes media in, the transcoder's thread pushes its rungs
// in, HTTP handlers read and wait. Waiters are resumed after the lock is released.
import Foundation
import Synchronization

public final class LiveStream: Sendable {
    public static let sourceRendition = "source"

    public let id: String
    public let settings: PackagingSettings
    public let ladder: TranscodeSettings?
    /// Keep the source rendition in the master playlist even when its keyframes are far apart.
    public let keepSource: Bool
    /// What makes the ladder and encodes non-AAC audio; nil: neither is done.
    private let transcoders: Transcoders?
    private let onEvent: @Sendable (LiveStreamEvent) -> Void
    /// A publisher who comes back within this many seconds of dropping continues the same
    /// recording (behind a discontinuity); later, a session starts a new one.
    public let recordingGrace: Double
    /// Whether a session starting now is recorded (the stream's and its channel's setting),
    /// asked under the stream's lock when a session begins: it must not block.
    private let recordsSessions: @Sendable () -> Bool
    /// Where the first session of a stream that holds nothing yet starts numbering (asked as it begins).
    private let firstSequence: @Sendable () -> Int
    private let state: Mutex<State>

    /// Everything under the one lock, grouped by concept: each part's rules live in its type.
    struct State {
        var renditions: [String: LiveRendition] = [:]
        /// Source first, then the rungs from the top of the ladder down.
        var order: [String] = []
        var publishing = false
        var sessions = 0
        /// In every object's name; kept across publishing sessions and taken from a replica.
        var epoch: StreamEpoch
        /// Where this session's media starts: rungs that appear during it start here too.
        var sessionFirstSequence = 0
        var sessionTimelineStart: Double?
        var waiters = PlaylistWaiters()
        var input = IngestFigures()
        var ladder = LadderHost()
        /// Non-AAC audio in this session: its AAC encoding.
        var audioConversion: AudioConversion?
        var replica = ReplicaLink()
        /// The last source keyframe of this session, with the configuration to decode it (thumbnails).
        var latestKeyframe: SourceKeyframe?
        /// Where every init segment and complete segment goes to be recorded; nil: not recorded.
        var recorder: (@Sendable (RecordedObject) -> Void)?
        /// A segment went to the recorder since the stream last ended.
        var recording = false
        /// Per rendition, the last segment an origin made before it handed the stream over or
        /// died, kept from the recorder until the new session's first keyframe says how much of
        /// it the relay replays (`recordHeldBack`).
        var heldBack: [String: HeldSegment] = [:]
        /// Frames the relay sends again that were recorded before the held segments (its replay
        /// reaches back a GOP further than the standby needs): dropped up to the next keyframe.
        var droppingReplay = false
        /// The sequence number the recording being made starts at: decided by the origin when a
        /// session begins (a new one, or the one before continued within the grace), taken from
        /// the replica on a standby. Nil: this session is not recorded.
        var recordingStart: Int?
        /// When (`LiveStream.clock()`) the last session here, or on the origin of the replica
        /// held, ended; nil while one is live.
        var sessionEndedAt: Double?
        /// When (`LiveStream.clock()`) the last replica batch was applied here.
        var replicaAppliedAt: Double?
        /// Nothing published or replicated here yet: the first session's numbering is `firstSequence`'s.
        var fresh = true
        /// A session given up (`endPublishing(abandon:)`): what its transcoder still makes is dropped.
        var abandonedSession: Int?

        var source: LiveRendition? { renditions[LiveStream.sourceRendition] }

        /// The transcoded rungs, in order.
        var rungs: [String] { order.filter { $0 != LiveStream.sourceRendition } }

        var streamState: LiveStreamState {
            if publishing { return .live }
            if replica.holdsReplica { return .standby }
            return sessions > 0 ? .ended : .offline
        }
    }

    /// A stream packages what it receives; with `transcoders`, it also makes `ladder` and
    /// carries audio that is not AAC (encoded to AAC). Without them a ladder is reported as
    /// failed when it would start, and audio that is not AAC is refused.
    public init(id: String, settings: PackagingSettings = .default, ladder: TranscodeSettings? = nil,
                transcoders: Transcoders? = nil, keepSource: Bool = false, epoch: StreamEpoch = .random(),
                onEvent: @escaping @Sendable (LiveStreamEvent) -> Void = { _ in },
                recordingGrace: Double = 0, recordsSessions: @escaping @Sendable () -> Bool = { true },
                firstSequence: @escaping @Sendable () -> Int = { 0 }) {
        self.id = id
        self.settings = settings
        // Rungs start a segment every segment target, whatever the source's GOP.
        self.ladder = ladder.flatMap { l in
            guard !l.rungs.isEmpty else { return nil }
            var l = l
            if l.keyframeInterval == nil { l.keyframeInterval = settings.segmentTarget }
            return l
        }
        self.transcoders = transcoders
        self.keepSource = keepSource
        self.recordingGrace = recordingGrace
        self.recordsSessions = recordsSessions
        self.firstSequence = firstSequence
        self.onEvent = onEvent
        var s = State(epoch: epoch)
        s.renditions[Self.sourceRendition] = LiveRendition(name: Self.sourceRendition)
        s.order = [Self.sourceRendition]
        self.state = Mutex(s)
    }

    static func clock() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Where a stream made afresh on a node starts numbering its media (`firstSequence`): ten
    /// numbers per second since the stream was created. A life of the stream that starts without
    /// the last one's state (its origin died with no replica on the side that took the stream
    /// on, or restarted) then numbers on from above anything the earlier lives made — they made
    /// fewer than ten segments a second — so a player's playlist never goes back.
    public static func firstSequence(createdAt: Date, now: Date = Date()) -> Int {
        let seconds = now.timeIntervalSince(createdAt)
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int(min(seconds, 1e12) * 10)
    }

    // MARK: Publishing

    /// A publisher starts. A stream that was live before continues its playlists with a
    /// discontinuity, their sequence numbers and timeline always growing.
    /// Returns the session's number (`endPublishing(session:)`).
    @discardableResult
    public func beginPublishing() -> Int {
        let (answers, session) = state.withLock { s in (begin(&s), s.sessions) }
        answers.resume()
        return session
    }

    /// Another publisher takes over from the one publishing now (a hand-over between a
    /// stream's host and co-hosts): what the source holds is flushed and a new session begins
    /// under the same lock, so the playlists never end — players see a discontinuity and go
    /// on polling the same URLs. The rungs end their segment when the new publisher's ladder
    /// starts; the old transcoder is drained and what it still makes is dropped.
    @discardableResult
    public func handOverPublishing() -> Int {
        let (answers, old, session) = state.withLock { s -> ([PlaylistWaiters.Answer], (any LadderTranscoder)?, Int) in
            var ready: [PlaylistWaiters.Answer] = []
            var old: (any LadderTranscoder)?
            if s.publishing {
                if let flushed = s.renditions[Self.sourceRendition]?.finishPackager() {
                    ready += apply(flushed, to: &s, rendition: Self.sourceRendition)
                }
                old = s.ladder.transcoder
                s.ladder.transcoder = nil
            }
            ready += begin(&s)
            return (ready, old, s.sessions)
        }
        answers.resume()
        if let old { Thread.detachNewThread { old.finish() } }
        return session
    }

    /// A new publishing session, with the lock held.
    private func begin(_ s: inout State) -> [PlaylistWaiters.Answer] {
        let ready = promoteReplica(&s)
        s.sessions += 1
        s.publishing = true
        s.ladder.beginSession()
        s.audioConversion = nil
        s.input.beginSession()
        s.latestKeyframe = nil
        s.droppingReplay = false
        // Every rendition continues from the same sequence number and time, so they stay aligned.
        var next = s.renditions.values.map(\.nextSequence).max() ?? 0
        if s.fresh { next = max(next, firstSequence()) }
        s.fresh = false
        let timeline = s.source.flatMap { r in [r.timelineEnd, r.partEnd].compactMap { $0 }.max() }
        s.sessionFirstSequence = next
        s.sessionTimelineStart = timeline
        decideRecording(&s, next: next)
        for name in s.order {
            guard var r = s.renditions[name] else { continue }
            r.nextSequence = next
            r.timelineEnd = timeline
            r.audio.reset()
            if name == Self.sourceRendition {
                r.startPackager(settings: settings, discontinuity: s.sessions > 1)
                r.session = s.sessions
            }
            s.renditions[name] = r
        }
        return ready
    }

    /// Whether the session beginning records, and into which recording: the one being made goes
    /// on when the publisher is handed over, a standby takes over from a live origin, or the
    /// publisher comes back within the grace; otherwise a new one starts at `next`.
    private func decideRecording(_ s: inout State, next: Int) {
        defer { s.sessionEndedAt = nil }
        guard recordsSessions() else {
            s.recordingStart = nil
            return
        }
        if s.recordingStart != nil, s.sessionEndedAt.map({ Self.clock() - $0 <= recordingGrace }) ?? true { return }
        s.recordingStart = next
    }

    /// A standby takes the stream over: what the old origin left unfinished ends here (its
    /// last segment is completed with the parts it announced), and nothing is a replica any more.
    private func promoteReplica(_ s: inout State) -> [PlaylistWaiters.Answer] {
        var ready: [PlaylistWaiters.Answer] = []
        for name in s.order {
            // A segment this node left unfinished itself (a session given up) ends now, and its
            // standby is told; a replica's, the new origin's standby gets in a snapshot.
            let own = s.renditions[name]?.abandoned == true
            guard let unfinished = s.renditions[name]?.takeOver() else { continue }
            ready += apply([.segmentEnded(sequence: unfinished)], to: &s, rendition: name, replicate: false, holdBack: true)
            // Told as going on: the session beginning continues the rendition.
            if own { replicate(&s, rendition: name, outputs: [.segmentEnded(sequence: unfinished)], live: true) }
        }
        s.replica.stopHolding()
        return ready
    }

    public func ingest(video tag: FLVVideoTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        var startLadderFrom: (config: AVCDecoderConfiguration, record: [UInt8])?
        try state.withLock { s throws(PackagingError) -> [PlaylistWaiters.Answer] in
            guard s.publishing else { return [] }
            let now = Self.clock()
            s.input.noteInput(bytes: byteCount, at: now)
            if case .avcNALUs = tag.packet { s.input.noteVideoFrame(timestamp: timestamp, keyframe: tag.isKeyframe, at: now) }
            if !s.heldBack.isEmpty, case .avcNALUs(let data, _) = tag.packet {
                if tag.isKeyframe {
                    s.droppingReplay = recordedBeforeHeld(s, keyframe: data)
                    if !s.droppingReplay { recordHeldBack(&s, replayedFrom: data) }
                }
                if s.droppingReplay { return [] }
            }
            startLadderFrom = s.ladder.sourceVideo(tag, timestamp: timestamp)
            // Kept by reference (the array is not copied): a picture of the stream is made from it now and then.
            if tag.isKeyframe, case .avcNALUs(let data, _) = tag.packet, let record = s.ladder.sourceConfig?.record {
                s.latestKeyframe = SourceKeyframe(decoderConfiguration: record, accessUnit: data, timestamp: timestamp,
                                                  session: s.sessions)
            }
            let ready = try push(&s, rendition: Self.sourceRendition) { p throws(PackagingError) in
                try p.push(video: tag, timestamp: timestamp)
            }
            s.input.sourceCorruptFrames = s.source?.packager?.droppedCorruptFrames ?? s.input.sourceCorruptFrames
            return ready
        }.resume()
        if let start = startLadderFrom { startLadder(config: start.config, record: start.record) }
    }

    public func ingest(audio tag: FLVAudioTag, timestamp: UInt32, byteCount: Int) throws(PackagingError) {
        try state.withLock { s throws(PackagingError) -> [PlaylistWaiters.Answer] in
            guard s.publishing, !s.droppingReplay else { return [] }
            s.input.noteInput(bytes: byteCount, at: Self.clock())
            guard tag.soundFormat != 10 else { return try ingestAAC(&s, tag, timestamp) }
            // Audio that is not AAC is transcoded to AAC, so every rendition carries AAC.
            guard case .other(let payload) = tag.packet else { return [] }
            if s.audioConversion == nil {
                let conversion = try AudioConversion(from: tag, at: timestamp, make: transcoders?.aac)
                s.audioConversion = conversion
                _ = try ingestAAC(&s, conversion.sequenceHeader, timestamp)
            }
            guard let frames = s.audioConversion?.convert(payload) else { return [] }
            var ready: [PlaylistWaiters.Answer] = []
            for (aac, ts) in frames { ready += try ingestAAC(&s, aac, ts) }
            return ready
        }.resume()
    }

    /// AAC into the source rendition and, once their video catches up, the rungs.
    private func ingestAAC(_ s: inout State, _ tag: FLVAudioTag, _ timestamp: UInt32) throws(PackagingError) -> [PlaylistWaiters.Answer] {
        var ready = try push(&s, rendition: Self.sourceRendition) { p throws(PackagingError) in
            try p.push(audio: tag, timestamp: timestamp)
        }
        s.ladder.sourceAudio(tag, timestamp: timestamp)
        guard case .aacRaw = tag.packet else { return ready }
        s.input.noteAudioFrame(timestamp: timestamp)
        // The rungs get the same audio once their video has caught up with it.
        for name in s.rungs where s.renditions[name]?.live == true {
            s.renditions[name]!.audio.append((tag, timestamp))
            ready += releaseAudio(&s, rendition: name)
        }
        return ready
    }

    /// The publisher is gone: flush the source, end its playlist, and answer its viewers.
    /// The transcoder drains on its own thread; the rungs end when it has.
    /// `session`: only if that session is still the one publishing (a publisher another took
    /// over from must not end the stream); nil: whatever publishes.
    ///
    /// `abandon`: the session is given up rather than ended — its relay's connection went silent
    /// or broke, so the publisher may well go on elsewhere (the cluster moved the stream, or this
    /// node is the one cut off). Nothing more is made of it: no last part, the segment in progress
    /// left unfinished (a new session here ends it; the state of the node that took the stream on
    /// replaces it). Its end is not news this node may announce (the split-brain rule).
    public func endPublishing(session ending: Int? = nil, abandon: Bool = false) {
        let (answers, transcoder, session) = state.withLock { s -> ([PlaylistWaiters.Answer], (any LadderTranscoder)?, Int) in
            guard s.publishing, ending.map({ $0 == s.sessions }) ?? true else { return ([], nil, s.sessions) }
            s.publishing = false
            s.latestKeyframe = nil
            s.sessionEndedAt = Self.clock()
            let t = s.ladder.transcoder
            s.ladder.transcoder = nil
            var out: [PlaylistWaiters.Answer] = []
            if abandon {
                s.abandonedSession = s.sessions
                for name in s.order {
                    s.renditions[name]?.abandonPackager()
                    if let r = s.renditions[name], r.isOver { out += s.waiters.takeAll(of: r) }
                }
            } else {
                out = finish(&s, rendition: Self.sourceRendition)
                if t == nil {
                    for name in s.rungs { out += finish(&s, rendition: name) }
                }
            }
            noteEnded(&s)
            return (out, t, s.sessions)
        }
        answers.resume()
        guard let transcoder else { return }
        Thread.detachNewThread {
            transcoder.finish()
            self.state.withLock { s -> [PlaylistWaiters.Answer] in
                s.ladder.finishedStats = transcoder.stats
                // A session given up keeps nothing its transcoder still made (`abandonedSession`).
                guard !abandon, s.sessions == session else { return [] }
                var out: [PlaylistWaiters.Answer] = []
                for name in s.rungs { out += self.finish(&s, rendition: name) }
                self.noteEnded(&s)
                return out
            }.resume()
        }
    }

    /// Flushes a rendition's packager and ends it; returns its waiters with their answers.
    private func finish(_ s: inout State, rendition name: String) -> [PlaylistWaiters.Answer] {
        guard let out = s.renditions[name]?.finishPackager() else { return [] }
        var answers = apply(out, to: &s, rendition: name)
        if out.isEmpty { replicate(&s, rendition: name, outputs: []) }
        // Players not yet shown its end get it when the standby holds it (`showReplicated`).
        if s.renditions[name]!.isOver { answers += s.waiters.takeAll(of: s.renditions[name]!) }
        return answers
    }

    /// Runs one packager step of a rendition and returns the waiters it satisfied.
    private func push(_ s: inout State, rendition name: String,
                      _ step: (inout LivePackager) throws(PackagingError) -> [PackagerOutput]) throws(PackagingError) -> [PlaylistWaiters.Answer] {
        guard let out = try s.renditions[name]?.push(step) else { return [] }
        return apply(out, to: &s, rendition: name)
    }

    /// Records packager output in a rendition, sends it to the standby (unless it came from
    /// the origin), and returns the waiters now satisfied.
    /// `holdBack`: the stream goes on elsewhere or from a new session here (a standby's replica of
    /// an origin that says so, a takeover), so a segment that ends the rendition's media for now
    /// is held back from the recorder (`State.heldBack`).
    private func apply(_ outputs: [PackagerOutput], to s: inout State, rendition name: String,
                       replicate: Bool = true, holdBack: Bool = false) -> [PlaylistWaiters.Answer] {
        guard !outputs.isEmpty, s.renditions[name] != nil else { return [] }
        // Made here with a standby: players see it once the standby holds it; what was there before is shown.
        if replicate, s.replica.sink != nil, s.renditions[name]!.shown == nil { s.renditions[name]!.shown = s.renditions[name]!.tip }
        s.renditions[name]!.record(outputs, settings: settings, now: Date())
        if replicate { self.replicate(&s, rendition: name, outputs: outputs) }
        if s.recorder != nil { handToRecorder(&s, rendition: name, outputs: outputs, holdBack: holdBack) }
        return s.waiters.takeSatisfied(by: s.renditions[name]!)
    }

    // MARK: Recording

    /// Hands every init segment and complete segment made here (or received from the origin as
    /// a replica) from now on to `sink`, and `.ended` when every rendition has ended. Called
    /// with the stream's lock held: `sink` must only queue. Media already held is handed over
    /// too, from the start of the current publisher session on.
    public func record(to sink: (@Sendable (RecordedObject) -> Void)?) {
        state.withLock { s in
            s.recorder = sink
            if sink != nil { handHeld(&s) }
        }
    }

    private func handToRecorder(_ s: inout State, rendition name: String, outputs: [PackagerOutput], holdBack: Bool) {
        guard let sink = s.recorder, let r = s.renditions[name] else { return }
        for o in outputs {
            switch o {
            case .initSegment(let version, _, _):
                if let i = recordedInit(r, version: version, epoch: s.epoch) { sink(.initSegment(i)) }
            case .segmentEnded(let sequence):
                guard let start = s.recordingStart, sequence >= start,
                      let seg = r.segments.last(where: { $0.sequence == sequence && $0.complete }) else { continue }
                // Anything held before it is not the last any more.
                if let held = s.heldBack.removeValue(forKey: name) { sink(recordable(r, held.segment, epoch: s.epoch, recordingStart: held.recordingStart)) }
                s.recording = true
                // Ended with no media after it while the stream goes on: the origin stopped in the
                // middle of a GOP, or just after the keyframe that ended it, and the relay will send
                // that GOP (and the one before) again.
                if holdBack, r.isLastWithMedia(sequence) {
                    s.heldBack[name] = HeldSegment(segment: seg, recordingStart: start)
                    continue
                }
                sink(recordable(r, seg, epoch: s.epoch, recordingStart: start))
            default:
                continue
            }
        }
    }

    /// What a stream already holds, for a recorder that starts now (a standby's snapshot): its
    /// init segments, and the complete segments of the recording being made — but, on a live
    /// replica, the last one with media, held back as batches hold it: its origin may be a new
    /// one whose session begins with that segment's GOP again, and cut its recording (`cuts`).
    private func handHeld(_ s: inout State) {
        guard let sink = s.recorder, s.source != nil else { return }
        for name in s.order {
            guard let r = s.renditions[name] else { continue }
            for version in r.inits.keys.sorted() {
                if let i = recordedInit(r, version: version, epoch: s.epoch) { sink(.initSegment(i)) }
            }
        }
        guard let first = s.recordingStart else { return }
        for name in s.order {
            guard let r = s.renditions[name] else { continue }
            var segments = r.segments.filter { $0.complete && $0.bytes != nil && $0.sequence >= first }
            if r.replicaLive, let last = segments.last, r.isLastWithMedia(last.sequence) {
                segments.removeLast()
                if let old = s.heldBack[name], old.segment.sequence != last.sequence {
                    sink(recordable(r, old.segment, epoch: s.epoch, recordingStart: old.recordingStart))
                }
                s.heldBack[name] = HeldSegment(segment: last, recordingStart: first)
                s.recording = true
            }
            for seg in segments { sink(recordable(r, seg, epoch: s.epoch, recordingStart: first)) }
            if !segments.isEmpty { s.recording = true }
        }
        noteEnded(&s)
    }

    private func recordedInit(_ r: LiveRendition, version: Int, epoch: StreamEpoch) -> RecordedInit? {
        guard let i = r.inits[version] else { return nil }
        let video = i.tracks.lazy.compactMap { t -> AVCDecoderConfiguration? in
            if case .avc(let c) = t.format { return c } else { return nil }
        }.first
        return RecordedInit(stream: id, epoch: epoch, rendition: r.name, version: version, bytes: i.bytes,
                            codecs: i.tracks.map(\.format.codecString).joined(separator: ","), width: video?.width, height: video?.height)
    }

    /// What the recorder is given for a complete segment: what the recording holds of it (its cut
    /// applied, `LiveSegment.recordedUntil`), or a skip when that is nothing.
    private func recordable(_ r: LiveRendition, _ seg: LiveSegment, epoch: StreamEpoch, recordingStart: Int) -> RecordedObject {
        guard let kept = seg.recorded() else { return .skipped(stream: id, epoch: epoch, rendition: r.name, sequence: seg.sequence) }
        return .segment(recordedSegment(r, kept, epoch: epoch, recordingStart: recordingStart))
    }

    private func recordedSegment(_ r: LiveRendition, _ seg: LiveSegment, epoch: StreamEpoch, recordingStart: Int) -> RecordedSegment {
        RecordedSegment(stream: id, epoch: epoch, rendition: r.name, sequence: seg.sequence, duration: seg.duration,
                        discontinuity: seg.discontinuity, initVersion: seg.initVersion, programDateTime: seg.programDateTime,
                        bytes: seg.bytes ?? [], recordingStart: recordingStart)
    }

    /// The new session's first keyframe (`replayedFrom`, its NAL units) decides what of the held
    /// segments is recorded: a relay that reconnects replays its GOP in progress, which the old
    /// origin had packaged in part. When that keyframe leads one of the held source segment's
    /// parts (parts are cut at keyframes), the held segments of every rendition are recorded up to
    /// that part's start — the new session records the rest — so every frame is recorded once.
    /// Otherwise (another keyframe, the stream ends: nil) they are recorded whole (or as cut before).
    /// The cut stays with the segments (`LiveSegment.recordedUntil`) and goes to the standby, so
    /// that its copy of the recording holds those frames once too.
    private func recordHeldBack(_ s: inout State, replayedFrom keyframe: [UInt8]?) {
        let held = s.heldBack
        s.heldBack = [:]
        guard let sink = s.recorder else { return }
        let cut = keyframe.flatMap { k in
            held[Self.sourceRendition]?.segment.parts.first { $0.independent && $0.leads(withSample: k) }?.startTime
        }
        for name in s.order {
            guard var h = held[name], let r = s.renditions[name] else { continue }
            if let cut {
                let until = min(cut, h.segment.recordedUntil ?? cut)
                h.segment.recordedUntil = until
                cutRecording(&s, rendition: name, sequence: h.segment.sequence, until: until)
            }
            sink(recordable(r, h.segment, epoch: s.epoch, recordingStart: h.recordingStart))
        }
    }

    /// Marks a segment's recording cut (`LiveSegment.recordedUntil`) in the rendition, and tells the standby.
    private func cutRecording(_ s: inout State, rendition name: String, sequence: Int, until: Double) {
        guard s.renditions[name]?.cutRecording(of: sequence, until: until) == true, s.publishing, let r = s.renditions[name] else { return }
        var batch = r.replicaRendition(outputs: [])
        batch.cuts = [sequence: until]
        s.replica.send(batch, sessions: s.sessions, order: s.order, streamEpoch: s.epoch, recordingStart: s.recordingStart)
    }

    /// Whether a replayed keyframe leads a part of a source segment before the held ones: that
    /// GOP was recorded already (the relay keeps the GOP before the one in progress too, for an
    /// origin that died before replicating the end of it).
    private func recordedBeforeHeld(_ s: State, keyframe: [UInt8]) -> Bool {
        guard let held = s.heldBack[Self.sourceRendition], let source = s.source else { return false }
        return source.segments.contains { seg in
            seg.sequence < held.segment.sequence && seg.parts.contains { $0.independent && $0.leads(withSample: keyframe) }
        }
    }

    /// Tells the recorder once when every rendition has ended after something was recorded.
    private func noteEnded(_ s: inout State) {
        guard s.recording, let sink = s.recorder, !s.publishing, s.renditions.values.allSatisfy({ !$0.live }) else { return }
        recordHeldBack(&s, replayedFrom: nil)
        s.recording = false
        sink(.ended(stream: id, epoch: s.epoch))
    }

    // MARK: The ladder

    private func startLadder(config: AVCDecoderConfiguration, record: [UInt8]) {
        guard let ladder else { return }
        let fitting = ladder.rungs.filter { $0.outputSize(sourceWidth: config.width, sourceHeight: config.height) != nil }
        guard !fitting.isEmpty else { return }
        guard let transcoders else {
            onEvent(.transcodeFailed(reason: "this node has no transcoder"))
            return
        }
        let session = state.withLock { $0.sessions }
        let transcoder: any LadderTranscoder
        do {
            transcoder = try transcoders.ladder(ladder, record, config.width, config.height) { [weak self] output in
                self?.transcoded(output, session: session)
            }
        } catch {
            onEvent(.transcodeFailed(reason: "\(error)"))
            return
        }
        let old = state.withLock { s -> (any LadderTranscoder)? in
            guard s.sessions == session, s.publishing else { return transcoder }
            let old = s.ladder.transcoder
            s.ladder.transcoder = transcoder
            for rung in fitting where s.renditions[rung.name] == nil {
                var r = LiveRendition(name: rung.name)
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
        let answers = state.withLock { s -> [PlaylistWaiters.Answer] in
            guard s.sessions == session, s.abandonedSession != session else { return [] }
            switch output {
            case .config(let rung, let avcC, _, _):
                guard var r = s.renditions[rung], !r.live || (r.packager != nil && r.session != session) else { return [] }
                var ready: [PlaylistWaiters.Answer] = []
                if r.packager != nil, let flushed = r.finishPackager() {
                    // Still live from before a hand-over: its segment ends here, and it goes on
                    // from where the new session started.
                    s.renditions[rung] = r
                    ready += apply(flushed, to: &s, rendition: rung)
                    r = s.renditions[rung]!
                    r.nextSequence = max(r.nextSequence, s.sessionFirstSequence)
                    if let start = s.sessionTimelineStart { r.timelineEnd = max(r.timelineEnd ?? start, start) }
                }
                r.shed = false
                r.startPackager(settings: settings, discontinuity: r.nextSequence > 0 || r.session > 0)
                r.session = session
                r.audio.dropPending()
                s.renditions[rung] = r
                if let header = s.ladder.audioHeader {
                    ready += (try? push(&s, rendition: rung) { p throws(PackagingError) in
                        try p.push(audio: header.tag, timestamp: header.timestamp)
                    }) ?? []
                }
                let tag = FLVVideoTag(frameType: 1, codecID: 7, packet: .avcSequenceHeader(avcC))
                ready += (try? push(&s, rendition: rung) { p throws(PackagingError) in try p.push(video: tag, timestamp: 0) }) ?? []
                return ready
            case .frame(let f):
                guard s.renditions[f.rung]?.live == true else { return [] }
                let ts = UInt32(truncatingIfNeeded: f.dts)
                let tag = FLVVideoTag(frameType: f.isKeyframe ? 1 : 2, codecID: 7,
                                      packet: .avcNALUs(f.data, compositionTime: Int32(clamping: f.pts - f.dts)))
                var ready = (try? push(&s, rendition: f.rung) { p throws(PackagingError) in try p.push(video: tag, timestamp: ts) }) ?? []
                // A rung that starts now takes the source audio from this moment on.
                s.renditions[f.rung]!.audio.videoReached(ts, recent: s.ladder.recentAudio)
                ready += releaseAudio(&s, rendition: f.rung)
                return ready
            case .shed(let rung, _):
                s.renditions[rung]?.shed = true
                return finish(&s, rendition: rung)
            }
        }
        if case .shed(let rung, let reason) = output { onEvent(.renditionShed(rendition: rung, reason: reason)) }
        answers.resume()
    }

    /// Hands a rung the audio its video has caught up with, in timestamp order.
    private func releaseAudio(_ s: inout State, rendition name: String) -> [PlaylistWaiters.Answer] {
        guard let frames = s.renditions[name]?.audio.release() else { return [] }
        var ready: [PlaylistWaiters.Answer] = []
        for a in frames {
            ready += (try? push(&s, rendition: name) { p throws(PackagingError) in try p.push(audio: a.tag, timestamp: a.timestamp) }) ?? []
        }
        return ready
    }

    // MARK: Replication

    /// Sends everything this node makes of the stream from now on to `sink` (the standby's
    /// sender), one batch per packager step, in order. Called with the stream's lock held:
    /// `sink` must only queue.
    ///
    /// Replicate before announce: from then on, what the stream makes is shown to players
    /// (playlists, blocking requests, parts, segments) only once the standby holds it — the
    /// sender says so with `showReplicated(through:)`, or gives up waiting with
    /// `showUnreplicated(olderThan:)`. With no sink, everything is shown as it is made.
    public func replicate(to sink: (@Sendable (ReplicaBatch) -> Void)?) {
        let ready = state.withLock { s -> [PlaylistWaiters.Answer] in
            s.replica.sink = sink
            guard sink == nil else { return [] }
            s.replica.awaiting = []
            var ready: [PlaylistWaiters.Answer] = []
            for name in s.order where s.renditions[name]?.shown != nil {
                s.renditions[name]!.shown = nil
                ready += answers(&s, shown: name)
            }
            return ready
        }
        ready.resume()
    }

    private func replicate(_ s: inout State, rendition name: String, outputs: [PackagerOutput], live: Bool? = nil) {
        guard let r = s.renditions[name] else { return }
        var batch = r.replicaRendition(outputs: outputs)
        if let live { batch.live = live }
        guard let ordinal = s.replica.send(batch, sessions: s.sessions, order: s.order,
                                           streamEpoch: s.epoch, recordingStart: s.recordingStart),
              r.shown != nil else { return }
        s.replica.awaiting.append(.init(ordinal: ordinal, rendition: name, position: r.tip, madeAt: Self.clock()))
    }

    /// The standby holds every batch up to `ordinal` (`ReplicaBatch.ordinal`; a snapshot, all
    /// batches before it): players are shown what they carried.
    public func showReplicated(through ordinal: UInt64) {
        show { $0.ordinal <= ordinal }
    }

    /// Shows players what the standby has not acknowledged although the publisher went on
    /// sending for `seconds` after it was made (the standby dead, or too slow): the broadcast goes
    /// on without the guarantee rather than stall. What was made with no input for `seconds`
    /// after it keeps waiting: this node may be the one cut off (its publisher's connection
    /// half-open, so nothing comes in; what it made last, and the end of the session it makes
    /// when the connection is given up, may never have reached the node that took the stream
    /// over) — until it has waited `patience` (a node left on its own for good: its viewers get
    /// the end of the stream late rather than never). Returns how many batches' media it showed.
    @discardableResult
    public func showUnreplicated(after seconds: Double, patience: Double = .infinity) -> Int {
        let input = state.withLock { $0.input.lastInputAt } ?? -.infinity
        let now = Self.clock()
        return show { input - $0.madeAt >= seconds || now - $0.madeAt >= patience }
    }

    @discardableResult
    private func show(while done: (ReplicaLink.Awaiting) -> Bool) -> Int {
        let (n, ready) = state.withLock { s -> (Int, [PlaylistWaiters.Answer]) in
            let taken = s.replica.takeAwaiting(while: done)
            var touched: [String] = []
            for a in taken {
                guard let shown = s.renditions[a.rendition]?.shown else { continue }
                if a.position > shown { s.renditions[a.rendition]!.shown = a.position }
                if !touched.contains(a.rendition) { touched.append(a.rendition) }
            }
            return (taken.count, touched.flatMap { answers(&s, shown: $0) })
        }
        ready.resume()
        return n
    }

    /// The waiters of a rendition that more of it shown answers.
    private func answers(_ s: inout State, shown name: String) -> [PlaylistWaiters.Answer] {
        guard let r = s.renditions[name] else { return [] }
        return r.isOver ? s.waiters.takeAll(of: r) : s.waiters.takeSatisfied(by: r)
    }

    /// The whole stream as a snapshot batch. `whileLocked` runs before the lock is released,
    /// given the ordinal of the last batch handed to the sink: batches queued before it are
    /// covered by the snapshot, later ones are not.
    public func snapshot(_ whileLocked: (UInt64) -> Void = { _ in }) -> ReplicaBatch {
        state.withLock { s in
            whileLocked(s.replica.made)
            let renditions = s.order.compactMap { name -> ReplicaRendition? in
                guard let r = s.renditions[name] else { return nil }
                return ReplicaRendition(name: name, live: r.live, shed: r.shed, outputs: [], state: r.replicaState)
            }
            var batch = ReplicaBatch(snapshot: true, sessions: s.sessions, order: s.order, renditions: renditions)
            batch.streamEpoch = s.epoch
            batch.recordingStart = s.recordingStart
            return batch
        }
    }

    /// A standby applies a batch from the stream's origin. A snapshot replaces what it held;
    /// an incremental batch must follow the last one applied (same epoch, next sequence).
    public func applyReplica(_ batch: ReplicaBatch) throws(ReplicaError) {
        try state.withLock { s throws(ReplicaError) -> [PlaylistWaiters.Answer] in
            guard !s.publishing else { throw .publishingHere }
            // The node that made this life's state went on elsewhere (here): an old origin back
            // from a cut or a pause must not put its stale state back.
            if batch.snapshot, batch.streamEpoch == s.epoch, batch.sessions < s.sessions {
                throw .staleSnapshot(sessions: batch.sessions, here: s.sessions)
            }
            if !batch.snapshot, batch.streamEpoch != s.epoch { throw .outOfSequence(expected: nil, got: batch.sequence) }
            try s.replica.accept(batch)
            s.replicaAppliedAt = Self.clock()
            s.fresh = false
            if batch.snapshot {
                // The origin's names continue here: its objects keep their names.
                s.epoch = batch.streamEpoch
                s.renditions = [:]
                // What this node made and never had acknowledged is replaced with the rest.
                s.replica.awaiting = []
                for r in batch.renditions {
                    var rendition = r.state.map { LiveRendition(name: r.name, replica: $0) } ?? LiveRendition(name: r.name)
                    rendition.replicaLive = r.live
                    rendition.shed = r.shed
                    s.renditions[r.name] = rendition
                }
                if s.source == nil { s.renditions[Self.sourceRendition] = LiveRendition(name: Self.sourceRendition) }
            }
            s.order = batch.order.filter { name in s.renditions[name] != nil || batch.renditions.contains { $0.name == name } }
            if !s.order.contains(Self.sourceRendition) { s.order.insert(Self.sourceRendition, at: 0) }
            s.sessions = max(s.sessions, batch.sessions)
            // The origin decides what is recorded and under which id; the standby's copy follows.
            s.recordingStart = batch.recordingStart
            var ready: [PlaylistWaiters.Answer] = []
            for r in batch.renditions {
                if s.renditions[r.name] == nil { s.renditions[r.name] = LiveRendition(name: r.name) }
                if !batch.snapshot {
                    for (sequence, until) in r.cuts {
                        s.renditions[r.name]!.cutRecording(of: sequence, until: until)
                        if s.heldBack[r.name]?.segment.sequence == sequence { s.heldBack[r.name]!.segment.recordedUntil = until }
                    }
                    ready += apply(r.outputs, to: &s, rendition: r.name, replicate: false, holdBack: r.live)
                    s.renditions[r.name]!.setDates(r.dates)
                }
                s.renditions[r.name]!.replicaLive = r.live
                s.renditions[r.name]!.shed = r.shed
                if !r.live {
                    // The origin's publisher stopped: blocking viewers get their answer now.
                    ready += s.waiters.takeAll(of: s.renditions[r.name]!)
                }
            }
            let sourceLive = s.source.map { $0.replicaLive } ?? false
            if sourceLive { s.sessionEndedAt = nil } else if s.sessionEndedAt == nil { s.sessionEndedAt = Self.clock() }
            if batch.snapshot { handHeld(&s) } else { noteEnded(&s) }
            return ready
        }.resume()
    }

    /// A replica whose origin sent nothing for `silence` seconds while saying the stream goes on
    /// ends here as if its publisher had stopped: its viewers get the end of the playlists and the
    /// recording its end — a standby the origin stopped replicating to (a node joined and became
    /// the standby or the owner), or an origin gone with no one taking the stream over. A batch
    /// that comes after all takes it up again. True when it ended it.
    @discardableResult
    public func endReplica(ifSilentFor silence: Double) -> Bool {
        let (ended, ready) = state.withLock { s -> (Bool, [PlaylistWaiters.Answer]) in
            guard !s.publishing, s.replica.holdsReplica, s.renditions.values.contains(where: \.replicaLive),
                  Self.clock() - (s.replicaAppliedAt ?? 0) >= silence else { return (false, []) }
            var ready: [PlaylistWaiters.Answer] = []
            for name in s.order where s.renditions[name]?.replicaLive == true {
                s.renditions[name]!.replicaLive = false
                ready += s.waiters.takeAll(of: s.renditions[name]!)
            }
            if s.sessionEndedAt == nil { s.sessionEndedAt = Self.clock() }
            if s.recording { s.recorder?(.cutOff(stream: id, epoch: s.epoch)) }
            noteEnded(&s)
            return (true, ready)
        }
        ready.resume()
        return ended
    }

    /// True when this node holds something of the stream to serve (made here or replicated).
    public var hasMedia: Bool { state.withLock { $0.source?.holdsMedia == true } }

    /// The last keyframe the publisher sent in this session, while it is publishing here.
    public var latestKeyframe: SourceKeyframe? { state.withLock { $0.publishing ? $0.latestKeyframe : nil } }

    /// True while a publisher (a broadcaster or a relay) publishes the stream on this node.
    public var isPublishing: Bool { state.withLock { $0.publishing } }

    /// True while this node holds the stream as a standby's replica (not publishing it here).
    public var isReplica: Bool { state.withLock { !$0.publishing && $0.replica.holdsReplica } }

    // MARK: Reading

    public var status: LiveStreamStatus {
        state.withLock { s in
            let src = s.source!
            let video = src.videoConfig
            return LiveStreamStatus(
                state: s.streamState, publishing: s.publishing, sessions: s.sessions,
                firstSequence: src.segments.first?.sequence, lastSequence: src.segments.last?.sequence,
                bytesIn: s.input.bytesIn, videoFrames: s.input.videoFrames, audioFrames: s.input.audioFrames,
                averageBandwidth: src.averageBandwidth.map { Int($0) },
                peakBandwidth: src.peakBandwidth > 0 ? Int(src.peakBandwidth) : nil,
                width: video?.width, height: video?.height, frameRate: video?.frameRate,
                codecs: src.codecs, renditions: s.order.filter { s.renditions[$0]?.lastCompleteSequence != nil })
        }
    }

    public var health: StreamHealth {
        // The transcoder's figures are read outside the stream's lock (they have their own).
        let stats = state.withLock { $0.ladder.transcoder }?.stats
        return state.withLock { s in
            let t = stats ?? s.ladder.finishedStats
            return StreamHealth(
                state: s.streamState,
                inputBitrate: s.publishing ? s.input.inputBitrate : 0, frameRate: s.publishing ? s.input.frameRate : 0,
                keyframeInterval: s.input.keyframeInterval,
                audioVideoDriftMs: s.input.audioVideoDriftMs,
                droppedFrames: (t?.framesDropped ?? 0) + (t?.framesSkippedCorrupt ?? 0) + s.input.sourceCorruptFrames,
                encoderSpeed: t.map { $0.encoderSpeed },
                shedRenditions: s.order.filter { s.renditions[$0]?.shed == true },
                outputs: s.order.compactMap { s.renditions[$0]?.healthOutput },
                sourceInMaster: s.source?.lastCompleteSequence != nil && !leavesSourceOut(s), advice: advice(s))
        }
    }

    /// The source rendition (passed through) keeps the broadcaster's keyframes. When they are
    /// more than two segment targets apart, a player could only start, switch or recover that
    /// late on it: the master playlist leaves it out, the ladder (keyframes every segment
    /// target) standing in, unless the stream keeps it or there is no ladder to play.
    private func leavesSourceOut(_ s: State) -> Bool {
        guard !keepSource, ladder != nil, let source = s.source,
              source.longestListedSegment > 2 * settings.segmentTarget else { return false }
        return s.rungs.contains { s.renditions[$0].map { !$0.shed && $0.lastCompleteSequence != nil } ?? false }
    }

    /// Advice for the broadcaster, from what they send: keyframe interval, frame rate, bitrate.
    private func advice(_ s: State) -> [String] {
        var out: [String] = []
        let target = settings.segmentTarget
        let seconds = { (v: Double) in v == v.rounded() ? "\(Int(v))" : String(format: "%.1f", v) }
        let measured = s.input.keyframeInterval
        let since = s.publishing ? s.input.sinceKeyframe : nil
        if let k = [measured, since].compactMap({ $0 }).max(), k > target * 1.25 + 0.05 {
            // The interval once two keyframes have come; before that, the time since the first.
            let every = measured.map { $0 >= k ? "every \(seconds($0)) s" : nil } ?? nil
            var line = "Keyframes arrive \(every ?? "more than \(seconds(k.rounded(.down))) s apart"); set Keyframe Interval to "
                + "\(seconds(target)) s (OBS: Settings → Output → Streaming → Keyframe Interval)."
            if ladder == nil {
                line += " Without a ladder segments follow your keyframes, so players start and recover \(seconds(k)) s late."
            } else if leavesSourceOut(s) {
                line += " The ladder's renditions get a keyframe every \(seconds(target)) s anyway; the source rendition is left out "
                    + "of the master playlist until then."
            }
            out.append(line)
        }
        let fps = s.input.frameRate
        if s.publishing, fps > 0, fps < 20 || fps > 61 {
            out.append("The frame rate is \(seconds(fps)) fps; 30 or 60 fps plays most smoothly (OBS: Settings → Video → Common FPS Values).")
        }
        if s.publishing, let top = ladder?.rungs.map(\.videoBitrate).max(), s.input.inputBitrate > 0,
           s.input.inputBitrate < top * 8 / 10 {
            out.append("The input is \(s.input.inputBitrate / 1000) kbit/s, less than the top rendition's \(top / 1000) kbit/s: "
                + "raise Bitrate to at least \(top / 1000) kbit/s (OBS: Settings → Output → Streaming → Bitrate), or that rendition "
                + "adds bits but no quality.")
        }
        return out
    }

    /// True once a first complete segment exists: the stream can be played.
    public var isPlayable: Bool { state.withLock { $0.source?.lastCompleteSequence != nil } }

    /// The media playlist of a rendition as it stands.
    public func mediaPlaylist(rendition name: String = LiveStream.sourceRendition, skip: Bool = false) -> String? {
        state.withLock { $0.renditions[name]?.mediaPlaylist(settings: settings, epoch: $0.epoch, skip: skip) }
    }

    public func hasRendition(_ name: String) -> Bool { state.withLock { $0.renditions[name] != nil } }
    /// Whether players of a rendition get more of it (made, or made and not shown them yet).
    public func isLive(rendition name: String) -> Bool { state.withLock { $0.renditions[name].map { !$0.isOver } ?? false } }

    /// Whether a blocking request for `target` is reasonable: at most two segments ahead.
    public func isWithinReach(_ target: LiveTarget, rendition name: String = LiveStream.sourceRendition) -> Bool {
        state.withLock { s in
            guard let next = s.renditions[name]?.liveEdgeSequence else { return false }
            switch target {
            case .part(let seq, _), .segment(let seq): return seq <= next + 2
            }
        }
    }

    /// The epoch in this stream's object names.
    public var epoch: StreamEpoch { state.withLock { $0.epoch } }

    // Objects by number. With `epoch`, only of that epoch: a name from an earlier life of the
    // stream finds nothing.

    public func initSegment(rendition name: String = LiveStream.sourceRendition, version: Int, epoch: StreamEpoch? = nil) -> [UInt8]? {
        state.withLock { s in epoch.map { $0 == s.epoch } == false ? nil : s.renditions[name]?.inits[version]?.bytes }
    }

    public func segment(rendition name: String = LiveStream.sourceRendition, sequence: Int, epoch: StreamEpoch? = nil) -> [UInt8]? {
        state.withLock { s in epoch.map { $0 == s.epoch } == false ? nil : s.renditions[name]?.segment(sequence: sequence) }
    }

    public func part(rendition name: String = LiveStream.sourceRendition, sequence: Int, index: Int, epoch: StreamEpoch? = nil) -> [UInt8]? {
        state.withLock { s in epoch.map { $0 == s.epoch } == false ? nil : s.renditions[name]?.part(sequence: sequence, index: index) }
    }

    /// Master playlist figures of the renditions that can be played, source first.
    public var renditions: [RenditionInfo] {
        state.withLock { s in
            let sourceOut = leavesSourceOut(s)
            return s.order.compactMap { name -> RenditionInfo? in
                guard let r = s.renditions[name], !r.shed, r.lastCompleteSequence != nil, let codecs = r.codecs else { return nil }
                if name == Self.sourceRendition && sourceOut { return nil }
                let video = r.videoConfig
                let avg = r.averageBandwidth ?? 1_000_000
                let peak = max(r.peakBandwidth, avg)
                // Frame rate from the SPS if it says, else from the frames counted over the media.
                var fps = video?.frameRate
                let frames = s.input.videoFrames
                if fps == nil, r.bandwidthSeconds > 0, frames > 0, let src = s.source, src.bandwidthSeconds > 0 {
                    fps = (Double(frames) / max(src.bandwidthSeconds, 1)).rounded()
                }
                return RenditionInfo(name: name, bandwidth: Int(peak), averageBandwidth: Int(avg),
                                     width: video?.width, height: video?.height, frameRate: fps, codecs: codecs)
            }
        }
    }

    // MARK: Waiting

    /// Waits until `target` exists in a rendition, the rendition ends, or `timeout` passes.
    /// Returns true when the target exists.
    public func wait(for target: LiveTarget, rendition name: String = LiveStream.sourceRendition, timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { s in
            guard let r = s.renditions[name], !r.isSatisfied(target), !r.isOver else { return nil }
            return s.waiters.nextID()
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
                    if r.isOver { return false }
                    s.waiters.add(PlaylistWaiters.Waiter(rendition: name, target: target, continuation: c), id: id)
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            self.cancelWaiter(id)
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        if let answer = state.withLock({ $0.waiters.remove(id) }) { [answer].resume() }
    }

    public var waiterCount: Int { state.withLock { $0.waiters.count } }
}
