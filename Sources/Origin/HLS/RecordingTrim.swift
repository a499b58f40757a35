// RecordingTrim: a recording cut at its start and end without re-encoding. Every recorded
// segment starts with a keyframe (segments are cut at keyframes, aligned across the ladder), so
// a cut can only fall on a segment boundary: the start is moved back to the keyframe at or
// before it, the end on to the end of the segment it falls in — nothing asked for is cut. The
// trim is then a range of segment numbers, the same for every rendition, and the VOD playlists
// and the MP4 download are made of those segments only. A value type without I/O.
import Foundation

public struct RecordingTrim: Equatable, Sendable {
    /// The first and last segment numbers kept.
    public var firstSequence: Int
    public var lastSequence: Int
    /// Where the kept part starts and ends, in seconds from the recording's start (boundaries
    /// of segments: the effective trim).
    public var start: Double
    public var end: Double

    public var duration: Double { end - start }
}

public enum RecordingTrimError: Error, Equatable, CustomStringConvertible {
    /// The asked start and end, and the recording's length.
    case outside(start: Double, end: Double, duration: Double)
    case empty

    public var description: String {
        switch self {
        case .outside(let s, let e, let d):
            let range = "the valid range is 0 to \(RecordingTrim.format(d)) seconds, and the start must be before the end"
            return "cannot trim to \(RecordingTrim.format(s))-\(RecordingTrim.format(e)) s: \(range)"
        case .empty: return "the recording holds no segment to trim"
        }
    }
}

extension RecordingTrim {
    /// Seconds as a person reads them: at most three decimals.
    public static func format(_ seconds: Double) -> String {
        let rounded = (seconds * 1000).rounded() / 1000
        guard rounded.isFinite, abs(rounded) < 1e12 else { return String(seconds) }
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

extension RecordingManifest {
    /// The rendition whose segments set the recording's timeline (the one `duration` measures).
    var referenceRendition: Rendition? {
        rendition(LiveStream.sourceRendition).flatMap { $0.segments.isEmpty ? nil : $0 }
            ?? renditions.max { $0.duration < $1.duration }
    }

    /// Each segment of the timeline: its number and where it starts and ends (seconds).
    public var timeline: [(sequence: Int, start: Double, end: Double)] {
        var t = 0.0
        return (referenceRendition?.segments ?? []).map { s in
            defer { t += s.duration }
            return (s.sequence, t, t + s.duration)
        }
    }

    /// The trim that keeps `start` to `end` seconds (nil: from the start, to the end), snapped to
    /// segments; nil when it keeps everything. Throws for a cut outside the recording, or a start
    /// not before the end.
    public func trim(start: Double?, end: Double?) throws(RecordingTrimError) -> RecordingTrim? {
        guard start != nil || end != nil else { return nil }
        let segments = timeline
        guard let first = segments.first, let last = segments.last else { throw .empty }
        let total = last.end
        // A thousandth of a second of slack: what a person reads off a rounded duration.
        let slack = 0.001
        let s = start ?? 0
        let e = end ?? total
        guard s.isFinite, e.isFinite, s >= 0, e <= total + slack, s < e else {
            throw .outside(start: s, end: e, duration: total)
        }
        let from = segments.last { $0.start <= s + slack } ?? first
        let to = segments.first { $0.end >= e - slack } ?? last
        guard from.sequence != first.sequence || to.sequence != last.sequence else { return nil }
        return RecordingTrim(firstSequence: from.sequence, lastSequence: to.sequence, start: from.start, end: to.end)
    }

    /// The recording with only the segments the trim keeps, in every rendition.
    public func trimmed(_ trim: RecordingTrim?) -> RecordingManifest {
        guard let trim else { return self }
        var m = self
        for i in m.renditions.indices {
            m.renditions[i].segments.removeAll { $0.sequence < trim.firstSequence || $0.sequence > trim.lastSequence }
        }
        return m
    }
}
