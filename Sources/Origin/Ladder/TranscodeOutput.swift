/// What the transcoder hands to its consumer (the CMAF packager), in order, on the
/// transcoder's thread.
public enum TranscodeOutput: Sendable {
    /// A rung's decoder configuration, sent once before its first frame.
    case config(rung: String, avcC: [UInt8], width: Int, height: Int)
    /// An encoded frame of a rung.
    case frame(EncodedVideoFrame)
    /// The rung stopped for good (the machine cannot keep up, or its encoder failed).
    case shed(rung: String, reason: String)
}
