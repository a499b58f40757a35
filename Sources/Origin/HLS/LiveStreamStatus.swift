// LiveStreamStatus: a stream's live figures as the API answers them.

/// A stream's live figures, for the API and metrics.
public struct LiveStreamStatus: Sendable, Equatable, Codable {
    public var state: LiveStreamState
    public var publishing: Bool
    public var sessions: Int
    public var firstSequence: Int?
    public var lastSequence: Int?
    public var bytesIn: UInt64
    public var videoFrames: UInt64
    public var audioFrames: UInt64
    public var averageBandwidth: Int?
    public var peakBandwidth: Int?
    public var width: Int?
    public var height: Int?
    public var frameRate: Double?
    public var codecs: String?
    public var renditions: [String]
}
