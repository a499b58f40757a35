// Replication: what a stream's origin sends its standby as it goes, so that the standby can
// serve everything the origin announced and, when the origin dies or leaves, take the
// stream over with its playlists continuing (sequence numbers growing, a discontinuity
// marked). Plain values and a binary codec; no I/O. See `LiveStream.replicate(to:)`,
// `LiveStream.snapshot(_:)` and `LiveStream.applyReplica(_:)`.
import Foundation

/// One message from an origin to its standby: the packager output of some renditions since
/// the last message, or (a snapshot) the whole state of the stream.
public struct ReplicaBatch: Sendable, Equatable {
    /// Set by the sender: a new epoch starts with every snapshot, and `sequence` counts the
    /// messages of an epoch from 0, so the standby can tell a lost or repeated message.
    public var epoch: UInt64 = 0
    public var sequence: UInt64 = 0
    /// Set by the stream on the node that made it, never sent: which of its batches this is
    /// (1, 2, ...), so the sender can say how far the standby holds (`LiveStream.showReplicated`).
    public var ordinal: UInt64 = 0
    /// True when the batch is the whole state (it replaces what the standby holds).
    public var snapshot: Bool
    /// Publishing sessions the stream has had on its origin.
    public var sessions: Int
    /// The stream's epoch on its origin (in its object names), which a standby taking the
    /// stream over keeps.
    public var streamEpoch = StreamEpoch(0)
    /// The sequence number the recording being made starts at, as the origin decided it when the
    /// session began; nil: the session is not recorded (recording is off for the stream), and the
    /// standby keeps no copy either.
    public var recordingStart: Int?
    /// Renditions in master-playlist order (source first).
    public var order: [String]
    public var renditions: [ReplicaRendition]

    public init(snapshot: Bool, sessions: Int, order: [String], renditions: [ReplicaRendition]) {
        self.snapshot = snapshot
        self.sessions = sessions
        self.order = order
        self.renditions = renditions
    }
}

/// One rendition in a `ReplicaBatch`.
public struct ReplicaRendition: Sendable, Equatable {
    public var name: String
    /// Still being made on the origin (false once its publisher stopped: the playlist ends).
    public var live: Bool
    public var shed: Bool
    /// Packager output since the previous batch, in order (incremental batches).
    public var outputs: [PackagerOutput]
    /// The origin's wall-clock time of the segments those outputs touched
    /// (`EXT-X-PROGRAM-DATE-TIME`), so both playlists say the same.
    public var dates: [Int: Date] = [:]
    /// Segments whose recording a new origin cut since the previous batch (`LiveSegment.recordedUntil`):
    /// sequence number to the time the recording's part of it ends.
    public var cuts: [Int: Double] = [:]
    /// The rendition's whole state (snapshots).
    var state: ReplicaState?
}

/// A rendition's whole state, as a snapshot carries it.
struct ReplicaState: Sendable, Equatable {
    struct Init: Sendable, Equatable {
        var version: Int
        var bytes: [UInt8]
        var tracks: [CMAFTrack]
    }
    var inits: [Init]
    var segments: [LiveSegment]
    var discontinuitySequence: Int
    var nextSequence: Int
    var nextInitVersion: Int
    var timelineEnd: Double?
    var partEnd: Double?
    var maxSegmentDuration: Double
    var bandwidthBits: Double
    var bandwidthSeconds: Double
    var peakBandwidth: Double
    var lastSegmentBitrate: Double?
}

/// Why a standby refused a batch.
public enum ReplicaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stream is being published on this node: it is the origin now, not a standby.
    case publishingHere
    /// An incremental batch that does not follow the last one applied: send a snapshot.
    case outOfSequence(expected: UInt64?, got: UInt64)
    /// The bytes are not a replica batch.
    case malformed(String)
    /// A snapshot of this stream life older than what this node holds: it took the stream over
    /// since (a session began here after the sender's last), so the sender is the stale one.
    case staleSnapshot(sessions: Int, here: Int)

    /// How a stale snapshot's refusal begins (the sender recognises it in the answer).
    public static let staleText = "a snapshot older than this node's state"

    public var description: String {
        switch self {
        case .publishingHere: return "the stream is being published on this node"
        case .outOfSequence(let e, let g): return "batch \(g) does not follow \(e.map { "\($0)" } ?? "a snapshot"); a snapshot is needed"
        case .malformed(let why): return "malformed replica batch: \(why)"
        case .staleSnapshot(let sessions, let here):
            return "\(Self.staleText): it has \(sessions) sessions, this node \(here) (it took the stream over since)"
        }
    }
}

// MARK: Codec

extension ReplicaBatch {
    static let magic: [UInt8] = Array("STRB".utf8)
    /// 4: segments' recording cuts (`recordedUntil`, `cuts`).
    static let version: UInt8 = 4

    /// The batch as bytes: big-endian integers, length-prefixed strings and byte strings.
    public func encoded() -> [UInt8] {
        var w = ReplicaWriter()
        w.bytes.append(contentsOf: Self.magic)
        w.u8(Self.version)
        w.u64(epoch)
        w.u64(sequence)
        w.bool(snapshot)
        w.int(sessions)
        w.u32(streamEpoch.value)
        w.bool(recordingStart != nil)
        if let recordingStart { w.int(recordingStart) }
        w.u32(UInt32(order.count))
        for name in order { w.string(name) }
        w.u32(UInt32(renditions.count))
        for r in renditions {
            w.string(r.name)
            w.bool(r.live)
            w.bool(r.shed)
            w.u32(UInt32(r.outputs.count))
            for o in r.outputs { w.output(o) }
            w.u32(UInt32(r.dates.count))
            for (sequence, date) in r.dates.sorted(by: { $0.key < $1.key }) {
                w.int(sequence)
                w.double(date.timeIntervalSinceReferenceDate)
            }
            w.u32(UInt32(r.cuts.count))
            for (sequence, time) in r.cuts.sorted(by: { $0.key < $1.key }) {
                w.int(sequence)
                w.double(time)
            }
            w.bool(r.state != nil)
            if let s = r.state { w.state(s) }
        }
        return w.bytes
    }

    /// Decodes `encoded()`; throws on anything else, never traps.
    public init(decoding bytes: [UInt8]) throws(ReplicaError) {
        var r = ReplicaReader(bytes: bytes)
        guard Array(try r.take(4)) == Self.magic else { throw .malformed("not a replica batch") }
        guard try r.u8() == Self.version else { throw .malformed("unknown version") }
        let epoch = try r.u64()
        let sequence = try r.u64()
        let snapshot = try r.bool()
        let sessions = try r.int()
        let streamEpoch = StreamEpoch(try r.u32())
        let recordingStart = try r.bool() ? try r.int() : nil
        var order: [String] = []
        for _ in 0..<(try r.count()) { order.append(try r.string()) }
        var renditions: [ReplicaRendition] = []
        for _ in 0..<(try r.count()) {
            let name = try r.string()
            let live = try r.bool()
            let shed = try r.bool()
            var outputs: [PackagerOutput] = []
            for _ in 0..<(try r.count()) { outputs.append(try r.output()) }
            var dates: [Int: Date] = [:]
            for _ in 0..<(try r.count()) {
                let sequence = try r.int()
                dates[sequence] = Date(timeIntervalSinceReferenceDate: try r.double())
            }
            var cuts: [Int: Double] = [:]
            for _ in 0..<(try r.count()) {
                let sequence = try r.int()
                cuts[sequence] = try r.double()
            }
            let state = try r.bool() ? try r.state() : nil
            renditions.append(ReplicaRendition(name: name, live: live, shed: shed, outputs: outputs, dates: dates, cuts: cuts, state: state))
        }
        guard r.atEnd else { throw .malformed("\(bytes.count - r.offset) bytes left over") }
        self.init(snapshot: snapshot, sessions: sessions, order: order, renditions: renditions)
        self.epoch = epoch
        self.sequence = sequence
        self.streamEpoch = streamEpoch
        self.recordingStart = recordingStart
    }
}

struct ReplicaWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func int(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    mutating func double(_ v: Double) { u64(v.bitPattern) }
    mutating func optionalDouble(_ v: Double?) { bool(v != nil); if let v { double(v) } }
    mutating func data(_ v: [UInt8]) { u32(UInt32(v.count)); bytes.append(contentsOf: v) }
    mutating func string(_ v: String) { data(Array(v.utf8)) }

    mutating func track(_ t: CMAFTrack) {
        u32(t.id)
        u32(t.timescale)
        switch t.format {
        case .avc(let c): u8(0); data(c.record)
        case .aac(let c): u8(1); data(c.bytes)
        }
    }

    mutating func part(_ p: PackagedPart) {
        int(p.segment)
        int(p.index)
        double(p.duration)
        bool(p.independent)
        double(p.startTime)
        data(p.bytes)
    }

    mutating func output(_ o: PackagerOutput) {
        switch o {
        case .initSegment(let version, let b, let tracks):
            u8(0); int(version); data(b)
            u32(UInt32(tracks.count))
            for t in tracks { track(t) }
        case .part(let p):
            u8(1); part(p)
        case .segmentEnded(let sequence):
            u8(2); int(sequence)
        case .segmentStarted(let sequence, let discontinuity, let initVersion):
            u8(3); int(sequence); bool(discontinuity); int(initVersion)
        }
    }

    mutating func state(_ s: ReplicaState) {
        u32(UInt32(s.inits.count))
        for i in s.inits {
            int(i.version); data(i.bytes)
            u32(UInt32(i.tracks.count))
            for t in i.tracks { track(t) }
        }
        u32(UInt32(s.segments.count))
        for g in s.segments {
            int(g.sequence)
            bool(g.complete)
            bool(g.discontinuity)
            int(g.initVersion)
            double(g.programDateTime.timeIntervalSinceReferenceDate)
            bool(g.bytes != nil)
            if let b = g.bytes { data(b) }
            u32(UInt32(g.parts.count))
            for p in g.parts { part(p) }
            optionalDouble(g.recordedUntil)
        }
        int(s.discontinuitySequence)
        int(s.nextSequence)
        int(s.nextInitVersion)
        optionalDouble(s.timelineEnd)
        optionalDouble(s.partEnd)
        double(s.maxSegmentDuration)
        double(s.bandwidthBits)
        double(s.bandwidthSeconds)
        double(s.peakBandwidth)
        optionalDouble(s.lastSegmentBitrate)
    }
}

struct ReplicaReader {
    let bytes: [UInt8]
    var offset = 0

    var atEnd: Bool { offset == bytes.count }

    mutating func take(_ n: Int) throws(ReplicaError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else { throw .malformed("truncated at byte \(offset)") }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8() throws(ReplicaError) -> UInt8 { try take(1).first! }
    mutating func bool() throws(ReplicaError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw .malformed("\(v) is not a flag")
        }
    }
    mutating func u32() throws(ReplicaError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws(ReplicaError) -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func int() throws(ReplicaError) -> Int {
        let v = Int64(bitPattern: try u64())
        guard v >= Int64(Int32.min), v <= Int64(Int32.max) * 4096 else { throw .malformed("number \(v) out of range") }
        return Int(v)
    }
    mutating func double() throws(ReplicaError) -> Double {
        let v = Double(bitPattern: try u64())
        guard v.isFinite else { throw .malformed("a number that is not finite") }
        return v
    }
    mutating func optionalDouble() throws(ReplicaError) -> Double? { try bool() ? try double() : nil }
    /// A count of things that follow, each at least a byte: never more than the bytes left.
    mutating func count() throws(ReplicaError) -> Int {
        let n = Int(try u32())
        guard n <= bytes.count - offset else { throw .malformed("count \(n) beyond the end") }
        return n
    }
    mutating func data() throws(ReplicaError) -> [UInt8] { Array(try take(Int(try u32()))) }
    mutating func string() throws(ReplicaError) -> String {
        guard let s = String(validating: try data(), as: UTF8.self) else { throw .malformed("a name that is not UTF-8") }
        return s
    }

    mutating func track() throws(ReplicaError) -> CMAFTrack {
        let id = try u32()
        let timescale = try u32()
        let kind = try u8()
        let config = try data()
        do {
            switch kind {
            case 0: return CMAFTrack(id: id, timescale: timescale, format: .avc(try AVCDecoderConfiguration(record: config)))
            case 1: return CMAFTrack(id: id, timescale: timescale, format: .aac(try AudioSpecificConfig(bytes: config)))
            default: throw ReplicaError.malformed("unknown track kind \(kind)")
            }
        } catch let e as ReplicaError {
            throw e
        } catch {
            throw .malformed("track \(id): \(error)")
        }
    }

    mutating func part() throws(ReplicaError) -> PackagedPart {
        PackagedPart(segment: try int(), index: try int(), duration: try double(), independent: try bool(),
                     bytes: [], startTime: try double()).with(bytes: try data())
    }

    mutating func tracks() throws(ReplicaError) -> [CMAFTrack] {
        var out: [CMAFTrack] = []
        for _ in 0..<(try count()) { out.append(try track()) }
        return out
    }

    mutating func output() throws(ReplicaError) -> PackagerOutput {
        switch try u8() {
        case 0:
            let version = try int()
            let b = try data()
            return .initSegment(version: version, bytes: b, tracks: try tracks())
        case 1: return .part(try part())
        case 2: return .segmentEnded(sequence: try int())
        case 3: return .segmentStarted(sequence: try int(), discontinuity: try bool(), initVersion: try int())
        case let k: throw .malformed("unknown output kind \(k)")
        }
    }

    mutating func state() throws(ReplicaError) -> ReplicaState {
        var inits: [ReplicaState.Init] = []
        for _ in 0..<(try count()) {
            let version = try int()
            let b = try data()
            inits.append(.init(version: version, bytes: b, tracks: try tracks()))
        }
        var segments: [LiveSegment] = []
        for _ in 0..<(try count()) {
            let sequence = try int()
            let complete = try bool()
            let discontinuity = try bool()
            let initVersion = try int()
            let date = Date(timeIntervalSinceReferenceDate: try double())
            let b = try bool() ? try data() : nil
            var parts: [PackagedPart] = []
            for _ in 0..<(try count()) { parts.append(try part()) }
            segments.append(LiveSegment(sequence: sequence, parts: parts, complete: complete, discontinuity: discontinuity,
                                        initVersion: initVersion, programDateTime: date, bytes: b, recordedUntil: try optionalDouble()))
        }
        return ReplicaState(inits: inits, segments: segments, discontinuitySequence: try int(), nextSequence: try int(),
                            nextInitVersion: try int(), timelineEnd: try optionalDouble(), partEnd: try optionalDouble(),
                            maxSegmentDuration: try double(), bandwidthBits: try double(), bandwidthSeconds: try double(),
                            peakBandwidth: try double(), lastSegmentBitrate: try optionalDouble())
    }
}

extension PackagedPart {
    fileprivate func with(bytes: [UInt8]) -> PackagedPart {
        var p = self
        p.bytes = bytes
        return p
    }
}
