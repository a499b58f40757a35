/// The body of an FLV audio tag, as carried by RTMP audio messages (type 8)
/// (FLV specification 10.1, annex E.4.2).
///
/// Only AAC (sound format 10) is split into its packet types; any other format is
/// returned as `.other`.
public struct FLVAudioTag: Equatable, Sendable {
    public enum Packet: Equatable, Sendable {
        /// AudioSpecificConfig bytes.
        case aacSequenceHeader([UInt8])
        /// One raw AAC frame.
        case aacRaw([UInt8])
        /// Payload after the first byte, for non-AAC formats.
        case other([UInt8])
    }

    public static let aacSoundFormat: UInt8 = 10

    /// 4-bit sound format (2 MP3, 10 AAC, 11 Speex, ...).
    public var soundFormat: UInt8
    /// 2-bit rate index: 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz (always 3 for AAC).
    public var soundRate: UInt8
    /// Bits per sample: 8 or 16.
    public var soundSize: UInt8
    /// 1 (mono) or 2 (stereo). For AAC the real layout is in the AudioSpecificConfig.
    public var channels: UInt8
    public var packet: Packet

    public init(soundFormat: UInt8, soundRate: UInt8, soundSize: UInt8, channels: UInt8, packet: Packet) {
        self.soundFormat = soundFormat
        self.soundRate = soundRate
        self.soundSize = soundSize
        self.channels = channels
        self.packet = packet
    }

    /// Sample rate in Hz for `soundRate`.
    public var sampleRate: Int { [5512, 11025, 22050, 44100][Int(soundRate & 3)] }

    public static func parse(_ body: [UInt8]) throws(RTMPError) -> FLVAudioTag {
        guard let first = body.first else { throw .malformedFLVTag("empty audio tag") }
        let format = first >> 4
        let rate = (first >> 2) & 0x03
        let size: UInt8 = (first & 0x02) != 0 ? 16 : 8
        let channels: UInt8 = (first & 0x01) != 0 ? 2 : 1
        guard format == aacSoundFormat else {
            return FLVAudioTag(soundFormat: format, soundRate: rate, soundSize: size, channels: channels, packet: .other(Array(body.dropFirst())))
        }
        guard body.count >= 2 else {
            throw .malformedFLVTag("AAC audio tag has \(body.count) byte, expected at least 2")
        }
        let data = Array(body[2...])
        let packet: Packet
        switch body[1] {
        case 0: packet = .aacSequenceHeader(data)
        case 1: packet = .aacRaw(data)
        default: throw .malformedFLVTag("unknown AAC packet type \(body[1])")
        }
        return FLVAudioTag(soundFormat: format, soundRate: rate, soundSize: size, channels: channels, packet: packet)
    }
}
