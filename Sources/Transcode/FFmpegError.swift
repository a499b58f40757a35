// FFmpegError: the text of FFmpeg's error codes, for `TranscodeError.ffmpeg`.
import CFFmpeg
import Origin

extension TranscodeError {
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
