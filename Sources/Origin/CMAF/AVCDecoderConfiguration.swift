// CMAF packaging: the H.264 decoder configuration as carried in an FLV AVC sequence header
// (ISO/IEC 14496-15 5.3.3.1 AVCDecoderConfigurationRecord). The record is kept verbatim
// for the avcC box; the first SPS is parsed for picture size and frame rate.

/// An AVCDecoderConfigurationRecord with the facts a packager and a playlist need.
public struct AVCDecoderConfiguration: Equatable, Sendable {
    /// The record exactly as received; written unchanged into `avcC`.
    public let record: [UInt8]
    /// Sequence parameter set NAL units (with their header byte).
    public let sps: [[UInt8]]
    /// Picture parameter set NAL units (with their header byte).
    public let pps: [[UInt8]]
    /// Bytes of the length prefix before each NAL unit in samples: 1, 2 or 4.
    public let nalLengthSize: Int
    public let profileIndication: UInt8
    public let profileCompatibility: UInt8
    public let levelIndication: UInt8
    /// Displayed picture size from the first SPS, after cropping.
    public let width: Int
    public let height: Int
    /// Frames per second from the first SPS's VUI timing info, if the encoder wrote it.
    public let frameRate: Double?

    /// Parses a record. Throws `CMAFParseError` on truncated or malformed input; never traps.
    public init(record: [UInt8]) throws {
        var offset = 0
        func byte(_ what: String) throws -> UInt8 {
            guard offset < record.count else { throw CMAFParseError.truncated(what: what) }
            defer { offset += 1 }
            return record[offset]
        }
        func bytes(_ count: Int, _ what: String) throws -> [UInt8] {
            guard count <= record.count - offset else { throw CMAFParseError.truncated(what: what) }
            defer { offset += count }
            return Array(record[offset..<offset + count])
        }
        let version = try byte("configurationVersion")
        guard version == 1 else { throw CMAFParseError.invalidValue(what: "avcC configurationVersion", value: Int(version)) }
        profileIndication = try byte("AVCProfileIndication")
        profileCompatibility = try byte("profile_compatibility")
        levelIndication = try byte("AVCLevelIndication")
        let lengthSize = Int(try byte("lengthSizeMinusOne") & 0x03) + 1
        guard lengthSize != 3 else { throw CMAFParseError.invalidValue(what: "NAL length size", value: lengthSize) }
        nalLengthSize = lengthSize

        let spsCount = Int(try byte("numOfSequenceParameterSets") & 0x1F)
        guard spsCount > 0 else { throw CMAFParseError.invalidValue(what: "numOfSequenceParameterSets", value: 0) }
        var spsList: [[UInt8]] = []
        for _ in 0..<spsCount {
            let length = Int(try byte("SPS length")) << 8 | Int(try byte("SPS length"))
            guard length > 0 else { throw CMAFParseError.invalidValue(what: "SPS length", value: 0) }
            spsList.append(try bytes(length, "SPS NAL unit"))
        }
        let ppsCount = Int(try byte("numOfPictureParameterSets"))
        guard ppsCount > 0 else { throw CMAFParseError.invalidValue(what: "numOfPictureParameterSets", value: 0) }
        var ppsList: [[UInt8]] = []
        for _ in 0..<ppsCount {
            let length = Int(try byte("PPS length")) << 8 | Int(try byte("PPS length"))
            guard length > 0 else { throw CMAFParseError.invalidValue(what: "PPS length", value: 0) }
            ppsList.append(try bytes(length, "PPS NAL unit"))
        }
        // High-profile extension fields (chroma format, bit depth, SPS ext) may follow; they
        // repeat what the SPS says, so they stay in `record` and are not parsed.
        sps = spsList
        pps = ppsList

        let parsed = try H264SequenceParameterSet(nalUnit: spsList[0])
        width = parsed.width
        height = parsed.height
        frameRate = parsed.frameRate
        self.record = record
    }

    /// RFC 6381 codecs parameter, e.g. `avc1.64001f` (profile, compatibility, level in hex).
    public var codecString: String {
        "avc1." + [profileIndication, profileCompatibility, levelIndication].map(Self.hex).joined()
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 0x0F)]])
    }
}
