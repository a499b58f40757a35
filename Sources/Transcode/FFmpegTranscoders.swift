// FFmpegTranscoders: this target's transcoders, as the live streams of a node are given them.
import Origin

extension StreamTranscoder: LadderTranscoder {}

extension AudioTranscoder: AACEncoder {}

extension Transcoders {
    /// The ladder with libavcodec, libswscale and libx264; non-AAC audio with libavcodec and
    /// libswresample.
    public static let ffmpeg = Transcoders(
        ladder: { settings, avcC, width, height, output in
            try StreamTranscoder(settings: settings, sourceAVCC: avcC, sourceWidth: width, sourceHeight: height, output: output)
        },
        aac: { soundFormat, sampleRate, channels, sampleSize in
            try AudioTranscoder(soundFormat: soundFormat, sampleRate: sampleRate, channels: channels, sampleSize: sampleSize)
        })
}
