// RecordedObject: what a stream hands its recorder — every init segment and every complete
// segment of every rendition, made here or received from the origin as a standby's replica,
// and the moment the whole stream has ended. The stream hands them over under its lock: the
// recorder must only queue (see `LiveStream.record(to:)`).
import Foundation

public enum RecordedObject: Sendable {
    /// An init segment; the segments that name its version (`RecordedSegment.initVersion`) use it.
    case initSegment(RecordedInit)
    /// A complete segment, with its bytes.
    case segment(RecordedSegment)
    /// Every rendition of the stream has ended (its publisher is gone, or the origin said so).
    case ended(stream: String, epoch: StreamEpoch)
    /// A segment left out of the recording on purpose: every frame of it is in the segments that
    /// follow (a new origin's session begins with the GOP the old origin's last segment held).
    case skipped(stream: String, epoch: StreamEpoch, rendition: String, sequence: Int)
    /// A replica's origin stopped sending while the stream was live (`LiveStream.endReplica`):
    /// this copy lacks whatever came after, and says so.
    case cutOff(stream: String, epoch: StreamEpoch)
}

public struct RecordedInit: Sendable, Equatable {
    public var stream: String
    public var epoch: StreamEpoch
    public var rendition: String
    public var version: Int
    public var bytes: [UInt8]
    /// `CODECS` of the tracks it describes (`avc1.64001f,mp4a.40.2`).
    public var codecs: String
    public var width: Int?
    public var height: Int?

    public init(stream: String, epoch: StreamEpoch, rendition: String, version: Int, bytes: [UInt8], codecs: String,
                width: Int? = nil, height: Int? = nil) {
        self.stream = stream
        self.epoch = epoch
        self.rendition = rendition
        self.version = version
        self.bytes = bytes
        self.codecs = codecs
        self.width = width
        self.height = height
    }
}

public struct RecordedSegment: Sendable, Equatable {
    public var stream: String
    public var epoch: StreamEpoch
    public var rendition: String
    public var sequence: Int
    public var duration: Double
    /// A new publisher session (or a break in the timeline) starts with it.
    public var discontinuity: Bool
    public var initVersion: Int
    public var programDateTime: Date
    public var bytes: [UInt8]
    /// The sequence number the recording it belongs to starts at, as the stream's origin decided
    /// when the session began (`LiveStream`): carried to the standby with the replica, so both
    /// nodes give the recording the same id however late or out of order segments reach them.
    /// Nil: it names none (it goes into the recording being made, or starts one).
    public var recordingStart: Int?

    public init(stream: String, epoch: StreamEpoch, rendition: String, sequence: Int, duration: Double, discontinuity: Bool,
                initVersion: Int, programDateTime: Date, bytes: [UInt8], recordingStart: Int? = nil) {
        self.recordingStart = recordingStart
        self.stream = stream
        self.epoch = epoch
        self.rendition = rendition
        self.sequence = sequence
        self.duration = duration
        self.discontinuity = discontinuity
        self.initVersion = initVersion
        self.programDateTime = programDateTime
        self.bytes = bytes
    }
}
