import CFFmpeg

/// Why a transcoder could not be made.
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

    static func ffmpeg(_ call: String, _ code: Int32) -> TranscodeError {
        .ffmpeg(call: call, code: code, message: ffmpegErrorString(code))
    }
}

/// The text FFmpeg gives for an error code.
func ffmpegErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    av_strerror(code, &buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
