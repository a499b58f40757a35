// CMAF packaging: the AAC decoder configuration as carried in an FLV AAC sequence header
// (ISO/IEC 14496-3 1.6.2.1 AudioSpecificConfig). Kept verbatim for the esds box.

/// An MPEG-4 AudioSpecificConfig with object type, sample rate and channel count.
public struct AudioSpecificConfig: Equatable, Sendable {
    /// The configuration exactly as received; written unchanged into `esds`.
    public let bytes: [UInt8]
    /// Audio object type (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS/HE-AACv2, ...).
    public let objectType: Int
    /// Sampling frequency of the core AAC stream in Hz (the media timescale to use).
    public let sampleRate: Int
    public let channelCount: Int

    static let sampleRates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]

    /// Parses a configuration. Throws `CMAFParseError` on truncated or unusable input; never traps.
    public init(bytes: [UInt8]) throws {
        var r = BitReader(bytes)
        var type = Int(try r.bits(5, "audioObjectType"))
        if type == 31 { type = 32 + Int(try r.bits(6, "audioObjectTypeExt")) }
        guard type != 0 else { throw CMAFParseError.invalidValue(what: "audioObjectType", value: 0) }
        let rate = try Self.readSampleRate(&r)
        let channelConfig = Int(try r.bits(4, "channelConfiguration"))
        switch channelConfig {
        case 1...6: channelCount = channelConfig
        case 7: channelCount = 8
        case 0: throw CMAFParseError.unsupported("AAC channel configuration 0 (program config element)")
        default: throw CMAFParseError.invalidValue(what: "AAC channelConfiguration", value: channelConfig)
        }
        objectType = type
        sampleRate = rate
        self.bytes = bytes
    }

    private static func readSampleRate(_ r: inout BitReader) throws -> Int {
        let index = Int(try r.bits(4, "samplingFrequencyIndex"))
        if index == 15 {
            let explicit = Int(try r.bits(24, "samplingFrequency"))
            guard explicit > 0 else { throw CMAFParseError.invalidValue(what: "AAC samplingFrequency", value: 0) }
            return explicit
        }
        guard index < sampleRates.count else { throw CMAFParseError.invalidValue(what: "AAC samplingFrequencyIndex", value: index) }
        return sampleRates[index]
    }

    /// RFC 6381 codecs parameter: `mp4a.40.<objectType>`.
    public var codecString: String { "mp4a.40.\(objectType)" }

    /// PCM samples per AAC frame at `sampleRate`.
    public var samplesPerFrame: Int { 1024 }
}
