// StreamHealth: what the broadcaster sends and what the origin makes of it, as the health
// API and the per-stream metrics report it.

/// Health of a live stream: what the broadcaster sends and what the origin makes of it.
public struct StreamHealth: Sendable, Equatable, Codable {
    public struct Output: Sendable, Equatable, Codable {
        public var rendition: String
        public var width: Int?
        public var height: Int?
        /// Bits per second over the segments made so far, and over the last one.
        public var averageBitrate: Int?
        public var lastSegmentBitrate: Int?
        public var shed: Bool
    }
    public var state: LiveStreamState
    /// Over the last five seconds of input.
    public var inputBitrate: Int
    public var frameRate: Double
    /// Time between the last two keyframes, in seconds.
    public var keyframeInterval: Double?
    /// Last video timestamp minus last audio timestamp, in milliseconds.
    public var audioVideoDriftMs: Int?
    /// Frames the transcoder dropped or skipped as corrupt.
    public var droppedFrames: Int
    /// Media seconds transcoded per second of work (1.0 = just real time); nil without a ladder.
    public var encoderSpeed: Double?
    public var shedRenditions: [String]
    public var outputs: [Output]
    /// Whether the master playlist lists the source rendition (it is left out when its
    /// keyframes are too far apart for low latency and the ladder can stand in for it).
    public var sourceInMaster: Bool = true
    /// What the broadcaster could change, in words they can act on.
    public var advice: [String] = []
}
