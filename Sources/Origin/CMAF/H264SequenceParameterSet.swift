// CMAF packaging: the fields of an H.264 sequence parameter set (ITU-T H.264 7.3.2.1.1)
// that packaging needs — picture size after cropping and the VUI frame rate.
// It reads; it never decodes video.

/// The parts of an H.264 SPS that a packager needs.
public struct H264SequenceParameterSet: Equatable, Sendable {
    public let profileIndication: UInt8
    public let constraintFlags: UInt8
    public let levelIndication: UInt8
    public let chromaFormatIDC: Int
    public let bitDepthLuma: Int
    public let frameMBsOnly: Bool
    /// Displayed width in luma samples, after frame cropping.
    public let width: Int
    /// Displayed height in luma samples, after frame cropping.
    public let height: Int
    /// Frames per second from VUI timing info (`time_scale / (2 * num_units_in_tick)`), if present.
    public let frameRate: Double?

    /// Profiles whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1).
    static let highProfiles: Set<UInt8> = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]

    /// Parses an SPS NAL unit, header byte included, emulation prevention bytes still present.
    public init(nalUnit: [UInt8]) throws {
        guard let header = nalUnit.first else { throw CMAFParseError.truncated(what: "SPS NAL header") }
        guard header & 0x1F == 7 else {
            throw CMAFParseError.invalidValue(what: "SPS nal_unit_type", value: Int(header & 0x1F))
        }
        var r = BitReader(Self.rbsp(from: nalUnit.dropFirst()))
        profileIndication = UInt8(try r.bits(8, "profile_idc"))
        constraintFlags = UInt8(try r.bits(8, "constraint flags"))
        levelIndication = UInt8(try r.bits(8, "level_idc"))
        let spsID = try r.ue("seq_parameter_set_id")
        guard spsID <= 31 else { throw CMAFParseError.invalidValue(what: "seq_parameter_set_id", value: Int(spsID)) }

        var chromaFormat = 1
        var separateColourPlane = false
        var bitDepth = 8
        if Self.highProfiles.contains(profileIndication) {
            chromaFormat = Int(try r.ue("chroma_format_idc"))
            guard chromaFormat <= 3 else { throw CMAFParseError.invalidValue(what: "chroma_format_idc", value: chromaFormat) }
            if chromaFormat == 3 { separateColourPlane = try r.flag("separate_colour_plane_flag") }
            let lumaMinus8 = try r.ue("bit_depth_luma_minus8")
            guard lumaMinus8 <= 6 else { throw CMAFParseError.invalidValue(what: "bit_depth_luma_minus8", value: Int(lumaMinus8)) }
            bitDepth = Int(lumaMinus8) + 8
            let chromaMinus8 = try r.ue("bit_depth_chroma_minus8")
            guard chromaMinus8 <= 6 else { throw CMAFParseError.invalidValue(what: "bit_depth_chroma_minus8", value: Int(chromaMinus8)) }
            _ = try r.flag("qpprime_y_zero_transform_bypass_flag")
            if try r.flag("seq_scaling_matrix_present_flag") {
                let lists = chromaFormat == 3 ? 12 : 8
                for i in 0..<lists where try r.flag("seq_scaling_list_present_flag") {
                    try Self.skipScalingList(&r, size: i < 6 ? 16 : 64)
                }
            }
        }
        chromaFormatIDC = chromaFormat
        bitDepthLuma = bitDepth

        let log2MaxFrameNumMinus4 = try r.ue("log2_max_frame_num_minus4")
        guard log2MaxFrameNumMinus4 <= 12 else {
            throw CMAFParseError.invalidValue(what: "log2_max_frame_num_minus4", value: Int(log2MaxFrameNumMinus4))
        }
        let pocType = try r.ue("pic_order_cnt_type")
        switch pocType {
        case 0:
            let lsb = try r.ue("log2_max_pic_order_cnt_lsb_minus4")
            guard lsb <= 12 else { throw CMAFParseError.invalidValue(what: "log2_max_pic_order_cnt_lsb_minus4", value: Int(lsb)) }
        case 1:
            _ = try r.flag("delta_pic_order_always_zero_flag")
            _ = try r.se("offset_for_non_ref_pic")
            _ = try r.se("offset_for_top_to_bottom_field")
            let cycle = try r.ue("num_ref_frames_in_pic_order_cnt_cycle")
            guard cycle <= 255 else { throw CMAFParseError.invalidValue(what: "num_ref_frames_in_pic_order_cnt_cycle", value: Int(cycle)) }
            for _ in 0..<cycle { _ = try r.se("offset_for_ref_frame") }
        case 2:
            break
        default:
            throw CMAFParseError.invalidValue(what: "pic_order_cnt_type", value: Int(pocType))
        }
        _ = try r.ue("max_num_ref_frames")
        _ = try r.flag("gaps_in_frame_num_value_allowed_flag")
        let widthInMBs = Int(try r.ue("pic_width_in_mbs_minus1")) + 1
        let heightInMapUnits = Int(try r.ue("pic_height_in_map_units_minus1")) + 1
        // 8192x8192 luma samples is far beyond level 6.2; anything larger is garbage.
        guard widthInMBs <= 512 else { throw CMAFParseError.invalidValue(what: "pic_width_in_mbs", value: widthInMBs) }
        guard heightInMapUnits <= 512 else { throw CMAFParseError.invalidValue(what: "pic_height_in_map_units", value: heightInMapUnits) }
        let frameMBs = try r.flag("frame_mbs_only_flag")
        frameMBsOnly = frameMBs
        if !frameMBs { _ = try r.flag("mb_adaptive_frame_field_flag") }
        _ = try r.flag("direct_8x8_inference_flag")

        let fullWidth = widthInMBs * 16
        let fullHeight = (frameMBs ? 1 : 2) * heightInMapUnits * 16
        var cropWidth = 0
        var cropHeight = 0
        if try r.flag("frame_cropping_flag") {
            let left = Int(try r.ue("frame_crop_left_offset"))
            let right = Int(try r.ue("frame_crop_right_offset"))
            let top = Int(try r.ue("frame_crop_top_offset"))
            let bottom = Int(try r.ue("frame_crop_bottom_offset"))
            // Table 6-1: SubWidthC / SubHeightC per ChromaArrayType.
            let chromaArrayType = separateColourPlane ? 0 : chromaFormat
            let (subWidth, subHeight): (Int, Int) = switch chromaArrayType {
            case 1: (2, 2)
            case 2: (2, 1)
            default: (1, 1)
            }
            let cropUnitX = chromaArrayType == 0 ? 1 : subWidth
            let cropUnitY = (chromaArrayType == 0 ? 1 : subHeight) * (frameMBs ? 1 : 2)
            cropWidth = cropUnitX * (left + right)
            cropHeight = cropUnitY * (top + bottom)
        }
        guard cropWidth < fullWidth else { throw CMAFParseError.invalidValue(what: "horizontal frame cropping", value: cropWidth) }
        guard cropHeight < fullHeight else { throw CMAFParseError.invalidValue(what: "vertical frame cropping", value: cropHeight) }
        width = fullWidth - cropWidth
        height = fullHeight - cropHeight

        var rate: Double? = nil
        // A truncated VUI is tolerated: the picture size is already known and that is what matters.
        if (try? r.flag("vui_parameters_present_flag")) == true {
            rate = try? Self.vuiFrameRate(&r)
        }
        frameRate = rate
    }

    /// Reads VUI up to timing info (E.1.1) and returns the frame rate, or nil when absent.
    private static func vuiFrameRate(_ r: inout BitReader) throws -> Double? {
        if try r.flag("aspect_ratio_info_present_flag") {
            if try r.bits(8, "aspect_ratio_idc") == 255 { try r.skip(32, "sar_width/sar_height") }
        }
        if try r.flag("overscan_info_present_flag") { try r.skip(1, "overscan_appropriate_flag") }
        if try r.flag("video_signal_type_present_flag") {
            try r.skip(4, "video_format/video_full_range_flag")
            if try r.flag("colour_description_present_flag") { try r.skip(24, "colour description") }
        }
        if try r.flag("chroma_loc_info_present_flag") {
            _ = try r.ue("chroma_sample_loc_type_top_field")
            _ = try r.ue("chroma_sample_loc_type_bottom_field")
        }
        guard try r.flag("timing_info_present_flag") else { return nil }
        let unitsInTick = try r.bits(32, "num_units_in_tick")
        let timeScale = try r.bits(32, "time_scale")
        guard unitsInTick > 0, timeScale > 0 else { return nil }
        return Double(timeScale) / (2 * Double(unitsInTick))
    }

    /// 7.3.2.1.1.1: only the parse matters, the values are not used.
    private static func skipScalingList(_ r: inout BitReader, size: Int) throws {
        var last: Int32 = 8
        var next: Int32 = 8
        for _ in 0..<size where next != 0 {
            let delta = try r.se("delta_scale")
            guard delta >= -128, delta <= 127 else { throw CMAFParseError.invalidValue(what: "delta_scale", value: Int(delta)) }
            next = (last + delta + 256) % 256
            if next != 0 { last = next }
        }
    }

    /// Removes emulation prevention bytes (0x00 0x00 0x03 -> 0x00 0x00), 7.4.1.
    static func rbsp<C: Collection<UInt8>>(from ebsp: C) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ebsp.count)
        var zeros = 0
        for byte in ebsp {
            if zeros >= 2 && byte == 0x03 {
                zeros = 0
                continue
            }
            out.append(byte)
            zeros = byte == 0 ? zeros + 1 : 0
        }
        return out
    }
}
