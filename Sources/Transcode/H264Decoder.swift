import CFFmpeg
import Origin

/// libavcodec's H.264 decoder fed with length-prefixed access units (as FLV carries them),
/// configured from the avcC record. Used on the transcoder thread only.
final class H264Decoder {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?

    init(avcC: [UInt8]) throws(TranscodeError) {
        guard let codec = avcodec_find_decoder(AV_CODEC_ID_H264) else { throw .codecUnavailable("h264 decoder") }
        context = avcodec_alloc_context3(codec)
        packet = av_packet_alloc()
        frame = av_frame_alloc()
        guard let context, packet != nil, frame != nil else { throw .ffmpeg("avcodec_alloc_context3", st_averror_enomem()) }

        // The decoder reads extradata with padding past its end.
        let padding = Int(st_av_input_buffer_padding_size())
        guard let extradata = av_mallocz(avcC.count + padding)?.assumingMemoryBound(to: UInt8.self) else {
            throw .ffmpeg("av_mallocz", st_averror_enomem())
        }
        avcC.withUnsafeBufferPointer { extradata.update(from: $0.baseAddress!, count: avcC.count) }
        context.pointee.extradata = extradata
        context.pointee.extradata_size = Int32(avcC.count)
        context.pointee.time_base = AVRational(num: 1, den: 1000)
        context.pointee.pkt_timebase = AVRational(num: 1, den: 1000)
        // One thread: frame threading would delay every frame by a frame per thread.
        context.pointee.thread_count = 1

        let rc = avcodec_open2(context, codec, nil)
        guard rc >= 0 else { throw .ffmpeg("avcodec_open2(h264)", rc) }
    }

    deinit {
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&context)  // also frees extradata
    }

    /// The frame rate signalled in the SPS timing info, once a frame has been decoded.
    var frameRate: AVRational? {
        guard let fr = context?.pointee.framerate, fr.num > 0, fr.den > 0 else { return nil }
        let fps = Double(fr.num) / Double(fr.den)
        return (1...300).contains(fps) ? fr : nil
    }

    /// What went wrong while decoding one access unit.
    struct Damage {
        /// The decoder refused the access unit or failed.
        var failed = false
        /// Presentation times of frames that came out damaged (and were not handed on).
        var corruptPTS: [Int64] = []
        var isEmpty: Bool { !failed && corruptPTS.isEmpty }
    }

    /// Decodes one access unit and hands every intact frame that comes out to `body` (it is
    /// valid only during the call); reports failures and damaged frames.
    func decode(_ data: [UInt8], dts: Int64, pts: Int64, body: (UnsafeMutablePointer<AVFrame>) -> Void) -> Damage {
        var damage = Damage()
        guard let context, let packet, av_new_packet(packet, Int32(data.count)) >= 0 else {
            damage.failed = true
            return damage
        }
        data.withUnsafeBufferPointer { packet.pointee.data.update(from: $0.baseAddress!, count: data.count) }
        packet.pointee.dts = dts
        packet.pointee.pts = pts
        let rc = avcodec_send_packet(context, packet)
        av_packet_unref(packet)
        if rc < 0 && rc != st_averror_eagain() { damage.failed = true }
        receive(into: &damage, body: body)
        return damage
    }

    /// Drains the frames the decoder still holds (reordering delay).
    func flush(body: (UnsafeMutablePointer<AVFrame>) -> Void) {
        guard let context else { return }
        avcodec_send_packet(context, nil)
        var ignored = Damage()
        receive(into: &ignored, body: body)
    }

    private func receive(into damage: inout Damage, body: (UnsafeMutablePointer<AVFrame>) -> Void) {
        guard let context, let frame else { return }
        while true {
            let rc = avcodec_receive_frame(context, frame)
            if rc == st_averror_eagain() || rc == st_averror_eof() { break }
            if rc < 0 { damage.failed = true; break }
            defer { av_frame_unref(frame) }
            if frame.pointee.decode_error_flags != 0 || frame.pointee.flags & st_av_frame_flag_corrupt() != 0 {
                damage.corruptPTS.append(Self.pts(of: frame))
                continue
            }
            body(frame)
        }
    }

    /// The presentation time of a decoded frame (ms).
    static func pts(of frame: UnsafeMutablePointer<AVFrame>) -> Int64 {
        let pts = frame.pointee.pts
        return pts == st_av_nopts_value() ? frame.pointee.best_effort_timestamp : pts
    }
}
