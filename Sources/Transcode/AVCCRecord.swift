import Origin

/// The H.264 decoder configuration record (ISO/IEC 14496-15 `avcC`) as the transcoder needs
/// it: parsed from the source's sequence header (for the NAL length size) and built from
/// x264's Annex-B global header for each rung. (CMAF's `AVCDecoderConfiguration` keeps a
/// received record verbatim and reads the SPS; this one writes records.)
struct AVCCRecord: Sendable, Equatable {
    var profileIndication: UInt8
    var profileCompatibility: UInt8
    var levelIndication: UInt8
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    var nalUnitLengthSize: Int
    var sequenceParameterSets: [[UInt8]]
    var pictureParameterSets: [[UInt8]]

    /// Parses an avcC record. Trailing high-profile extension bytes are ignored.
    init(parsing bytes: [UInt8]) throws(TranscodeError) {
        var reader = AVCCByteReader(bytes)
        guard let version = reader.u8(), version == 1 else {
            throw .invalidDecoderConfiguration("configurationVersion is not 1")
        }
        guard let profile = reader.u8(), let compat = reader.u8(), let level = reader.u8(),
              let lengthByte = reader.u8(), let spsCountByte = reader.u8()
        else { throw .invalidDecoderConfiguration("record is shorter than its header") }
        let lengthSize = Int(lengthByte & 0x03) + 1
        guard lengthSize != 3 else { throw .invalidDecoderConfiguration("NAL length size 3 is not allowed") }
        var sps: [[UInt8]] = []
        for _ in 0..<Int(spsCountByte & 0x1f) {
            guard let n = reader.u16(), let unit = reader.bytes(Int(n)), !unit.isEmpty else {
                throw .invalidDecoderConfiguration("truncated SPS")
            }
            sps.append(unit)
        }
        guard let ppsCount = reader.u8() else { throw .invalidDecoderConfiguration("missing PPS count") }
        var pps: [[UInt8]] = []
        for _ in 0..<Int(ppsCount) {
            guard let n = reader.u16(), let unit = reader.bytes(Int(n)), !unit.isEmpty else {
                throw .invalidDecoderConfiguration("truncated PPS")
            }
            pps.append(unit)
        }
        guard !sps.isEmpty, !pps.isEmpty else { throw .invalidDecoderConfiguration("no SPS or no PPS") }
        self.init(profileIndication: profile, profileCompatibility: compat, levelIndication: level,
                  nalUnitLengthSize: lengthSize, sequenceParameterSets: sps, pictureParameterSets: pps)
    }

    init(profileIndication: UInt8, profileCompatibility: UInt8, levelIndication: UInt8,
                nalUnitLengthSize: Int = 4, sequenceParameterSets: [[UInt8]], pictureParameterSets: [[UInt8]]) {
        self.profileIndication = profileIndication
        self.profileCompatibility = profileCompatibility
        self.levelIndication = levelIndication
        self.nalUnitLengthSize = nalUnitLengthSize
        self.sequenceParameterSets = sequenceParameterSets
        self.pictureParameterSets = pictureParameterSets
    }

    /// Builds the record from the SPS and PPS found among NAL units (e.g. x264's Annex-B
    /// global header); profile and level come from the first SPS.
    init(parameterSetsIn nalUnits: [ArraySlice<UInt8>]) throws(TranscodeError) {
        let sps = nalUnits.filter { ($0.first ?? 0) & 0x1f == 7 }.map(Array.init)
        let pps = nalUnits.filter { ($0.first ?? 0) & 0x1f == 8 }.map(Array.init)
        guard let first = sps.first, first.count >= 4, !pps.isEmpty else {
            throw .invalidDecoderConfiguration("no SPS or PPS among the encoder's headers")
        }
        self.init(profileIndication: first[1], profileCompatibility: first[2], levelIndication: first[3],
                  nalUnitLengthSize: 4, sequenceParameterSets: sps, pictureParameterSets: pps)
    }

    /// The serialized avcC record.
    var bytes: [UInt8] {
        var out: [UInt8] = [1, profileIndication, profileCompatibility, levelIndication,
                            0xfc | UInt8(nalUnitLengthSize - 1), 0xe0 | UInt8(sequenceParameterSets.count & 0x1f)]
        for unit in sequenceParameterSets {
            out += [UInt8(unit.count >> 8 & 0xff), UInt8(unit.count & 0xff)] + unit
        }
        out.append(UInt8(pictureParameterSets.count & 0xff))
        for unit in pictureParameterSets {
            out += [UInt8(unit.count >> 8 & 0xff), UInt8(unit.count & 0xff)] + unit
        }
        // High profiles carry chroma format and bit depth; 4:2:0 8-bit is what x264 makes here.
        if [100, 110, 122, 144].contains(profileIndication) {
            out += [0xfc | 1, 0xf8, 0xf8, 0]
        }
        return out
    }
}

/// Conversions between NAL unit framings: length-prefixed (AVCC, as in FLV and MP4) and
/// start-code delimited (Annex B, as in raw .h264 files and x264's output).
enum NALUnits {
    /// Splits length-prefixed NAL units. Returns nil when the lengths do not tile the data
    /// exactly (a truncated or corrupt access unit).
    static func splitLengthPrefixed(_ data: [UInt8], lengthSize: Int = 4) -> [ArraySlice<UInt8>]? {
        guard [1, 2, 4].contains(lengthSize) else { return nil }
        var units: [ArraySlice<UInt8>] = []
        var i = 0
        while i < data.count {
            guard data.count - i >= lengthSize else { return nil }
            var n = 0
            for k in 0..<lengthSize { n = n << 8 | Int(data[i + k]) }
            i += lengthSize
            guard n > 0, n <= data.count - i else { return nil }
            units.append(data[i..<(i + n)])
            i += n
        }
        return units
    }

    /// Splits an Annex-B byte stream at its 3- or 4-byte start codes.
    static func splitAnnexB(_ data: [UInt8]) -> [ArraySlice<UInt8>] {
        var units: [ArraySlice<UInt8>] = []
        var start: Int? = nil
        var i = 0
        let n = data.count
        while i + 2 < n {
            if data[i] == 0, data[i + 1] == 0, data[i + 2] == 1 {
                if let s = start {
                    var end = i
                    while end > s, data[end - 1] == 0 { end -= 1 }  // trailing zero / 4-byte code
                    if end > s { units.append(data[s..<end]) }
                }
                i += 3
                start = i
            } else {
                i += 1
            }
        }
        if let s = start {
            // A NAL unit never ends in a zero byte: trailing zeros are stream padding.
            var end = n
            while end > s, data[end - 1] == 0 { end -= 1 }
            if end > s { units.append(data[s..<end]) }
        }
        return units
    }

    /// Joins NAL units with 4-byte big-endian length prefixes.
    static func lengthPrefixed<S: Sequence>(_ units: S) -> [UInt8] where S.Element == ArraySlice<UInt8> {
        var out: [UInt8] = []
        for unit in units {
            let n = unit.count
            out += [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
            out += unit
        }
        return out
    }

    /// Joins NAL units with 4-byte start codes.
    static func annexB<S: Sequence>(_ units: S) -> [UInt8] where S.Element == ArraySlice<UInt8> {
        var out: [UInt8] = []
        for unit in units { out += [0, 0, 0, 1]; out += unit }
        return out
    }
}

/// Big-endian reads over a byte array that fail softly at the end.
private struct AVCCByteReader {
    private let data: [UInt8]
    private(set) var offset = 0
    init(_ data: [UInt8]) { self.data = data }
    mutating func u8() -> UInt8? {
        guard offset < data.count else { return nil }
        defer { offset += 1 }
        return data[offset]
    }
    mutating func u16() -> UInt16? {
        guard let a = u8(), let b = u8() else { return nil }
        return UInt16(a) << 8 | UInt16(b)
    }
    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, data.count - offset >= n else { return nil }
        defer { offset += n }
        return Array(data[offset..<(offset + n)])
    }
}
