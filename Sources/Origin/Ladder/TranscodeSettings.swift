/// How one stream is transcoded: the ladder, the x264 speed/quality trade-off and the
/// back-pressure and shedding limits.
public struct TranscodeSettings: Sendable, Equatable, Codable {
    /// The renditions, in any order. Rungs taller than the source are skipped.
    public var rungs: [LadderRung]
    /// x264 preset ("ultrafast" ... "placebo").
    public var preset: String
    /// x264 threads per rung. The rungs of one frame are also encoded in parallel.
    public var threads: Int
    /// Access units that may wait for the transcoder thread; beyond this `submit` drops.
    public var maxQueuedFrames: Int
    /// Encode speed (media seconds per busy wall second) under which, measured over
    /// `speedWindowSeconds` of media, the highest rung still running is shed. 0 disables
    /// speed-based shedding (a full queue still sheds).
    public var shedSpeedThreshold: Double
    /// Media seconds over which encode speed is measured, and the least media time between
    /// two sheds.
    public var speedWindowSeconds: Double
    /// Seconds between the keyframes every rung starts a segment with, whatever the source's
    /// keyframe interval (its keyframes are kept too); nil: only the source's. A live stream
    /// sets its segment target here, so that segments stay at the target for a source with
    /// a long GOP (OBS's "auto": 250 frames).
    public var keyframeInterval: Double?

    public init(
        rungs: [LadderRung],
        preset: String = "veryfast",
        threads: Int = 1,
        maxQueuedFrames: Int = 60,
        shedSpeedThreshold: Double = 1.0,
        speedWindowSeconds: Double = 2.0,
        keyframeInterval: Double? = nil
    ) {
        self.rungs = rungs
        self.preset = preset
        self.threads = threads
        self.maxQueuedFrames = maxQueuedFrames
        self.shedSpeedThreshold = shedSpeedThreshold
        self.speedWindowSeconds = speedWindowSeconds
        self.keyframeInterval = keyframeInterval
    }

    /// 720p 3000k, 480p 1400k, 360p 800k (sized after Apple's HLS authoring specification
    /// ladder), peaks at 110% of the average: a tight VBV suits live, where the player's
    /// buffer is short.
    public static let `default` = TranscodeSettings(rungs: [
        LadderRung(name: "720p", height: 720, videoBitrate: 3_000_000, maxBitrate: 3_300_000),
        LadderRung(name: "480p", height: 480, videoBitrate: 1_400_000, maxBitrate: 1_540_000),
        LadderRung(name: "360p", height: 360, videoBitrate: 800_000, maxBitrate: 880_000),
    ])

    /// The x264 presets accepted in `preset`.
    public static let x264Presets: Set<String> = [
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
    ]

    /// Checks the settings before any codec is opened.
    public func validate() throws(TranscodeError) {
        guard Self.x264Presets.contains(preset) else {
            throw .invalidSettings("unknown x264 preset \"\(preset)\"; use one of \(Self.x264Presets.sorted().joined(separator: ", "))")
        }
        guard (1...64).contains(threads) else { throw .invalidSettings("threads must be 1...64, got \(threads)") }
        guard maxQueuedFrames >= 1 else { throw .invalidSettings("maxQueuedFrames must be at least 1, got \(maxQueuedFrames)") }
        if let k = keyframeInterval, !(k > 0 && k <= 30) {
            throw .invalidSettings("keyframeInterval must be more than 0 and at most 30 seconds, got \(k)")
        }
        guard shedSpeedThreshold >= 0, speedWindowSeconds > 0 else {
            throw .invalidSettings("shedSpeedThreshold must be >= 0 and speedWindowSeconds > 0")
        }
        var names = Set<String>()
        for rung in rungs {
            guard !rung.name.isEmpty, names.insert(rung.name).inserted else {
                throw .invalidSettings("rung names must be non-empty and unique (\"\(rung.name)\")")
            }
            guard rung.height >= 2 else { throw .invalidSettings("rung \(rung.name): height must be >= 2") }
            guard rung.videoBitrate > 0, rung.maxBitrate >= rung.videoBitrate else {
                throw .invalidSettings("rung \(rung.name): need 0 < videoBitrate <= maxBitrate")
            }
        }
    }

    private enum CodingKeys: String, CodingKey {
        case rungs, preset, threads, maxQueuedFrames, shedSpeedThreshold, speedWindowSeconds, keyframeInterval
    }

    /// Decodes with defaults for every key but `rungs`, so stored configurations stay valid
    /// when knobs are added.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            rungs: try c.decode([LadderRung].self, forKey: .rungs),
            preset: try c.decodeIfPresent(String.self, forKey: .preset) ?? "veryfast",
            threads: try c.decodeIfPresent(Int.self, forKey: .threads) ?? 1,
            maxQueuedFrames: try c.decodeIfPresent(Int.self, forKey: .maxQueuedFrames) ?? 60,
            shedSpeedThreshold: try c.decodeIfPresent(Double.self, forKey: .shedSpeedThreshold) ?? 1.0,
            speedWindowSeconds: try c.decodeIfPresent(Double.self, forKey: .speedWindowSeconds) ?? 2.0,
            keyframeInterval: try c.decodeIfPresent(Double.self, forKey: .keyframeInterval)
        )
    }
}
