// LiveSegment: one segment of a rendition as the stream holds it — its parts as they are
// made, then its bytes once complete.
import Foundation

/// A segment of a live rendition. Growing (`complete == false`) while its parts are made;
/// complete once the packager ends it, when `bytes` holds the whole segment. A standby holds
/// the same values, copied from its origin (see `ReplicaState`).
struct LiveSegment: Sendable, Equatable {
    var sequence: Int
    var parts: [PackagedPart]
    var complete: Bool
    var discontinuity: Bool
    var initVersion: Int
    /// `EXT-X-PROGRAM-DATE-TIME`: when its first media was packaged (on the origin).
    var programDateTime: Date
    var bytes: [UInt8]?
    var duration: Double { parts.reduce(0) { $0 + $1.duration } }
}

/// A complete segment held back from the recorder, with the recording it belongs to.
struct HeldSegment: Sendable {
    var segment: LiveSegment
    var recordingStart: Int
}
