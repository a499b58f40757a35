/// Why a transcoder could not be made. Declared here, with the settings it checks, so that
/// configuration is validated without FFmpeg; `Transcode` adds the FFmpeg failures' text.
public enum TranscodeError: Error, Equatable, CustomStringConvertible {
    /// The settings are inconsistent; the message names the field.
    case invalidSettings(String)
    /// The avcC record from the RTMP sequence header is not usable.
    case invalidDecoderConfiguration(String)
    /// The source size is not positive.
    case invalidSourceSize(width: Int, height: Int)
    /// This FFmpeg build lacks a codec (install Debian's libavcodec with libx264).
    case codecUnavailable(String)
    /// An FFmpeg call failed.
    case ffmpeg(call: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .invalidSettings(let m): return "invalid transcode settings: \(m)"
        case .invalidDecoderConfiguration(let m): return "invalid H.264 decoder configuration (avcC): \(m)"
        case .invalidSourceSize(let w, let h): return "invalid source size \(w)x\(h)"
        case .codecUnavailable(let name): return "codec \(name) is not available in this FFmpeg build"
        case .ffmpeg(let call, let code, let message): return "\(call) failed: \(message) (\(code))"
        }
    }
}
