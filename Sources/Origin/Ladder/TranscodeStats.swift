/// A snapshot of one transcoder's counters.
public struct TranscodeStats: Sendable, Equatable {
    public struct Rung: Sendable, Equatable {
        public var name: String
        public var width: Int
        public var height: Int
        /// Frames handed to this rung's encoder.
        public var framesIn: Int
        /// Encoded frames emitted.
        public var framesOut: Int
        /// Encoded bytes emitted.
        public var bytesOut: Int
        /// Whether the rung was shed.
        public var isShed: Bool

        public init(name: String, width: Int, height: Int, framesIn: Int, framesOut: Int, bytesOut: Int, isShed: Bool) {
            self.name = name
            self.width = width
            self.height = height
            self.framesIn = framesIn
            self.framesOut = framesOut
            self.bytesOut = bytesOut
            self.isShed = isShed
        }
    }

    /// Access units accepted by `submit`.
    public var framesIn: Int = 0
    /// Access units refused by `submit` (queue full, or waiting for a keyframe after that).
    public var framesDropped: Int = 0
    /// Frames the decoder produced.
    public var framesDecoded: Int = 0
    /// Access units or frames not transcoded because they could not be decoded: damaged,
    /// depending on a damaged frame (skipped up to the next keyframe), or before the first
    /// keyframe of the stream.
    public var framesSkippedCorrupt: Int = 0
    /// Rungs being produced (taller-than-source rungs are not listed).
    public var rungs: [Rung] = []
    /// Names of the shed rungs, in the order they were shed.
    public var shedRungs: [String] = []
    /// Media seconds processed per wall second of work (decode + scale + encode), since start.
    public var encoderSpeed: Double = 0
    /// The nominal frame rate the encoders run at (from the SPS, else from timestamps; 0
    /// before the first frame).
    public var frameRate: Double = 0
    /// Media seconds processed.
    public var mediaSeconds: Double = 0
    /// Wall seconds spent working.
    public var busySeconds: Double = 0

    public init() {}
}
