/// A keyframe of a stream's source as the publisher sent it, with what decodes it: enough to
/// make a still picture of the stream (the node's thumbnails) without touching the ingest.
public struct SourceKeyframe: Sendable, Equatable {
    /// The avcC record (SPS and PPS) in force for this keyframe.
    public var decoderConfiguration: [UInt8]
    /// The access unit: length-prefixed NAL units, as in FLV.
    public var accessUnit: [UInt8]
    /// Its FLV timestamp (ms).
    public var timestamp: UInt32
    /// The publishing session it belongs to (counted from 1).
    public var session: Int

    public init(decoderConfiguration: [UInt8], accessUnit: [UInt8], timestamp: UInt32, session: Int) {
        self.decoderConfiguration = decoderConfiguration
        self.accessUnit = accessUnit
        self.timestamp = timestamp
        self.session = session
    }
}
