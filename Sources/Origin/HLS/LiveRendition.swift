// LiveRendition: the packaging state of one rendition of a live stream — its packager while
// it is being made here, the init segments, segments and parts it made, and the figures the
// playlists and the health report need. A value type without I/O or locking: `LiveStream`
// holds one per rendition under its lock.
import Foundation

/// One rendition (the source passed through, or a rung of the ladder) and everything it made.
///
/// Made here, it has a packager while its publishing session lasts; held as a standby's
/// replica, it has none and `replicaLive` says whether the origin is still making it.
/// Sequence numbers and the output timeline only grow, across sessions and takeovers, so a
/// player's playlist continues with a discontinuity rather than starting over.
struct LiveRendition {
    var name: String
    var packager: LivePackager?
    var inits: [Int: (bytes: [UInt8], tracks: [CMAFTrack])] = [:]
    var segments: [LiveSegment] = []
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
    /// The source audio this rung's video has not caught up with yet (transcoded rungs only).
    var audio = RungAudio()
    /// The publishing session the packager was started in.
    var session = 0
    /// How much of it players may see (`LiveStream`'s replicate-before-announce): up to what
    /// its standby acknowledged holding, on an origin that replicates; nil, everything (no
    /// standby, or a standby's own copy). Playlists, blocking requests, parts and segments
    /// all stop there, so nothing a player was told of is lost when the origin dies.
    var shown: MediaPosition?
    /// Its packager was dropped unflushed (a session given up: its relay's connection silent or
    /// broken): its last segment stays as it was, ended by the next session here (`takeOver`) or
    /// replaced by the state of the node that took the stream on.
    var abandoned = false

    init(name: String) {
        self.name = name
    }

    var live: Bool { packager != nil || replicaLive }

    /// Where everything it holds ends.
    var tip: MediaPosition {
        segments.last.map { MediaPosition(sequence: $0.sequence, parts: $0.parts.count, complete: $0.complete) } ?? .nothing
    }

    /// True when players may see all it holds.
    var allShown: Bool { shown.map { $0 >= tip } ?? true }

    /// Over for players: no more is made and they have seen all of it (their playlist ends).
    var isOver: Bool { !live && allShown }

    /// How many of a segment's parts players may see.
    func shownParts(of seg: LiveSegment) -> Int {
        guard let shown, seg.sequence >= shown.sequence else { return seg.parts.count }
        return seg.sequence == shown.sequence ? min(shown.parts, seg.parts.count) : 0
    }

    /// Whether players may see that a segment is complete.
    func isShownComplete(_ seg: LiveSegment) -> Bool {
        guard seg.complete else { return false }
        guard let shown else { return true }
        return seg.sequence < shown.sequence || (seg.sequence == shown.sequence && shown.complete)
    }

    /// The last part players may see.
    var lastPart: (sequence: Int, index: Int)? {
        for s in segments.reversed() {
            let n = shownParts(of: s)
            if n > 0 { return (s.sequence, s.parts[n - 1].index) }
        }
        return nil
    }

    /// The last segment players may see complete.
    var lastCompleteSequence: Int? { segments.last { isShownComplete($0) }?.sequence }

    /// True when it holds media, shown to players or not.
    var holdsMedia: Bool { segments.contains { !$0.parts.isEmpty } }

    /// The sequence number a blocking request may reasonably ask for up to two segments past.
    var liveEdgeSequence: Int { segments.last.map { $0.complete ? $0.sequence + 1 : $0.sequence } ?? nextSequence }

    func isSatisfied(_ target: LiveTarget) -> Bool {
        switch target {
        case .segment(let seq):
            guard let last = lastCompleteSequence else { return false }
            return last >= seq
        case .part(var seq, var index):
            // A part index past the end of a complete segment means the next segment's first part.
            if let s = segments.first(where: { $0.sequence == seq }), isShownComplete(s), index >= s.parts.count {
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

    /// Bits per second over the complete segments so far.
    var averageBandwidth: Double? { bandwidthSeconds > 0 ? bandwidthBits / bandwidthSeconds : nil }

    // MARK: Packaging

    /// Starts a packager that continues this rendition's numbering and timeline.
    mutating func startPackager(settings: PackagingSettings, discontinuity: Bool) {
        packager = LivePackager(settings: settings, firstSequence: nextSequence, firstInitVersion: nextInitVersion,
                                timelineStart: timelineEnd, discontinuity: discontinuity)
    }

    /// Runs one packager step; nothing when the rendition has no packager. A step that throws
    /// leaves the packager as it was.
    mutating func push(_ step: (inout LivePackager) throws(PackagingError) -> [PackagerOutput]) throws(PackagingError) -> [PackagerOutput] {
        guard var p = packager else { return [] }
        let out = try step(&p)
        packager = p
        return out
    }

    /// Drops the packager without flushing it (`abandoned`): what it held and had not made into
    /// a part is lost, the segment in progress stays unfinished.
    mutating func abandonPackager() {
        guard packager != nil else { return }
        packager = nil
        abandoned = true
        timelineEnd = [timelineEnd, partEnd].compactMap { $0 }.max()
    }

    /// Flushes and drops the packager: what it still held, or nil when there was none.
    mutating func finishPackager() -> [PackagerOutput]? {
        guard var p = packager else { return nil }
        packager = nil
        let out = p.finish()
        timelineEnd = p.timelineEnd
        return out
    }

    /// Records packager output (made here or replicated from the origin) and trims what the
    /// live window no longer needs. `now` dates the segments it starts.
    mutating func record(_ outputs: [PackagerOutput], settings: PackagingSettings, now: Date) {
        for o in outputs {
            switch o {
            case .initSegment(let version, let bytes, let tracks):
                inits[version] = (bytes, tracks)
                nextInitVersion = version + 1
            case .segmentStarted(let seq, let discontinuity, let initVersion):
                segments.append(LiveSegment(sequence: seq, parts: [], complete: false, discontinuity: discontinuity,
                                            initVersion: initVersion, programDateTime: now))
                nextSequence = seq + 1
            case .part(let part):
                partEnd = max(partEnd ?? 0, part.startTime + part.duration)
                if let i = segments.lastIndex(where: { $0.sequence == part.segment }) {
                    segments[i].parts.append(part)
                    if segments[i].parts.count == 1 {
                        // The segment's wall-clock time is when its first media was packaged.
                        segments[i].programDateTime = now.addingTimeInterval(-part.duration)
                    }
                }
            case .segmentEnded(let seq):
                if let i = segments.lastIndex(where: { $0.sequence == seq }) {
                    if segments[i].parts.isEmpty {
                        segments.remove(at: i)
                    } else {
                        completeSegment(at: i)
                    }
                }
                trim(settings: settings)
            }
        }
    }

    private mutating func completeSegment(at i: Int) {
        segments[i].complete = true
        let bytes = segments[i].parts.flatMap(\.bytes)
        segments[i].bytes = bytes
        let d = segments[i].duration
        maxSegmentDuration = max(maxSegmentDuration, d)
        let bits = Double(bytes.count * 8)
        bandwidthBits += bits
        bandwidthSeconds += d
        if d > 0.2 {
            peakBandwidth = max(peakBandwidth, bits / d)
            lastSegmentBitrate = bits / d
        }
    }

    /// Keeps the live window plus a margin for slow players; drops the parts of old segments.
    private mutating func trim(settings: PackagingSettings) {
        let keep = settings.windowSegments + 6
        var complete = segments.filter(\.complete).count
        while complete > keep, let first = segments.first, first.complete {
            if segments.removeFirst().discontinuity { discontinuitySequence += 1 }
            complete -= 1
        }
        // Parts are only listed near the live edge; keep them a little longer than that.
        let keepPartsFor = Int((Double(targetDuration(settings: settings)) * 3 / settings.segmentTarget).rounded(.up)) + 3
        if segments.count > keepPartsFor {
            for i in 0..<(segments.count - keepPartsFor) where segments[i].complete {
                for j in segments[i].parts.indices { segments[i].parts[j].bytes = [] }
            }
        }
        let used = Set(segments.map(\.initVersion))
        for v in inits.keys where !used.contains(v) && v < nextInitVersion - 1 { inits[v] = nil }
    }

    /// The longest segment still listed, the growing one included: how far apart this
    /// rendition's keyframes are now (at least).
    var longestListedSegment: Double { segments.lazy.map(\.duration).max() ?? 0 }

    func targetDuration(settings: PackagingSettings) -> Int {
        Int(max(settings.segmentTarget, maxSegmentDuration).rounded(.up))
    }

    // MARK: Reading

    /// The media playlist as it stands; nil until a first segment is complete.
    func mediaPlaylist(settings: PackagingSettings, epoch: StreamEpoch, skip: Bool) -> String? {
        guard lastCompleteSequence != nil else { return nil }
        let target = targetDuration(settings: settings)
        // The live window: the last `windowSegments` complete segments and the growing one.
        // Only what players may see: up to the last segment shown, its parts as far as shown; a
        // segment begun with nothing in it yet is not listed (its date is not known until its
        // first part, and the preload hint names that part anyway).
        var listed = segments.compactMap { seg -> LiveSegment? in
            let n = shownParts(of: seg)
            let complete = isShownComplete(seg)
            guard n > 0 || complete else { return nil }
            if n == seg.parts.count && complete == seg.complete { return seg }
            var s = seg
            s.parts = Array(seg.parts.prefix(n))
            s.complete = complete
            return s
        }
        var discontinuities = discontinuitySequence
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
            ended: isOver, discontinuitySequence: discontinuities, epoch: epoch)
        return playlist.render(skipOlderThan: skip ? Double(target) * 6 : nil)
    }

    func segment(sequence: Int) -> [UInt8]? {
        segments.first { $0.sequence == sequence && isShownComplete($0) }?.bytes
    }

    func part(sequence: Int, index: Int) -> [UInt8]? {
        guard let seg = segments.first(where: { $0.sequence == sequence }),
              index < shownParts(of: seg), !seg.parts[index].bytes.isEmpty else { return nil }
        return seg.parts[index].bytes
    }

    var healthOutput: StreamHealth.Output {
        let v = videoConfig
        return StreamHealth.Output(rendition: name, width: v?.width, height: v?.height,
                                   averageBitrate: averageBandwidth.map { Int($0) },
                                   lastSegmentBitrate: lastSegmentBitrate.map { Int($0) }, shed: shed)
    }

    // MARK: Replication

    /// The whole state, as a snapshot carries it to a standby.
    var replicaState: ReplicaState {
        ReplicaState(
            inits: inits.keys.sorted().map { v in ReplicaState.Init(version: v, bytes: inits[v]!.bytes, tracks: inits[v]!.tracks) },
            segments: segments, discontinuitySequence: discontinuitySequence,
            nextSequence: nextSequence, nextInitVersion: nextInitVersion, timelineEnd: timelineEnd, partEnd: partEnd,
            maxSegmentDuration: maxSegmentDuration, bandwidthBits: bandwidthBits, bandwidthSeconds: bandwidthSeconds,
            peakBandwidth: peakBandwidth, lastSegmentBitrate: lastSegmentBitrate)
    }

    /// A standby's copy of a rendition from a snapshot.
    init(name: String, replica st: ReplicaState) {
        self.name = name
        for i in st.inits { inits[i.version] = (i.bytes, i.tracks) }
        segments = st.segments
        discontinuitySequence = st.discontinuitySequence
        nextSequence = st.nextSequence
        nextInitVersion = st.nextInitVersion
        timelineEnd = st.timelineEnd
        partEnd = st.partEnd
        maxSegmentDuration = st.maxSegmentDuration
        bandwidthBits = st.bandwidthBits
        bandwidthSeconds = st.bandwidthSeconds
        peakBandwidth = st.peakBandwidth
        lastSegmentBitrate = st.lastSegmentBitrate
    }

    /// This rendition's part of an incremental batch: `outputs` just recorded, with the
    /// origin's dates of the segments they touched, so both playlists say the same.
    func replicaRendition(outputs: [PackagerOutput]) -> ReplicaRendition {
        var dates: [Int: Date] = [:]
        for o in outputs {
            let touched: Int
            switch o {
            case .part(let p): touched = p.segment
            case .segmentStarted(let sequence, _, _): touched = sequence
            default: continue
            }
            if let seg = segments.last(where: { $0.sequence == touched }) { dates[touched] = seg.programDateTime }
        }
        return ReplicaRendition(name: name, live: live, shed: shed, outputs: outputs, dates: dates, state: nil)
    }

    /// Sets the origin's dates of segments, as an incremental batch carries them.
    mutating func setDates(_ dates: [Int: Date]) {
        for (sequence, date) in dates {
            if let i = segments.lastIndex(where: { $0.sequence == sequence }) { segments[i].programDateTime = date }
        }
    }

    /// A standby takes the stream over: it stops being a replica, its timeline continues
    /// after the last media it holds, and a segment the old origin began with nothing in it
    /// is forgotten (its number is free again). Returns the sequence of a segment the old
    /// origin left unfinished with parts in it, which the caller ends here.
    /// Whether segment `sequence` is the last one with media (nothing made after it yet).
    func isLastWithMedia(_ sequence: Int) -> Bool { segments.last(where: { !$0.parts.isEmpty })?.sequence == sequence }

    /// Marks the recording's cut of segment `sequence` (`LiveSegment.recordedUntil`); false when it holds no such segment.
    @discardableResult
    mutating func cutRecording(of sequence: Int, until: Double) -> Bool {
        guard let i = segments.lastIndex(where: { $0.sequence == sequence }) else { return false }
        segments[i].recordedUntil = until
        return true
    }

    mutating func takeOver() -> Int? {
        guard packager == nil else { return nil }
        let unfinished = replicaLive || abandoned
        replicaLive = false
        abandoned = false
        timelineEnd = [timelineEnd, partEnd].compactMap { $0 }.max()
        guard unfinished, let last = segments.last, !last.complete else { return nil }
        if last.parts.isEmpty {
            segments.removeLast()
            nextSequence = last.sequence
            return nil
        }
        return last.sequence
    }
}

/// A point in a rendition's media, in the order it is made: a segment's parts one by one, then
/// its end. Sequence numbers only grow, so positions compare across sessions and takeovers.
struct MediaPosition: Comparable, Sendable {
    var sequence: Int
    var parts: Int
    var complete: Bool

    /// Before anything.
    static let nothing = MediaPosition(sequence: .min, parts: 0, complete: true)

    static func < (a: MediaPosition, b: MediaPosition) -> Bool {
        (a.sequence, a.parts, a.complete ? 1 : 0) < (b.sequence, b.parts, b.complete ? 1 : 0)
    }
}
