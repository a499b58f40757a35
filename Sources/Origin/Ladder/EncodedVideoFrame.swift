/// One encoded access unit of one rung.
public struct EncodedVideoFrame: Sendable {
    /// Name of the rung it belongs to.
    public var rung: String
    /// Decode timestamp in ms, equal to `pts` (the rungs have no B-frames).
    public var dts: Int64
    /// Presentation timestamp in ms: the input pts of the same source frame.
    public var pts: Int64
    /// True exactly when the source frame was a keyframe (an IDR in the rung).
    public var isKeyframe: Bool
    /// 4-byte length-prefixed NAL units (AVCC). SPS/PPS are in the rung's avcC, not inline.
    public var data: [UInt8]

    public init(rung: String, dts: Int64, pts: Int64, isKeyframe: Bool, data: [UInt8]) {
        self.rung = rung
        self.dts = dts
        self.pts = pts
        self.isKeyframe = isKeyframe
        self.data = data
    }
}
