// LivePackager: turns FLV media (as it arrives over RTMP) into CMAF parts and segments.
// A pure value type: no clock, no I/O. It decides where parts and segments are cut
// (parts of about `partTarget`, segments of about `segmentTarget`, segments always
// starting at a video keyframe) and hands back finished objects.

/// Settings for cutting parts and segments.
public struct PackagingSettings: Sendable, Equatable {
    /// Target duration of an LL-HLS part, in seconds (the playlist's `PART-TARGET`).
    public var partTarget: Double
    /// Target duration of a segment, in seconds. Segments are cut at the first keyframe
    /// once this much media has been gathered, so a long GOP makes a long segment.
    public var segmentTarget: Double
    /// How many complete segments a live media playlist lists.
    public var windowSegments: Int

    public init(partTarget: Double = 0.5, segmentTarget: Double = 2.0, windowSegments: Int = 8) {
        self.partTarget = partTarget
        self.segmentTarget = segmentTarget
        self.windowSegments = windowSegments
    }

    public static let `default` = PackagingSettings()

    /// Checks that the settings make sense together; returns a message a user can act on.
    public func validate() throws(PackagingError) {
        guard partTarget >= 0.1, partTarget <= 5 else {
            throw .badSettings("part target must be between 0.1 and 5 seconds, got \(partTarget)")
        }
        guard segmentTarget >= partTarget, segmentTarget <= 30 else {
            throw .badSettings("segment target must be between the part target and 30 seconds, got \(segmentTarget)")
        }
        guard windowSegments >= 3, windowSegments <= 1000 else {
            throw .badSettings("the live window must hold 3 to 1000 segments, got \(windowSegments)")
        }
    }
}

public enum PackagingError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSettings(String)
    case unsupportedVideoCodec(UInt8)
    case unsupportedAudioCodec(UInt8)
    case badCodecConfiguration(String)

    public var description: String {
        switch self {
        case .badSettings(let m): return "bad packaging settings: \(m)"
        case .unsupportedVideoCodec(let id):
            return "unsupported video codec (FLV codec id \(id)); StreamTube takes H.264 (AVC) video"
        case .unsupportedAudioCodec(let id):
            return "unsupported audio codec (FLV sound format \(id)); StreamTube takes AAC audio"
        case .badCodecConfiguration(let m): return "bad codec configuration: \(m)"
        }
    }
}

/// One finished LL-HLS part: a CMAF fragment (moof + mdat).
public struct PackagedPart: Sendable, Equatable {
    public var segment: Int
    public var index: Int
    public var duration: Double
    public var independent: Bool
    public var bytes: [UInt8]
    /// Media time (seconds, on the output timeline) of the part's first video sample,
    /// or first audio sample for an audio-only stream.
    public var startTime: Double
}

extension PackagedPart {
    /// Whether the part's first sample is `sample` byte for byte: the packager keeps a frame's NAL
    /// units as they came and writes the video run first in the `mdat`, so a keyframe sent again
    /// (a relay's replay) is recognised in a part another node made of it.
    func leads(withSample sample: [UInt8]) -> Bool {
        var offset = 0
        while offset + 8 <= bytes.count {
            let size32 = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            let isMdat = bytes[offset + 4] == 0x6D && bytes[offset + 5] == 0x64 && bytes[offset + 6] == 0x61 && bytes[offset + 7] == 0x74
            var header = 8
            var size = size32
            if size32 == 1 {
                guard offset + 16 <= bytes.count else { return false }
                size = bytes[offset + 8..<offset + 16].reduce(0) { $0 << 8 | Int($1) }
                header = 16
            }
            if isMdat {
                let start = offset + header
                return !sample.isEmpty && start + sample.count <= bytes.count && bytes[start..<start + sample.count].elementsEqual(sample)
            }
            guard size >= header else { return false }
            offset += size
        }
        return false
    }
}

/// What the packager hands back as media flows in.
public enum PackagerOutput: Sendable, Equatable {
    /// A new initialization segment; the segments after it use it (`EXT-X-MAP`).
    case initSegment(version: Int, bytes: [UInt8], tracks: [CMAFTrack])
    /// A part is finished and can be served.
    case part(PackagedPart)
    /// A segment is finished; `discontinuity` marks a timeline or format break before it.
    case segmentEnded(sequence: Int)
    /// A new segment has begun (its first part follows).
    case segmentStarted(sequence: Int, discontinuity: Bool, initVersion: Int)
}

/// Cuts incoming FLV media into CMAF parts and segments.
public struct LivePackager: Sendable {
    public let settings: PackagingSettings

    static let videoTrackID: UInt32 = 1
    static let audioTrackID: UInt32 = 2
    static let videoTimescale: UInt32 = 90_000

    private var videoConfig: AVCDecoderConfiguration?
    private var audioConfig: AudioSpecificConfig?
    private var tracks: [CMAFTrack] = []
    private var initVersion = -1
    private var formatChanged = false

    /// Media time video waits at the start for an audio header, so audio that begins a few
    /// frames after the first keyframe (PCM and G.711 from ffmpeg: about 70 ms) is in the
    /// first init segment. Audio later than that restarts the media at a keyframe.
    static let audioWaitMS: Int64 = 500
    /// Video held at the start while waiting for audio.
    private var heldVideo: [(inputMS: Int64, cts: Int32, sync: Bool, data: [UInt8])] = []
    private var stoppedWaitingForAudio = false

    // Output timeline. Video in 90 kHz, audio in its sample rate.
    private var pendingVideo: (dts: Int64, cts: Int32, sync: Bool, data: [UInt8])?
    private var lastVideoDuration: Int64 = 3000
    private var frameDuration: Double = 0
    private var videoOffset: Int64 = 0          // added to input dts (90 kHz) to get output dts
    private var lastVideoInputDTS: Int64?
    private var lastVideoOutputEnd: Int64?
    private var nextAudioDTS: Int64?
    private var lastAudioInputMS: Int64?

    // Current part and segment.
    private var sequence: Int
    private var partIndex = 0
    private var segmentOpen = false
    private var pendingDiscontinuity: Bool
    private var partStart: Int64 = 0         // video 90 kHz (or audio timescale when audio-only)
    private var segmentStart: Int64 = 0
    private var partIndependent = false
    private var videoRun: [CMAFSample] = []
    private var videoRunBase: Int64 = 0
    private var audioRun: [CMAFSample] = []
    private var audioRunBase: Int64 = 0
    private var fragmentSequence: UInt32 = 1
    private var started = false

    /// - Parameters:
    ///   - firstSequence: media sequence number of the first segment (continues a stream
    ///     that was live before, so sequence numbers only ever grow).
    ///   - timelineStart: output media time (seconds) at which this session's media starts,
    ///     or nil to keep the broadcaster's own timestamps.
    ///   - discontinuity: whether the first segment follows earlier media of the same stream.
    public init(settings: PackagingSettings = .default, firstSequence: Int = 0,
                firstInitVersion: Int = 0, timelineStart: Double? = nil, discontinuity: Bool = false) {
        self.settings = settings
        self.sequence = firstSequence
        self.initVersion = firstInitVersion - 1
        self.pendingDiscontinuity = discontinuity
        self.timelineStart = timelineStart
    }

    private var timelineStart: Double?

    public var hasVideo: Bool { videoConfig != nil }
    public var hasAudio: Bool { audioConfig != nil }
    public var currentTracks: [CMAFTrack] { tracks }

    /// End of the output timeline so far, in seconds.
    public var timelineEnd: Double {
        if let end = lastVideoOutputEnd { return Double(end) / Double(Self.videoTimescale) }
        if let next = nextAudioDTS, let a = audioConfig { return Double(next) / Double(a.sampleRate) }
        return timelineStart ?? 0
    }

    // MARK: Input

    /// Feeds one FLV video tag.
    public mutating func push(video tag: FLVVideoTag, timestamp: UInt32) throws(PackagingError) -> [PackagerOutput] {
        guard tag.codecID == 7 else { throw .unsupportedVideoCodec(tag.codecID) }
        switch tag.packet {
        case .avcSequenceHeader(let record):
            // Some encoders (ffmpeg's tee muxer, for one) send an empty header first and the
            // parameter sets in band: wait for them rather than refusing the stream.
            if record.isEmpty { return [] }
            let config: AVCDecoderConfiguration
            do { config = try AVCDecoderConfiguration(record: record) } catch {
                throw .badCodecConfiguration("AVC sequence header: \(error)")
            }
            if let old = videoConfig, old.record != config.record, started { formatChanged = true }
            videoConfig = config
            return []
        case .avcEndOfSequence:
            return []
        case .other:
            throw .unsupportedVideoCodec(tag.codecID)
        case .avcNALUs(let data, let compositionTime):
            if videoConfig == nil, tag.isKeyframe, let record = Self.recordFromInBandParameterSets(data),
               let config = try? AVCDecoderConfiguration(record: record) {
                videoConfig = config
            }
            guard videoConfig != nil else { return [] }  // no configuration yet: nothing decodable
            // A frame whose NAL units do not hold together is dropped, and so is everything
            // that depends on it: up to the next keyframe.
            if !Self.isWellFormed(data, lengthSize: videoConfig!.nalLengthSize) {
                skippingToKeyframe = true
                droppedCorruptFrames += 1
                return []
            }
            if skippingToKeyframe {
                guard tag.isKeyframe else {
                    droppedCorruptFrames += 1
                    return []
                }
                skippingToKeyframe = false
            }
            return holdOrPushVideoSample(inputMS: Int64(timestamp), cts: compositionTime, sync: tag.isKeyframe, data: data)
        }
    }

    /// Before the start, with no audio header yet, video from the first keyframe is held for
    /// up to `audioWaitMS` of media time; then it goes out without audio.
    private mutating func holdOrPushVideoSample(inputMS: Int64, cts: Int32, sync: Bool, data: [UInt8]) -> [PackagerOutput] {
        guard !started, audioConfig == nil, !stoppedWaitingForAudio, sync || !heldVideo.isEmpty else {
            return pushVideoSample(inputMS: inputMS, cts: cts, sync: sync, data: data)
        }
        heldVideo.append((inputMS, cts, sync, data))
        guard let first = heldVideo.first, inputMS - first.inputMS >= Self.audioWaitMS || inputMS < first.inputMS else { return [] }
        stoppedWaitingForAudio = true
        return releaseHeldVideo()
    }

    private mutating func releaseHeldVideo() -> [PackagerOutput] {
        let held = heldVideo
        heldVideo = []
        var out: [PackagerOutput] = []
        for v in held { out += pushVideoSample(inputMS: v.inputMS, cts: v.cts, sync: v.sync, data: v.data) }
        return out
    }

    /// Feeds one FLV audio tag.
    public mutating func push(audio tag: FLVAudioTag, timestamp: UInt32) throws(PackagingError) -> [PackagerOutput] {
        guard tag.soundFormat == 10 else { throw .unsupportedAudioCodec(tag.soundFormat) }
        switch tag.packet {
        case .aacSequenceHeader(let bytes):
            let config: AudioSpecificConfig
            do { config = try AudioSpecificConfig(bytes: bytes) } catch {
                throw .badCodecConfiguration("AAC sequence header: \(error)")
            }
            if let old = audioConfig, old.bytes != config.bytes, started { formatChanged = true }
            // Audio that begins after the media started (its header came after the first
            // keyframe, as with audio transcoded to AAC from its first tag on): the init
            // segment has no audio track, so the next keyframe starts one with both.
            if started, !tracks.contains(where: { $0.id == Self.audioTrackID }) { formatChanged = true }
            audioConfig = config
            // Video waiting for this header starts now, with both tracks.
            return heldVideo.isEmpty ? [] : releaseHeldVideo()
        case .other:
            throw .unsupportedAudioCodec(tag.soundFormat)
        case .aacRaw(let data):
            guard audioConfig != nil, !data.isEmpty else { return [] }
            return pushAudioSample(inputMS: Int64(timestamp), data: data)
        }
    }

    /// The publisher stopped: flush what is buffered into a last part and segment.
    public mutating func finish() -> [PackagerOutput] {
        var out: [PackagerOutput] = releaseHeldVideo()
        flushPendingVideo()
        let end = hasVideo ? (lastVideoOutputEnd ?? partStart) : (nextAudioDTS ?? partStart)
        closePart(at: end, into: &out)
        if segmentOpen {
            out.append(.segmentEnded(sequence: sequence))
            segmentOpen = false
            sequence += 1
        }
        return out
    }

    /// The sequence number the next segment will get.
    public var nextSequence: Int { segmentOpen ? sequence + 1 : sequence }
    public var lastInitVersion: Int { initVersion }

    /// Frames dropped because they (or a frame they depend on) were malformed.
    public private(set) var droppedCorruptFrames = 0
    private var skippingToKeyframe = false

    /// Length-prefixed NAL units that exactly fill the frame, each with a clear forbidden bit
    /// and a NAL unit type H.264 defines (1–23).
    static func isWellFormed(_ data: [UInt8], lengthSize: Int) -> Bool {
        guard (1...4).contains(lengthSize), !data.isEmpty else { return false }
        var i = 0
        while i < data.count {
            guard i + lengthSize <= data.count else { return false }
            var n = 0
            for k in 0..<lengthSize { n = n << 8 | Int(data[i + k]) }
            i += lengthSize
            guard n > 0, n <= data.count - i else { return false }
            let header = data[i]
            guard header & 0x80 == 0, (1...23).contains(header & 0x1F) else { return false }
            i += n
        }
        return true
    }

    /// An AVCDecoderConfigurationRecord built from the SPS and PPS NAL units a keyframe
    /// carries in band (4-byte length-prefixed), or nil when it carries none.
    static func recordFromInBandParameterSets(_ data: [UInt8]) -> [UInt8]? {
        var sps: [UInt8]?, pps: [UInt8]?
        var i = 0
        while i + 4 <= data.count {
            let n = Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3])
            i += 4
            guard n > 0, i + n <= data.count else { return nil }
            let nal = Array(data[i..<(i + n)])
            switch nal[0] & 0x1F {
            case 7 where sps == nil: sps = nal
            case 8 where pps == nil: pps = nal
            default: break
            }
            i += n
        }
        guard let sps, let pps, sps.count >= 4, sps.count <= 0xFFFF, pps.count <= 0xFFFF else { return nil }
        return [1, sps[1], sps[2], sps[3], 0xFF, 0xE1, UInt8(sps.count >> 8), UInt8(sps.count & 0xFF)] + sps
            + [1, UInt8(pps.count >> 8), UInt8(pps.count & 0xFF)] + pps
    }

    // MARK: Cutting

    private mutating func startIfNeeded(into out: inout [PackagerOutput]) {
        guard !started || formatChanged else { return }
        var t: [CMAFTrack] = []
        if let v = videoConfig { t.append(CMAFTrack(id: Self.videoTrackID, timescale: Self.videoTimescale, format: .avc(v))) }
        if let a = audioConfig { t.append(CMAFTrack(id: Self.audioTrackID, timescale: UInt32(a.sampleRate), format: .aac(a))) }
        tracks = t
        initVersion += 1
        if started { pendingDiscontinuity = true }
        started = true
        formatChanged = false
        out.append(.initSegment(version: initVersion, bytes: CMAFWriter.initSegment(tracks: t), tracks: t))
    }

    private mutating func pushVideoSample(inputMS: Int64, cts: Int32, sync: Bool, data: [UInt8]) -> [PackagerOutput] {
        var out: [PackagerOutput] = []
        if !started || formatChanged {
            // Media starts (or restarts after a format change) at a keyframe.
            guard sync else { return [] }
            if formatChanged, segmentOpen { out += finishForRestart() }
            startIfNeeded(into: &out)
        }
        let inputDTS = inputMS * 90
        if lastVideoInputDTS == nil {
            if let start = timelineStart { videoOffset = Int64(start * 90_000) - inputDTS }
        } else if let last = lastVideoInputDTS {
            let delta = inputDTS - last
            // A jump back, or forward by more than 5 s, is a broken timeline: keep the
            // output continuous and mark a discontinuity at the next segment.
            if delta < 0 || delta > 5 * 90_000 {
                let expected = (pendingVideo?.dts ?? 0) + lastVideoDuration
                videoOffset = expected - inputDTS
                pendingDiscontinuity = true
            }
        }
        lastVideoInputDTS = inputDTS
        let dts = inputDTS + videoOffset
        let ctsTicks = cts * 90

        if let p = pendingVideo {
            var duration = dts - p.dts
            if duration <= 0 || duration > 90_000 {
                duration = lastVideoDuration
            } else {
                lastVideoDuration = duration
                // Timestamps arrive in whole milliseconds: a smoothed frame duration keeps that
                // jitter from cutting a part one frame early.
                frameDuration = frameDuration == 0 ? Double(duration) : frameDuration * 0.9 + Double(duration) * 0.1
            }
            appendVideo(dts: p.dts, duration: duration, cts: p.cts, sync: p.sync, data: p.data)
            lastVideoOutputEnd = p.dts + duration
        }
        let partTarget = Int64(settings.partTarget * 90_000)
        let segmentTarget = Int64(settings.segmentTarget * 90_000)
        if !segmentOpen {
            openSegment(at: dts, into: &out)
        } else if sync && (dts - segmentStart >= segmentTarget - lastVideoDuration / 2 || pendingDiscontinuity) {
            closePart(at: dts, into: &out)
            out.append(.segmentEnded(sequence: sequence))
            sequence += 1
            segmentOpen = false
            openSegment(at: dts, into: &out)
        } else if dts + Int64(frameDuration.rounded()) - partStart > partTarget + 45 || (sync && !videoRun.isEmpty) {
            closePart(at: dts, into: &out)
            partStart = dts
        }
        if videoRun.isEmpty && audioRun.isEmpty { partIndependent = sync }
        pendingVideo = (dts, ctsTicks, sync, data)
        return out
    }

    private mutating func pushAudioSample(inputMS: Int64, data: [UInt8]) -> [PackagerOutput] {
        guard let config = audioConfig else { return [] }
        var out: [PackagerOutput] = []
        let rate = Int64(config.sampleRate)
        let frame = Int64(config.samplesPerFrame)
        if videoConfig == nil {
            if !started || formatChanged {
                if formatChanged, segmentOpen { out += finishForRestart() }
                startIfNeeded(into: &out)
            }
        } else if !started || !segmentOpen {
            return []  // audio before the first video keyframe is dropped
        } else if !tracks.contains(where: { $0.id == Self.audioTrackID }) {
            return []  // the init segment in use has no audio track: dropped until the restart with one
        }
        // Derive the output time from the sample count, resyncing to the input clock when
        // it drifts by more than a frame (gaps, jumps).
        var computed = inputMS * rate / 1000
        if hasVideo {
            computed = (inputMS * 90 + videoOffset) * rate / 90_000
        } else if lastAudioInputMS == nil, let start = timelineStart {
            audioInputOffset = Int64(start * Double(rate)) - computed
        }
        computed += audioInputOffset
        lastAudioInputMS = inputMS
        var dts = computed
        if let expected = nextAudioDTS, abs(computed - expected) <= frame { dts = expected }
        if !hasVideo, let expected = nextAudioDTS, computed < expected - frame || computed > expected + 5 * rate {
            audioInputOffset += expected - computed
            dts = expected
            pendingDiscontinuity = true
        }
        if hasVideo, let expected = nextAudioDTS, dts < expected { dts = expected }  // never overlap
        nextAudioDTS = dts + frame

        if !hasVideo {
            let partTarget = Int64(settings.partTarget * Double(rate))
            let segmentTarget = Int64(settings.segmentTarget * Double(rate))
            if !segmentOpen {
                openSegment(at: dts, into: &out)
            } else if dts - segmentStart >= segmentTarget - frame / 2 || pendingDiscontinuity {
                closePart(at: dts, into: &out)
                out.append(.segmentEnded(sequence: sequence))
                sequence += 1
                segmentOpen = false
                openSegment(at: dts, into: &out)
            } else if dts + frame - partStart > partTarget {
                closePart(at: dts, into: &out)
                partStart = dts
            }
            if audioRun.isEmpty { partIndependent = true }
        }
        if audioRun.isEmpty { audioRunBase = dts }
        audioRun.append(CMAFSample(duration: UInt32(frame), compositionOffset: 0, isSync: true, data: data))
        return out
    }

    private var audioInputOffset: Int64 = 0

    /// The last frame has no successor to tell its duration: it gets the usual frame duration.
    private mutating func flushPendingVideo() {
        guard let p = pendingVideo else { return }
        var duration = frameDuration > 0 ? Int64(frameDuration.rounded()) : lastVideoDuration
        // Never let the estimate push the part past its target.
        let room = partStart + Int64(settings.partTarget * 90_000) - p.dts
        if room > 0 { duration = min(duration, room) }
        appendVideo(dts: p.dts, duration: duration, cts: p.cts, sync: p.sync, data: p.data)
        lastVideoOutputEnd = p.dts + duration
        pendingVideo = nil
    }

    private mutating func appendVideo(dts: Int64, duration: Int64, cts: Int32, sync: Bool, data: [UInt8]) {
        if videoRun.isEmpty { videoRunBase = dts }
        videoRun.append(CMAFSample(duration: UInt32(clamping: duration), compositionOffset: cts, isSync: sync, data: data))
    }

    private mutating func openSegment(at time: Int64, into out: inout [PackagerOutput]) {
        segmentOpen = true
        partIndex = 0
        segmentStart = time
        partStart = time
        out.append(.segmentStarted(sequence: sequence, discontinuity: pendingDiscontinuity, initVersion: initVersion))
        pendingDiscontinuity = false
    }

    /// Closes the current part at `time` (the main track's timescale), if it holds samples.
    private mutating func closePart(at time: Int64, into out: inout [PackagerOutput]) {
        guard !videoRun.isEmpty || !audioRun.isEmpty else { return }
        var runs: [CMAFTrackRun] = []
        if !videoRun.isEmpty {
            runs.append(CMAFTrackRun(trackID: Self.videoTrackID, baseDecodeTime: UInt64(max(0, videoRunBase)), samples: videoRun))
        }
        if !audioRun.isEmpty {
            runs.append(CMAFTrackRun(trackID: Self.audioTrackID, baseDecodeTime: UInt64(max(0, audioRunBase)), samples: audioRun))
        }
        let bytes = CMAFWriter.fragment(sequenceNumber: fragmentSequence, runs: runs)
        fragmentSequence &+= 1
        let scale: Double
        let start: Int64
        if hasVideo, !videoRun.isEmpty {
            scale = Double(Self.videoTimescale)
            start = videoRunBase
        } else if hasVideo {
            scale = Double(Self.videoTimescale)
            start = partStart
        } else {
            scale = Double(audioConfig?.sampleRate ?? 48_000)
            start = audioRunBase
        }
        var duration = Double(time - partStart) / scale
        if !hasVideo, let a = audioConfig {
            duration = Double(audioRun.count * a.samplesPerFrame) / scale
        }
        let part = PackagedPart(segment: sequence, index: partIndex, duration: max(duration, 0.001),
                                independent: partIndependent, bytes: bytes, startTime: Double(start) / scale)
        out.append(.part(part))
        partIndex += 1
        videoRun.removeAll(keepingCapacity: true)
        audioRun.removeAll(keepingCapacity: true)
        partIndependent = false
    }

    /// Ends the open segment so that a new initialization segment can start the next one.
    private mutating func finishForRestart() -> [PackagerOutput] {
        var out: [PackagerOutput] = []
        flushPendingVideo()
        closePart(at: lastVideoOutputEnd ?? partStart, into: &out)
        out.append(.segmentEnded(sequence: sequence))
        sequence += 1
        segmentOpen = false
        return out
    }
}
