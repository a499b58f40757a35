/// The body of an FLV video tag, as carried by RTMP video messages (type 9)
/// (FLV specification 10.1, annex E.4.3).
///
/// Only AVC (codec id 7) is split into its packet types; any other codec, including
/// Sorenson H.263 (2) and Enhanced-RTMP bodies (top bit of the first byte set), is
/// returned as `.other` so the host can refuse it.
public struct FLVVideoTag: Equatable, Sendable {
    public enum Packet: Equatable, Sendable {
        /// AVCDecoderConfigurationRecord bytes.
        case avcSequenceHeader([UInt8])
        /// Length-prefixed NAL units as in FLV; composition time (pts - dts) in ms.
        case avcNALUs([UInt8], compositionTime: Int32)
        case avcEndOfSequence
        /// Payload after the first byte, for non-AVC codecs.
        case other([UInt8])
    }

    public static let avcCodecID: UInt8 = 7

    /// Frame type 1 (keyframe).
    public var isKeyframe: Bool
    /// 4-bit frame type (1 key, 2 inter, 3 disposable inter, 4 generated key, 5 command).
    public var frameType: UInt8
    /// 4-bit codec id (2 Sorenson H.263, 7 AVC, ...).
    public var codecID: UInt8
    public var packet: Packet

    public init(frameType: UInt8, codecID: UInt8, packet: Packet) {
        self.frameType = frameType
        self.isKeyframe = frameType == 1
        self.codecID = codecID
        self.packet = packet
    }

    public static func parse(_ body: [UInt8]) throws(RTMPError) -> FLVVideoTag {
        guard let first = body.first else { throw .malformedFLVTag("empty video tag") }
        let frameType = (first >> 4) & 0x0F
        let codecID = first & 0x0F
        guard first & 0x80 == 0, codecID == avcCodecID else {
            return FLVVideoTag(frameType: frameType, codecID: codecID, packet: .other(Array(body.dropFirst())))
        }
        guard body.count >= 5 else {
            throw .malformedFLVTag("AVC video tag has \(body.count) bytes, expected at least 5")
        }
        let raw = Int32(body[2]) << 16 | Int32(body[3]) << 8 | Int32(body[4])
        let compositionTime = raw & 0x80_0000 != 0 ? raw - 0x100_0000 : raw
        let data = Array(body[5...])
        let packet: Packet
        switch body[1] {
        case 0: packet = .avcSequenceHeader(data)
        case 1: packet = .avcNALUs(data, compositionTime: compositionTime)
        case 2: packet = .avcEndOfSequence
        default: throw .malformedFLVTag("unknown AVC packet type \(body[1])")
        }
        return FLVVideoTag(frameType: frameType, codecID: codecID, packet: packet)
    }
}
