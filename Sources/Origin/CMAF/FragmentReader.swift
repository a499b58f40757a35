// FragmentReader: the little of an fMP4 file a recording needs back from its files alone — an
// init segment's tracks (id, timescale, codecs, picture size) and a segment's duration (the
// sum of its `trun` sample durations) — so a recording whose manifest was not saved before
// its node died can be rebuilt from what is on disk. Reads what `CMAFWriter` writes and any
// plain ISO BMFF like it; malformed input gives nil, never a trap.
import Foundation

public enum FragmentReader {
    public struct Track: Sendable, Equatable {
        public var id: UInt32
        public var timescale: UInt32
        /// `vide` or `soun` (the `hdlr` type).
        public var handler: String
        /// RFC 6381 codecs parameter (`avc1.64001f`, `mp4a.40.2`); nil when the sample entry is unknown.
        public var codecs: String?
        public var width: Int?
        public var height: Int?
        /// `trex` default sample duration, used when a fragment gives none.
        public var defaultSampleDuration: UInt32 = 0
    }

    /// The tracks of an init segment, in file order; nil when it is not one.
    public static func tracks(initSegment bytes: [UInt8]) -> [Track]? {
        guard let moov = children(bytes[...]).first(where: { $0.type == "moov" })?.body else { return nil }
        var tracks: [Track] = []
        var defaults: [UInt32: UInt32] = [:]
        for box in children(moov) {
            if box.type == "trak", let t = track(box.body) { tracks.append(t) }
            if box.type == "mvex" {
                for trex in children(box.body) where trex.type == "trex" {
                    var r = Reader(trex.body.dropFirst(4))
                    if let id = r.u32(), r.skip(4), let d = r.u32() { defaults[id] = d }
                }
            }
        }
        for i in tracks.indices { tracks[i].defaultSampleDuration = defaults[tracks[i].id] ?? 0 }
        return tracks.isEmpty ? nil : tracks
    }

    /// A segment's duration in seconds: its video track's samples (the first track's when there
    /// is no video), summed over every fragment; nil when it is not a segment of these tracks.
    public static func duration(segment bytes: [UInt8], tracks: [Track]) -> Double? {
        guard let track = tracks.first(where: { $0.handler == "vide" }) ?? tracks.first, track.timescale > 0 else { return nil }
        var total: UInt64 = 0
        var fragments = 0
        for moof in children(bytes[...]) where moof.type == "moof" {
            fragments += 1
            for traf in children(moof.body) where traf.type == "traf" {
                var trackID: UInt32?
                var defaultDuration = track.defaultSampleDuration
                for box in children(traf.body) {
                    var r = Reader(box.body)
                    guard let head = r.u32() else { return nil }
                    let flags = head & 0xFF_FFFF
                    if box.type == "tfhd" {
                        guard let id = r.u32() else { return nil }
                        trackID = id
                        if flags & 0x01 != 0 { guard r.skip(8) else { return nil } }
                        if flags & 0x02 != 0 { guard r.skip(4) else { return nil } }
                        if flags & 0x08 != 0 { guard let d = r.u32() else { return nil }; defaultDuration = d }
                    } else if box.type == "trun", trackID == track.id {
                        guard let count = r.u32(), count < 1 << 20 else { return nil }
                        if flags & 0x01 != 0 { guard r.skip(4) else { return nil } }
                        if flags & 0x04 != 0 { guard r.skip(4) else { return nil } }
                        let others = [0x200, 0x400, 0x800].filter { flags & UInt32($0) != 0 }.count * 4
                        for _ in 0..<count {
                            if flags & 0x100 != 0 {
                                guard let d = r.u32() else { return nil }
                                total += UInt64(d)
                            } else {
                                total += UInt64(defaultDuration)
                            }
                            guard r.skip(others) else { return nil }
                        }
                    }
                }
            }
        }
        return fragments > 0 ? Double(total) / Double(track.timescale) : nil
    }

    // MARK: Boxes

    struct Box {
        var type: String
        var body: ArraySlice<UInt8>
    }

    /// The boxes one after another in `bytes`; stops at the first that does not fit.
    static func children(_ bytes: ArraySlice<UInt8>) -> [Box] {
        var out: [Box] = []
        var at = bytes.startIndex
        while bytes.endIndex - at >= 8 {
            var r = Reader(bytes[at...])
            guard let size32 = r.u32(), let type = r.bytes(4) else { break }
            var header = 8
            var size = Int(size32)
            if size32 == 1 {
                guard let large = r.u64(), large <= UInt64(Int.max) else { break }
                size = Int(large)
                header = 16
            } else if size32 == 0 {
                size = bytes.endIndex - at
            }
            guard size >= header, size <= bytes.endIndex - at else { break }
            out.append(Box(type: String(decoding: type, as: UTF8.self), body: bytes[(at + header)..<(at + size)]))
            at += size
        }
        return out
    }

    private static func track(_ trak: ArraySlice<UInt8>) -> Track? {
        var t = Track(id: 0, timescale: 0, handler: "")
        for box in children(trak) {
            if box.type == "tkhd" {
                var r = Reader(box.body)
                guard let head = r.u32(), r.skip(head >> 24 == 1 ? 16 : 8), let id = r.u32() else { return nil }
                t.id = id
            }
            guard box.type == "mdia" else { continue }
            for m in children(box.body) {
                var r = Reader(m.body)
                switch m.type {
                case "mdhd":
                    guard let head = r.u32(), r.skip(head >> 24 == 1 ? 16 : 8), let scale = r.u32() else { return nil }
                    t.timescale = scale
                case "hdlr":
                    guard r.skip(8), let h = r.bytes(4) else { return nil }
                    t.handler = String(decoding: h, as: UTF8.self)
                case "minf":
                    let stsd = children(m.body).first { $0.type == "stbl" }.flatMap { children($0.body).first { $0.type == "stsd" } }
                    if let stsd { sampleEntry(stsd.body.dropFirst(8), into: &t) }
                default:
                    continue
                }
            }
        }
        return t.id > 0 && t.timescale > 0 ? t : nil
    }

    /// Codecs and size from the first sample entry of an `stsd` (after its version and count).
    private static func sampleEntry(_ entries: ArraySlice<UInt8>, into t: inout Track) {
        guard let entry = children(entries).first else { return }
        switch entry.type {
        case "avc1", "avc3":
            // A visual sample entry: 78 bytes before its boxes; width and height at 24.
            var r = Reader(entry.body)
            guard r.skip(24), let w = r.u16(), let h = r.u16(), entry.body.count >= 78 else { return }
            (t.width, t.height) = (Int(w), Int(h))
            if let avcC = children(entry.body.dropFirst(78)).first(where: { $0.type == "avcC" }),
               let config = try? AVCDecoderConfiguration(record: Array(avcC.body)) {
                t.codecs = config.codecString
            }
        case "mp4a":
            // An audio sample entry: 28 bytes before its boxes; the object type is in `esds`.
            let esds = children(entry.body.dropFirst(28)).first { $0.type == "esds" }
            let objectType = esds.flatMap { audioObjectType(Array($0.body.dropFirst(4))) } ?? 2
            t.codecs = "mp4a.40.\(objectType)"
        default:
            return
        }
    }

    /// The audio object type of the AudioSpecificConfig in an `esds` (its descriptors walked).
    private static func audioObjectType(_ bytes: [UInt8]) -> Int? {
        var at = 0
        func descriptor() -> (tag: UInt8, start: Int, length: Int)? {
            guard at < bytes.count else { return nil }
            let tag = bytes[at]
            at += 1
            var length = 0
            for _ in 0..<4 {
                guard at < bytes.count else { return nil }
                let b = bytes[at]
                at += 1
                length = length << 7 | Int(b & 0x7F)
                if b & 0x80 == 0 { break }
            }
            return (tag, at, length)
        }
        guard let es = descriptor(), es.tag == 3 else { return nil }
        guard at + 3 <= bytes.count else { return nil }
        let flags = bytes[at + 2]
        at += 3
        if flags & 0x80 != 0 { at += 2 }
        if flags & 0x40 != 0, at < bytes.count { at += 1 + Int(bytes[at]) }
        if flags & 0x20 != 0 { at += 2 }
        guard let dc = descriptor(), dc.tag == 4 else { return nil }
        at += 13
        guard let info = descriptor(), info.tag == 5, info.start + info.length <= bytes.count,
              let asc = try? AudioSpecificConfig(bytes: Array(bytes[info.start..<(info.start + info.length)])) else { return nil }
        return asc.objectType
    }

    struct Reader {
        var bytes: ArraySlice<UInt8>
        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

        mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, bytes.count >= n else { return nil }
            defer { bytes = bytes.dropFirst(n) }
            return bytes.prefix(n)
        }
        mutating func skip(_ n: Int) -> Bool { bytes(n) != nil }
        mutating func u16() -> UInt16? { bytes(2).map { $0.reduce(0) { $0 << 8 | UInt16($1) } } }
        mutating func u32() -> UInt32? { bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } } }
        mutating func u64() -> UInt64? { bytes(8).map { $0.reduce(0) { $0 << 8 | UInt64($1) } } }
    }
}
