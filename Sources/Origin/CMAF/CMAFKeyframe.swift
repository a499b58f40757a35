// CMAFKeyframe: the first video sample of a CMAF segment and its decoder configuration, read
// back from the files the packager wrote (`CMAFWriter`): the avcC record of the init segment's
// video track, and that track's first sample in the segment's first fragment. Every segment
// starts with a keyframe, so this is a picture a decoder can make on its own (a recording's
// thumbnail). Reads boxes with bounds checked at every step; anything unexpected is nil.
public enum CMAFKeyframe {
    /// The video track's avcC record and its first sample (length-prefixed NAL units, as FLV
    /// carries them); nil when the files hold no H.264 track or are not as the packager writes them.
    public static func first(initSegment: [UInt8], segment: [UInt8]) -> (avcC: [UInt8], accessUnit: [UInt8])? {
        guard let moov = boxes(initSegment, 0..<initSegment.count).first(where: { $0.type == "moov" }) else { return nil }
        var video: (track: UInt32, avcC: [UInt8])?
        for trak in boxes(initSegment, moov.body) where trak.type == "trak" {
            guard let tkhd = child(initSegment, trak.body, "tkhd"), tkhd.body.count >= 16,
                  let avcC = path(initSegment, trak.body, ["mdia", "minf", "stbl"]).flatMap({ stbl in avcRecord(initSegment, stbl) }) else { continue }
            // tkhd v0: version/flags (4), creation (4), modification (4), track id (4); v1 has 8-byte times.
            let version = initSegment[tkhd.body.lowerBound]
            let at = tkhd.body.lowerBound + (version == 1 ? 20 : 12)
            guard at + 4 <= tkhd.body.upperBound else { continue }
            video = (u32(initSegment, at), avcC)
            break
        }
        guard let video, let moof = boxes(segment, 0..<segment.count).first(where: { $0.type == "moof" }) else { return nil }
        for traf in boxes(segment, moof.body) where traf.type == "traf" {
            guard let tfhd = child(segment, traf.body, "tfhd"), tfhd.body.count >= 8, u32(segment, tfhd.body.lowerBound + 4) == video.track,
                  let trun = child(segment, traf.body, "trun"), trun.body.count >= 12 else { continue }
            let flags = u32(segment, trun.body.lowerBound) & 0xFF_FFFF
            let count = u32(segment, trun.body.lowerBound + 4)
            // The packager writes data offsets from the moof (default-base-is-moof) and every size.
            guard count > 0, flags & 0x1 != 0, flags & 0x200 != 0 else { return nil }
            var at = trun.body.lowerBound + 8
            let offset = Int(Int32(bitPattern: u32(segment, at)))
            at += 4
            if flags & 0x4 != 0 { at += 4 }
            if flags & 0x100 != 0 { at += 4 }
            guard at + 4 <= trun.body.upperBound else { return nil }
            let size = Int(u32(segment, at))
            let start = moof.start + offset
            guard offset > 0, size > 0, start + size <= segment.count else { return nil }
            return (video.avcC, Array(segment[start..<(start + size)]))
        }
        return nil
    }

    struct Box {
        var type: String
        var start: Int
        var body: Range<Int>
    }

    /// The boxes laid one after another in `range`.
    static func boxes(_ b: [UInt8], _ range: Range<Int>) -> [Box] {
        var out: [Box] = []
        var at = range.lowerBound
        while at + 8 <= range.upperBound {
            var size = Int(u32(b, at))
            var header = 8
            if size == 1 {
                guard at + 16 <= range.upperBound else { break }
                size = Int(clamping: UInt64(u32(b, at + 8)) << 32 | UInt64(u32(b, at + 12)))
                header = 16
            } else if size == 0 {
                size = range.upperBound - at
            }
            guard size >= header, size <= range.upperBound - at else { break }
            let type = String(decoding: b[(at + 4)..<(at + 8)], as: UTF8.self)
            out.append(Box(type: type, start: at, body: (at + header)..<(at + size)))
            at += size
        }
        return out
    }

    static func child(_ b: [UInt8], _ range: Range<Int>, _ type: String) -> Box? { boxes(b, range).first { $0.type == type } }

    static func path(_ b: [UInt8], _ range: Range<Int>, _ types: [String]) -> Range<Int>? {
        var range = range
        for t in types {
            guard let box = child(b, range, t) else { return nil }
            range = box.body
        }
        return range
    }

    /// The avcC record of an stbl's `avc1` (or `avc3`) sample entry.
    static func avcRecord(_ b: [UInt8], _ stbl: Range<Int>) -> [UInt8]? {
        // stsd: version/flags (4), entry count (4), then sample entries.
        guard let stsd = child(b, stbl, "stsd"), stsd.body.count > 8 else { return nil }
        for entry in boxes(b, (stsd.body.lowerBound + 8)..<stsd.body.upperBound) where entry.type == "avc1" || entry.type == "avc3" {
            // A visual sample entry's fields take 78 bytes before its child boxes.
            guard entry.body.count > 78, let avcC = child(b, (entry.body.lowerBound + 78)..<entry.body.upperBound, "avcC") else { continue }
            return Array(b[avcC.body])
        }
        return nil
    }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}
