import CFFmpeg
import Origin

/// One rung: libswscale from the decoded frame to the rung's size, then libx264 through
/// libavcodec with keyframes only where the caller forces them. Used on one thread at a time.
final class RungEncoder {
    let rung: LadderRung
    let width: Int
    let height: Int
    /// The avcC record of this rung's stream (built from x264's global headers).
    let avcC: [UInt8]

    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var scaled: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?

    init(rung: LadderRung, width: Int, height: Int, settings: TranscodeSettings, frameRate: AVRational) throws(TranscodeError) {
        self.rung = rung
        self.width = width
        self.height = height
        guard let codec = avcodec_find_encoder_by_name("libx264") else { throw .codecUnavailable("libx264") }
        context = avcodec_alloc_context3(codec)
        scaled = av_frame_alloc()
        packet = av_packet_alloc()
        guard let context, let scaled, packet != nil else { throw .ffmpeg("avcodec_alloc_context3", st_averror_enomem()) }

        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        context.pointee.time_base = AVRational(num: 1, den: 1000)
        // zerolatency turns off x264's VFR rate control, so it needs the nominal frame rate.
        context.pointee.framerate = frameRate
        context.pointee.sample_aspect_ratio = AVRational(num: 1, den: 1)
        context.pointee.bit_rate = Int64(rung.videoBitrate)
        context.pointee.rc_max_rate = Int64(rung.maxBitrate)
        context.pointee.rc_buffer_size = Int32(clamping: rung.maxBitrate)
        context.pointee.max_b_frames = 0
        context.pointee.thread_count = Int32(settings.threads)
        context.pointee.flags |= st_av_codec_flag_global_header()

        let priv = context.pointee.priv_data
        var rc = av_opt_set(priv, "preset", settings.preset, 0)
        guard rc >= 0 else { throw .ffmpeg("av_opt_set(preset=\(settings.preset))", rc) }
        rc = av_opt_set(priv, "tune", "zerolatency", 0)
        guard rc >= 0 else { throw .ffmpeg("av_opt_set(tune)", rc) }
        // Keyframes come only from the source: no scene cuts, no periodic IDR of x264's own.
        rc = av_opt_set(priv, "x264-params", "scenecut=0:keyint=infinite:min-keyint=1", 0)
        guard rc >= 0 else { throw .ffmpeg("av_opt_set(x264-params)", rc) }
        rc = av_opt_set_int(priv, "forced-idr", 1, 0)
        guard rc >= 0 else { throw .ffmpeg("av_opt_set(forced-idr)", rc) }

        rc = avcodec_open2(context, codec, nil)
        guard rc >= 0 else { throw .ffmpeg("avcodec_open2(libx264)", rc) }

        guard let extradata = context.pointee.extradata, context.pointee.extradata_size > 0 else {
            throw .invalidDecoderConfiguration("libx264 gave no global header")
        }
        let header = Array(UnsafeBufferPointer(start: extradata, count: Int(context.pointee.extradata_size)))
        if header.first == 1 {
            avcC = header
        } else {
            avcC = try AVCCRecord(parameterSetsIn: NALUnits.splitAnnexB(header)).bytes
        }

        scaled.pointee.width = Int32(width)
        scaled.pointee.height = Int32(height)
        scaled.pointee.format = AV_PIX_FMT_YUV420P.rawValue
        rc = av_frame_get_buffer(scaled, 0)
        guard rc >= 0 else { throw .ffmpeg("av_frame_get_buffer", rc) }
    }

    deinit {
        sws_freeContext(scaler)
        av_packet_free(&packet)
        av_frame_free(&scaled)
        avcodec_free_context(&context)
    }

    /// Scales `source` and encodes it with presentation time `pts` (ms), as an IDR when
    /// `keyframe`. Returns the packets that came out (one per frame with zerolatency).
    func encode(_ source: UnsafeMutablePointer<AVFrame>, pts: Int64, keyframe: Bool) throws(TranscodeError) -> [EncodedVideoFrame] {
        guard let context, let scaled else { return [] }
        scaler = sws_getCachedContext(
            scaler,
            source.pointee.width, source.pointee.height, AVPixelFormat(rawValue: source.pointee.format),
            Int32(width), Int32(height), AV_PIX_FMT_YUV420P,
            SWS_BICUBIC, nil, nil, nil)
        guard let scaler else { throw .ffmpeg("sws_getCachedContext", st_averror_invaliddata()) }
        // The encoder may still hold a reference to the last picture.
        var rc = av_frame_make_writable(scaled)
        guard rc >= 0 else { throw .ffmpeg("av_frame_make_writable", rc) }

        // Plain reads of the source frame: other rungs read it at the same time.
        let src = source.pointee
        rc = FrameScaling.scale(scaler, from: src, into: scaled.pointee)
        guard rc > 0 else { throw .ffmpeg("sws_scale", rc < 0 ? rc : st_averror_invaliddata()) }

        scaled.pointee.pts = pts
        scaled.pointee.pict_type = keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE
        scaled.pointee.key_frame = keyframe ? 1 : 0
        rc = avcodec_send_frame(context, scaled)
        guard rc >= 0 else { throw .ffmpeg("avcodec_send_frame(libx264)", rc) }
        return try receivePackets()
    }

    /// Drains the encoder at the end of the stream.
    func flush() -> [EncodedVideoFrame] {
        guard let context else { return [] }
        guard avcodec_send_frame(context, nil) >= 0 else { return [] }
        return (try? receivePackets()) ?? []
    }

    private func receivePackets() throws(TranscodeError) -> [EncodedVideoFrame] {
        guard let context, let packet else { return [] }
        var out: [EncodedVideoFrame] = []
        while true {
            let rc = avcodec_receive_packet(context, packet)
            if rc == st_averror_eagain() || rc == st_averror_eof() { break }
            guard rc >= 0 else { throw .ffmpeg("avcodec_receive_packet(libx264)", rc) }
            defer { av_packet_unref(packet) }
            let bytes = Array(UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))
            // x264 writes Annex B; parameter sets and delimiters live in the avcC instead.
            let units = NALUnits.splitAnnexB(bytes).filter { unit in
                let type = (unit.first ?? 0) & 0x1f
                return type != 7 && type != 8 && type != 9
            }
            let pts = packet.pointee.pts
            out.append(EncodedVideoFrame(
                rung: rung.name, dts: pts, pts: pts,
                isKeyframe: packet.pointee.flags & st_av_pkt_flag_key() != 0,
                data: NALUnits.lengthPrefixed(units)))
        }
        return out
    }
}
