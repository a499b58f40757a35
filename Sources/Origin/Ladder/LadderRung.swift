/// One rendition of the adaptive ladder.
///
/// Only the height is given: the width follows the source aspect ratio (rounded to an even
/// number, as 4:2:0 needs). A rung taller than the source is never produced.
public struct LadderRung: Sendable, Equatable, Codable {
    /// Rendition name, used in playlists and in every output of the transcoder (e.g. "720p").
    public var name: String
    /// Output height in pixels (rounded down to even).
    public var height: Int
    /// Target average video bitrate in bit/s.
    public var videoBitrate: Int
    /// Peak bitrate in bit/s (x264 VBV maxrate; the buffer is sized to one second of it).
    public var maxBitrate: Int

    public init(name: String, height: Int, videoBitrate: Int, maxBitrate: Int) {
        self.name = name
        self.height = height
        self.videoBitrate = videoBitrate
        self.maxBitrate = maxBitrate
    }

    /// The output size of this rung for a source of the given size: the height rounded down
    /// to even, the width from the source aspect ratio rounded to the nearest even number.
    /// Returns nil when the rung would be taller than the source (we never upscale).
    public func outputSize(sourceWidth: Int, sourceHeight: Int) -> (width: Int, height: Int)? {
        guard sourceWidth > 0, sourceHeight > 0, height >= 2, height <= sourceHeight else { return nil }
        let h = height & ~1
        let exactWidth = Double(h) * Double(sourceWidth) / Double(sourceHeight)
        let w = max(2, Int((exactWidth / 2).rounded()) * 2)
        return (w, h)
    }
}
