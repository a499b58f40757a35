// MediaPlaylist: the LL-HLS media playlist of one rendition, rendered from plain values.
// Knows the tags and their rules (RFC 8216bis); knows nothing of where the bytes live.
import Foundation

/// A part as a playlist lists it.
public struct PlaylistPart: Sendable, Equatable {
    public var index: Int
    public var duration: Double
    public var independent: Bool
    public init(index: Int, duration: Double, independent: Bool) {
        self.index = index
        self.duration = duration
        self.independent = independent
    }
}

/// A segment as a playlist lists it: complete (with a duration) or still growing.
public struct PlaylistSegment: Sendable, Equatable {
    public var sequence: Int
    public var parts: [PlaylistPart]
    public var duration: Double
    public var complete: Bool
    public var discontinuity: Bool
    public var initVersion: Int
    public var programDateTime: Date?
}

public struct MediaPlaylist: Sendable, Equatable {
    public var partTarget: Double
    public var targetDuration: Int
    public var segments: [PlaylistSegment]     // oldest first; the last may be incomplete
    public var ended: Bool
    /// Discontinuities before the first listed segment (`EXT-X-DISCONTINUITY-SEQUENCE`).
    public var discontinuitySequence: Int
    /// The stream's epoch, in every object's name.
    public var epoch: StreamEpoch
    /// Only segments within this many seconds of the live edge list their parts.
    public var partHistory: Double { Double(targetDuration) * 3 }

    public init(partTarget: Double, targetDuration: Int, segments: [PlaylistSegment], ended: Bool, discontinuitySequence: Int,
                epoch: StreamEpoch) {
        self.epoch = epoch
        self.partTarget = partTarget
        self.targetDuration = targetDuration
        self.segments = segments
        self.ended = ended
        self.discontinuitySequence = discontinuitySequence
    }

    /// Object names: canonical numbers and the stream's epoch (`LiveRoutes.MediaName` reads them).
    public static func partURI(sequence: Int, index: Int, epoch: StreamEpoch) -> String { "part\(sequence).\(index)-\(epoch).m4s" }
    public static func segmentURI(sequence: Int, epoch: StreamEpoch) -> String { "seg\(sequence)-\(epoch).m4s" }
    public static func initURI(version: Int, epoch: StreamEpoch) -> String { "init\(version)-\(epoch).mp4" }

    /// Formats a duration the way the tags want it: decimal seconds, no exponent.
    static func seconds(_ value: Double) -> String { String(format: "%.5f", value) }

    /// Renders the playlist. `skipBefore` (delta update, `_HLS_skip=YES`) replaces the
    /// complete segments older than that many seconds from the end with `EXT-X-SKIP`.
    public func render(skipOlderThan skipBefore: Double? = nil) -> String {
        var lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:\(targetDuration)"]
        let holdBack = partTarget * 3
        let canSkip = Double(targetDuration) * 6
        var control = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=\(Self.seconds(holdBack))"
        if !ended { control += ",CAN-SKIP-UNTIL=\(Self.seconds(canSkip))" }
        lines.append(control)
        lines.append("#EXT-X-PART-INF:PART-TARGET=\(Self.seconds(partTarget))")
        let firstSequence = segments.first?.sequence ?? 0
        lines.append("#EXT-X-MEDIA-SEQUENCE:\(firstSequence)")
        if discontinuitySequence > 0 { lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:\(discontinuitySequence)") }

        // Which segments a delta update may skip: complete ones older than the bound.
        var skipCount = 0
        if let skipBefore, !ended {
            let total = segments.reduce(0.0) { $0 + $1.duration }
            var elapsed = 0.0
            for s in segments {
                guard s.complete, !s.discontinuity, total - elapsed - s.duration >= skipBefore else { break }
                elapsed += s.duration
                skipCount += 1
            }
            // A skipped map would leave the player without one: never skip past a map change.
            if skipCount > 0, let first = segments.first {
                skipCount = min(skipCount, segments.prefix(skipCount).prefix { $0.initVersion == first.initVersion }.count)
            }
            if skipCount > 0 { lines.append("#EXT-X-SKIP:SKIPPED-SEGMENTS=\(skipCount)") }
        }

        // Parts are listed for the segments near the live edge only.
        var partsFrom = segments.count
        var recent = 0.0
        for (i, s) in segments.enumerated().reversed() {
            recent += s.duration
            partsFrom = i
            if recent >= partHistory { break }
        }

        var currentMap = -1
        for (i, s) in segments.enumerated() {
            if i < skipCount { continue }  // the first listed segment still names its map
            if s.discontinuity { lines.append("#EXT-X-DISCONTINUITY") }
            if s.initVersion != currentMap {
                lines.append("#EXT-X-MAP:URI=\"\(Self.initURI(version: s.initVersion, epoch: epoch))\"")
                currentMap = s.initVersion
            }
            if let date = s.programDateTime {
                lines.append("#EXT-X-PROGRAM-DATE-TIME:\(Self.dateStyle.format(date))")
            }
            if i >= partsFrom {
                for p in s.parts {
                    var line = "#EXT-X-PART:DURATION=\(Self.seconds(p.duration)),URI=\"\(Self.partURI(sequence: s.sequence, index: p.index, epoch: epoch))\""
                    if p.independent { line += ",INDEPENDENT=YES" }
                    lines.append(line)
                }
            }
            if s.complete {
                lines.append("#EXTINF:\(Self.seconds(s.duration)),")
                lines.append(Self.segmentURI(sequence: s.sequence, epoch: epoch))
            }
        }
        if ended {
            lines.append("#EXT-X-ENDLIST")
        } else if let last = segments.last {
            let next = last.complete
                ? Self.partURI(sequence: last.sequence + 1, index: 0, epoch: epoch)
                : Self.partURI(sequence: last.sequence, index: last.parts.count, epoch: epoch)
            lines.append("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"\(next)\"")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static let dateStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}
