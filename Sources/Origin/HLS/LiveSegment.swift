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
    /// The recording holds only the parts that start before this time: a new origin's session
    /// began with a GOP of it again (its publisher's relay replayed it), and records that GOP
    /// there. Set on the new origin when its session's first keyframe says so, and carried to
    /// its standby (snapshot and batches), whose copy of the recording follows. Nil: all of it.
    var recordedUntil: Double? = nil
    var duration: Double { parts.reduce(0) { $0 + $1.duration } }

    /// What the recording holds of it: the segment, or nothing (a skip) when the cut leaves no part.
    func recorded() -> LiveSegment? {
        guard let cut = recordedUntil else { return self }
        var s = self
        // A frame's worth of slack: rungs are cut on the same timeline, a tick apart at most.
        s.parts = Array(parts.prefix { $0.startTime < cut - 0.001 })
        guard !s.parts.isEmpty else { return nil }
        if s.parts.count < parts.count { s.bytes = s.parts.flatMap(\.bytes) }
        return s
    }
}

/// A complete segment held back from the recorder, with the recording it belongs to.
struct HeldSegment: Sendable {
    var segment: LiveSegment
    var recordingStart: Int
}
