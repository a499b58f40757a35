// AACEncoder: what a live stream needs to carry audio that is not AAC (MP3, PCM, G.711...):
// every rendition carries AAC. Implemented with FFmpeg by the `Transcode` target.

/// Turns one session's non-AAC audio into AAC-LC. Used under the stream's lock, one
/// payload at a time.
public protocol AACEncoder: AnyObject, Sendable {
    /// The AudioSpecificConfig of the AAC it makes (the FLV AAC sequence header's payload).
    var audioSpecificConfig: [UInt8] { get }
    /// Samples per second of the AAC it makes.
    var outputSampleRate: Int32 { get }
    /// Takes one FLV audio payload; returns the raw AAC frames now ready, 1024 samples each.
    func push(_ payload: [UInt8]) -> [[UInt8]]
}
