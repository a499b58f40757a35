// MediaLibraries: the FFmpeg libraries this binary links, as the node reports and quiets them.
import CFFmpeg

/// Versions of the FFmpeg libraries this binary is linked against, for logs and `/healthz`.
public enum MediaLibraries {
    /// FFmpeg's own log lines (x264's statistics, decoder chatter) go to standard error and
    /// are not structured: keep only its errors.
    public static func quietLogs() { av_log_set_level(AV_LOG_ERROR) }

    /// Whether the linked libavcodec has an encoder or decoder by this name (`streamtube doctor`).
    public static func hasEncoder(_ name: String) -> Bool { avcodec_find_encoder_by_name(name) != nil }
    public static func hasDecoder(_ name: String) -> Bool { avcodec_find_decoder_by_name(name) != nil }

    public static var versions: [String: String] {
        func format(_ v: UInt32) -> String { "\(v >> 16).\((v >> 8) & 0xFF).\(v & 0xFF)" }
        return [
            "libavformat": format(avformat_version()),
            "libavcodec": format(avcodec_version()),
            "libavutil": format(avutil_version()),
        ]
    }
}
