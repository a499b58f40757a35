// RecordingManifest: what a node holds of one recording — its renditions, their init segments
// and segments (numbers, durations, discontinuities, sizes), its state — and the VOD playlists
// made from it. A value type without I/O: the node's recorder keeps it up to date as segments
// are written and stores it as JSON beside them (`recording.json`).
import Foundation

public struct RecordingManifest: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Segments are still being added (the stream is live, or its origin died and the
        /// standby has not taken it over yet).
        case recording
        /// The stream ended and every segment handed to the recorder was written.
        case ready
        /// A segment could not be kept (`reason` says why); what was kept still plays.
        case incomplete
    }

    public struct Segment: Codable, Sendable, Equatable {
        public var sequence: Int
        public var duration: Double
        public var discontinuity: Bool
        public var initVersion: Int
        public var bytes: Int
    }

    public struct Rendition: Codable, Sendable, Equatable {
        public var name: String
        public var codecs: String
        public var width: Int?
        public var height: Int?
        /// The init segment versions written.
        public var inits: [Int] = []
        /// In sequence order.
        public var segments: [Segment] = []

        public var duration: Double { segments.reduce(0) { $0 + $1.duration } }
        public var bytes: Int { segments.reduce(0) { $0 + $1.bytes } }
    }

    public var id: String
    public var stream: String
    public var epoch: StreamEpoch
    public var firstSequence: Int
    public var state: State
    public var reason: String?
    public var startedAt: Date
    public var endedAt: Date?
    /// In the order they first appeared (the source first).
    public var renditions: [Rendition] = []

    public init(stream: String, epoch: StreamEpoch, firstSequence: Int, startedAt: Date) {
        self.id = Self.id(stream: stream, epoch: epoch, firstSequence: firstSequence)
        self.stream = stream
        self.epoch = epoch
        self.firstSequence = firstSequence
        self.state = .recording
        self.startedAt = startedAt
    }

    // MARK: Identity

    /// A recording's id: its stream, the stream's epoch and the sequence number it starts at
    /// (`abc123-1f2a3b4c-0`). The origin and its standby see the same segments, so both name
    /// the recording alike; any node reads the stream off the id to find who holds it.
    public static func id(stream: String, epoch: StreamEpoch, firstSequence: Int) -> String {
        "\(stream)-\(epoch)-\(firstSequence)"
    }

    /// The parts of a well-formed id; nil for anything else.
    public static func parse(id: String) -> (stream: String, epoch: StreamEpoch, firstSequence: Int)? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, id.utf8.count <= 100, let epoch = StreamEpoch(parts[parts.count - 2]) else { return nil }
        let number = parts[parts.count - 1]
        guard !number.isEmpty, number.count <= 9, number.allSatisfy({ $0.isASCII && $0.isNumber }),
              number == "0" || number.first != "0", let sequence = Int(number) else { return nil }
        let stream = parts.dropLast(2).joined(separator: "-")
        guard !stream.isEmpty else { return nil }
        return (stream, epoch, sequence)
    }

    // MARK: Figures

    /// The source's duration (the longest rendition's when there is no source).
    public var duration: Double {
        renditions.first { $0.name == LiveStream.sourceRendition }?.duration ?? renditions.map(\.duration).max() ?? 0
    }

    public var bytes: Int { renditions.reduce(0) { $0 + $1.bytes } }

    public func rendition(_ name: String) -> Rendition? { renditions.first { $0.name == name } }

    // MARK: Changes

    /// Marks the recording incomplete; the first reason is kept.
    public mutating func fail(_ reason: String) {
        if state != .incomplete || self.reason == nil { self.reason = reason }
        state = .incomplete
    }

    public mutating func noteInit(_ i: RecordedInit) {
        let index = renditionIndex(i.rendition, codecs: i.codecs)
        renditions[index].codecs = i.codecs
        if let w = i.width, let h = i.height { (renditions[index].width, renditions[index].height) = (w, h) }
        if !renditions[index].inits.contains(i.version) { renditions[index].inits.append(i.version) }
    }

    public func hasInit(rendition: String, version: Int) -> Bool { self.rendition(rendition)?.inits.contains(version) == true }

    public func hasSegment(rendition: String, sequence: Int) -> Bool {
        self.rendition(rendition)?.segments.contains { $0.sequence == sequence } == true
    }

    public mutating func noteSegment(_ s: RecordedSegment) {
        let index = renditionIndex(s.rendition, codecs: "")
        let segment = Segment(sequence: s.sequence, duration: s.duration, discontinuity: s.discontinuity,
                              initVersion: s.initVersion, bytes: s.bytes.count)
        var list = renditions[index].segments
        if let last = list.last, last.sequence > s.sequence {
            list.insert(segment, at: list.firstIndex { $0.sequence > s.sequence } ?? list.endIndex)
        } else {
            list.append(segment)
        }
        renditions[index].segments = list
    }

    private mutating func renditionIndex(_ name: String, codecs: String) -> Int {
        if let i = renditions.firstIndex(where: { $0.name == name }) { return i }
        renditions.append(Rendition(name: name, codecs: codecs))
        return renditions.count - 1
    }

    // MARK: Playlists

    public static func initName(version: Int) -> String { "init\(version).mp4" }
    public static func segmentName(sequence: Int) -> String { "seg\(sequence).m4s" }

    /// The master playlist: every rendition with a segment, source first.
    public func masterPlaylist() -> String {
        var lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for r in renditions where !r.segments.isEmpty && !r.codecs.isEmpty {
            let seconds = max(r.duration, 0.001)
            let average = Int(Double(r.bytes * 8) / seconds)
            let peak = r.segments.filter { $0.duration > 0.2 }.map { Int(Double($0.bytes * 8) / $0.duration) }.max() ?? average
            var attrs = "BANDWIDTH=\(max(peak, average)),AVERAGE-BANDWIDTH=\(average),CODECS=\"\(r.codecs)\""
            if let w = r.width, let h = r.height { attrs += ",RESOLUTION=\(w)x\(h)" }
            lines.append("#EXT-X-STREAM-INF:\(attrs)")
            lines.append("\(r.name)/index.m3u8")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A rendition's media playlist: `VOD` with `EXT-X-ENDLIST` once the recording is over,
    /// `EVENT` (growing, no end) while it is being made. `EXT-X-MAP` names each init segment
    /// where it changes and after every discontinuity; a new publisher session, or a segment
    /// that could not be kept, is a discontinuity.
    public func mediaPlaylist(rendition name: String) -> String? {
        guard let r = rendition(name) else { return nil }
        let segments = r.segments.filter { r.inits.contains($0.initVersion) }
        guard let first = segments.first else { return nil }
        let target = Int((segments.map(\.duration).max() ?? 1).rounded(.up))
        var lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:\(max(target, 1))",
                     "#EXT-X-PLAYLIST-TYPE:\(state == .recording ? "EVENT" : "VOD")",
                     "#EXT-X-MEDIA-SEQUENCE:\(first.sequence)", "#EXT-X-INDEPENDENT-SEGMENTS"]
        var previous: Segment?
        for s in segments {
            let broken = previous.map { s.discontinuity || s.sequence != $0.sequence + 1 } ?? false
            if broken { lines.append("#EXT-X-DISCONTINUITY") }
            if previous == nil || broken || previous?.initVersion != s.initVersion {
                lines.append("#EXT-X-MAP:URI=\"\(Self.initName(version: s.initVersion))\"")
            }
            lines.append("#EXTINF:\(MediaPlaylist.seconds(s.duration)),")
            lines.append(Self.segmentName(sequence: s.sequence))
            previous = s
        }
        if state != .recording { lines.append("#EXT-X-ENDLIST") }
        return lines.joined(separator: "\n") + "\n"
    }
}

// Made outside this module only by a recording rebuilt from its files (the recorder); declared
// here so the memberwise initializers stay.
extension RecordingManifest.Segment {
    public init(sequence: Int, duration: Double, discontinuity: Bool, initVersion: Int, bytes: Int, rebuilt: Void = ()) {
        self.sequence = sequence
        self.duration = duration
        self.discontinuity = discontinuity
        self.initVersion = initVersion
        self.bytes = bytes
    }
}

extension RecordingManifest.Rendition {
    public init(name: String, codecs: String, rebuilt: Void = ()) {
        self.name = name
        self.codecs = codecs
    }
}
