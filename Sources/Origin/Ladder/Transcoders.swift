// Transcoders: how a live stream gets its transcoders. The node injects FFmpeg's
// (`Transcoders.ffmpeg`, in the `Transcode` target); without them a stream packages what it
// receives as it is (no ladder, AAC audio only), which is how Origin builds and is tested
// without FFmpeg.

/// Makes the transcoders of a stream, when a session needs them.
public struct Transcoders: Sendable {
    /// Parameters of a ladder transcoder: the settings, the source's avcC record and size,
    /// and where its output goes (called on the transcoder's thread).
    public typealias MakeLadder = @Sendable (_ settings: TranscodeSettings, _ sourceAVCC: [UInt8], _ sourceWidth: Int,
                                             _ sourceHeight: Int, _ output: @escaping @Sendable (TranscodeOutput) -> Void)
        throws -> any LadderTranscoder
    /// Parameters of an AAC encoder: the FLV audio tag's sound format, sample rate, channels
    /// and sample size (bits).
    public typealias MakeAAC = @Sendable (_ soundFormat: UInt8, _ sampleRate: Int, _ channels: Int, _ sampleSize: Int)
        throws -> any AACEncoder

    public var ladder: MakeLadder
    public var aac: MakeAAC

    public init(ladder: @escaping MakeLadder, aac: @escaping MakeAAC) {
        self.ladder = ladder
        self.aac = aac
    }
}
