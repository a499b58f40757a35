// CMAF packaging: the value types that describe tracks and the samples fed to `CMAFWriter`.

/// The codec of a track, with its decoder configuration.
public enum CMAFTrackFormat: Equatable, Sendable {
    case avc(AVCDecoderConfiguration)
    case aac(AudioSpecificConfig)

    /// RFC 6381 codecs parameter for the HLS `CODECS` attribute.
    public var codecString: String {
        switch self {
        case .avc(let config): config.codecString
        case .aac(let config): config.codecString
        }
    }
}

/// One track of a CMAF presentation.
public struct CMAFTrack: Equatable, Sendable {
    /// Track ID, unique in the presentation and non-zero.
    public var id: UInt32
    /// Ticks per second of the track's media time: usually 90000 for video, the sample rate for audio.
    public var timescale: UInt32
    public var format: CMAFTrackFormat

    public init(id: UInt32, timescale: UInt32, format: CMAFTrackFormat) {
        self.id = id
        self.timescale = timescale
        self.format = format
    }

    /// A video track with the customary 90 kHz timescale.
    public static func video(id: UInt32, _ config: AVCDecoderConfiguration, timescale: UInt32 = 90_000) -> CMAFTrack {
        CMAFTrack(id: id, timescale: timescale, format: .avc(config))
    }

    /// An audio track whose timescale is its sample rate, so every AAC frame lasts exactly 1024 ticks.
    public static func audio(id: UInt32, _ config: AudioSpecificConfig) -> CMAFTrack {
        CMAFTrack(id: id, timescale: UInt32(config.sampleRate), format: .aac(config))
    }
}

/// One access unit (video frame or AAC frame) in decode order.
public struct CMAFSample: Equatable, Sendable {
    /// Decode duration in the track timescale.
    public var duration: UInt32
    /// Presentation minus decode time in the track timescale (non-zero with B-frames).
    public var compositionOffset: Int32
    /// A random access point (IDR frame); every audio frame is one.
    public var isSync: Bool
    /// AVC: length-prefixed NAL units exactly as in FLV; AAC: one raw AAC frame.
    public var data: [UInt8]

    public init(duration: UInt32, compositionOffset: Int32 = 0, isSync: Bool, data: [UInt8]) {
        self.duration = duration
        self.compositionOffset = compositionOffset
        self.isSync = isSync
        self.data = data
    }
}

/// Consecutive samples of one track in one fragment.
public struct CMAFTrackRun: Equatable, Sendable {
    public var trackID: UInt32
    /// Decode time of the first sample, in the track timescale, from the start of the stream.
    public var baseDecodeTime: UInt64
    public var samples: [CMAFSample]

    public init(trackID: UInt32, baseDecodeTime: UInt64, samples: [CMAFSample]) {
        self.trackID = trackID
        self.baseDecodeTime = baseDecodeTime
        self.samples = samples
    }

    /// Sum of the sample durations: the decode time the next run of this track starts at.
    public var duration: UInt64 { samples.reduce(0) { $0 + UInt64($1.duration) } }
}
