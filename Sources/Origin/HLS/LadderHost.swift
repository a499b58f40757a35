// LadderHost: what a stream keeps for its transcoded ladder during a publishing session — the
// transcoder once started (it runs on its own thread), the source configuration it started
// from, and the source audio a rung needs when it starts after that audio arrived.

/// The ladder's side of a stream's state, held under the stream's lock.
struct LadderHost {
    /// How much recent source audio is kept for rungs that start late (about ten seconds).
    static let recentAudioLimit = 500

    /// This session's transcoder, once the ladder has started.
    var transcoder: (any LadderTranscoder)?
    /// The figures of the last transcoder that drained, for the health report after a session.
    var finishedStats: TranscodeStats?
    /// The source's decoder configuration the ladder was (or is being) started from.
    private(set) var sourceConfig: AVCDecoderConfiguration?
    /// The source's AAC sequence header: a rung's packager gets it first.
    private(set) var audioHeader: RungAudio.Frame?
    /// Recent source audio, handed to a rung that starts after it arrived.
    private(set) var recentAudio: [RungAudio.Frame] = []

    /// A new publishing session: the ladder starts again from its first configuration.
    mutating func beginSession() {
        sourceConfig = nil
        audioHeader = nil
        recentAudio = []
    }

    /// Source video: coded frames go to the transcoder once it runs. Returns the configuration
    /// (and its record) to start the ladder from when this tag brings a new one: a sequence
    /// header, or parameter sets in band on a keyframe when no header came.
    mutating func sourceVideo(_ tag: FLVVideoTag, timestamp: UInt32) -> (config: AVCDecoderConfiguration, record: [UInt8])? {
        switch tag.packet {
        case .avcNALUs(let data, let cts):
            if let t = transcoder {
                _ = t.submit(data: data, dts: Int64(timestamp), pts: Int64(timestamp) + Int64(cts), isKeyframe: tag.isKeyframe)
            } else if sourceConfig == nil, tag.isKeyframe, let record = LivePackager.recordFromInBandParameterSets(data),
                      let config = try? AVCDecoderConfiguration(record: record) {
                // Parameter sets in band only: the ladder starts from those (at the next keyframe).
                sourceConfig = config
                return (config, record)
            }
        case .avcSequenceHeader(let record):
            if let config = try? AVCDecoderConfiguration(record: record), sourceConfig?.record != record {
                sourceConfig = config
                return (config, record)
            }
        default:
            break
        }
        return nil
    }

    /// Source AAC, kept for the rungs.
    mutating func sourceAudio(_ tag: FLVAudioTag, timestamp: UInt32) {
        switch tag.packet {
        case .aacSequenceHeader:
            audioHeader = (tag, timestamp)
        case .aacRaw:
            recentAudio.append((tag, timestamp))
            if recentAudio.count > Self.recentAudioLimit { recentAudio.removeFirst(recentAudio.count - Self.recentAudioLimit) }
        case .other:
            break
        }
    }
}
