// Thumbnailer: a stream's picture as a small JPEG of our own making — from a keyframe of the
// live source (H.264, decoded with libavcodec) or from an uploaded image (JPEG, PNG or WebP,
// checked, decoded and re-encoded: the bytes sent are never kept or served). Both are scaled
// with libswscale to fit 640x360, keeping the aspect ratio, and encoded with libavcodec's MJPEG
// encoder (yuvj420p). Synchronous and CPU-bound: the caller runs it off any event loop.
import CFFmpeg
import Origin

/// Why no thumbnail was made, in words the person who sent the picture can act on.
public enum ThumbnailError: Error, Equatable, CustomStringConvertible {
    /// The upload has no bytes.
    case empty
    /// The bytes are not a JPEG, PNG or WebP image (or their header is cut short).
    case notAnImage
    /// The header declares a picture larger than the limits (checked before decoding).
    case tooLarge(width: Int, height: Int)
    /// The header declares no usable size (zero wide or high).
    case invalidSize(width: Int, height: Int)
    /// The decoder could not make a whole picture of it (truncated, corrupt).
    case undecodable(String)
    /// The stream's keyframe or decoder configuration is not usable.
    case invalidKeyframe(String)
    /// This FFmpeg build lacks a codec.
    case codecUnavailable(String)
    /// An FFmpeg call failed.
    case ffmpeg(call: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .empty: return "the body is empty: send the image's bytes"
        case .notAnImage: return "this is not a JPEG, PNG or WebP image"
        case .tooLarge(let w, let h):
            return "the image is \(w)x\(h): at most \(Thumbnailer.maxSourceSide)x\(Thumbnailer.maxSourceSide) "
                + "and \(Thumbnailer.maxSourcePixels / 1_000_000) megapixels are taken; scale it down first"
        case .invalidSize(let w, let h): return "the image declares a size of \(w)x\(h), which is not a picture"
        case .undecodable(let why): return "the image could not be decoded (\(why)): it may be truncated or damaged; export it again"
        case .invalidKeyframe(let why): return "the stream's keyframe could not be decoded: \(why)"
        case .codecUnavailable(let name): return "codec \(name) is not available in this FFmpeg build"
        case .ffmpeg(let call, let code, let message): return "\(call) failed: \(message) (\(code))"
        }
    }

    static func ffmpeg(_ call: String, _ code: Int32) -> ThumbnailError {
        .ffmpeg(call: call, code: code, message: ffmpegErrorString(code))
    }
}

public enum Thumbnailer {
    /// The box every thumbnail fits in.
    public static let maxWidth = 640
    public static let maxHeight = 360
    /// The largest uploaded picture decoded: each side, and in all (a decoded picture takes
    /// up to 4 bytes a pixel; 40 megapixels is 160 MB at most, one at a time).
    public static let maxSourceSide = 8192
    public static let maxSourcePixels = 40_000_000
    /// MJPEG quantizer scale (2 best .. 31 worst): 4 looks clean at about 30-50 KB for 640x360.
    static let quality: Int32 = 4

    /// A JPEG of a source keyframe: `avcC` is the stream's decoder configuration record (its
    /// SPS and PPS), `accessUnit` the keyframe's length-prefixed NAL units as FLV carries them.
    public static func fromKeyframe(avcC: [UInt8], accessUnit: [UInt8]) throws(ThumbnailError) -> [UInt8] {
        let lengthSize: Int
        do { lengthSize = try AVCCRecord(parsing: avcC).nalUnitLengthSize } catch { throw .invalidKeyframe(error.description) }
        guard !accessUnit.isEmpty, NALUnits.splitLengthPrefixed(accessUnit, lengthSize: lengthSize) != nil else {
            throw .invalidKeyframe("the access unit's NAL unit lengths do not add up")
        }
        let decoder: H264Decoder
        do { decoder = try H264Decoder(avcC: avcC) } catch { throw .invalidKeyframe(error.description) }
        var result: Result<[UInt8], ThumbnailError>?
        let take = { (frame: UnsafeMutablePointer<AVFrame>) in
            guard result == nil else { return }
            do throws(ThumbnailError) { result = .success(try encodeJPEG(frame)) } catch { result = .failure(error) }
        }
        let damage = decoder.decode(accessUnit, dts: 0, pts: 0, body: take)
        if result == nil { decoder.flush(body: take) }
        guard let result else {
            throw .invalidKeyframe(damage.failed ? "the decoder refused it" : "it decoded to no whole picture")
        }
        return try result.get()
    }

    /// A JPEG of an uploaded image. The format is known by its magic bytes and the size read
    /// from its header before anything is decoded; a picture that does not decode whole is refused.
    public static func fromImage(_ bytes: [UInt8]) throws(ThumbnailError) -> [UInt8] {
        guard !bytes.isEmpty else { throw .empty }
        guard let header = ImageHeader(bytes) else { throw .notAnImage }
        try check(width: header.width, height: header.height)

        let codecID: AVCodecID
        switch header.format {
        case .jpeg: codecID = AV_CODEC_ID_MJPEG
        case .png: codecID = AV_CODEC_ID_PNG
        case .webp: codecID = AV_CODEC_ID_WEBP
        }
        guard let codec = avcodec_find_decoder(codecID) else { throw .codecUnavailable("\(header.format.rawValue) decoder") }
        var context = avcodec_alloc_context3(codec)
        var packet = av_packet_alloc()
        var frame = av_frame_alloc()
        defer {
            av_frame_free(&frame)
            av_packet_free(&packet)
            avcodec_free_context(&context)
        }
        guard let context, let packet, let frame else { throw .ffmpeg("avcodec_alloc_context3", st_averror_enomem()) }
        // The decoder checks the size it finds too (a header and the picture could disagree).
        context.pointee.max_pixels = Int64(maxSourcePixels)
        context.pointee.thread_count = 1
        // Damage is an error, not a grey half-picture.
        context.pointee.err_recognition |= st_av_ef_explode() | st_av_ef_crccheck()
        var rc = avcodec_open2(context, codec, nil)
        guard rc >= 0 else { throw .ffmpeg("avcodec_open2(\(header.format.rawValue))", rc) }

        rc = av_new_packet(packet, Int32(bytes.count))
        guard rc >= 0 else { throw .ffmpeg("av_new_packet", rc) }
        bytes.withUnsafeBufferPointer { packet.pointee.data.update(from: $0.baseAddress!, count: bytes.count) }
        rc = avcodec_send_packet(context, packet)
        av_packet_unref(packet)
        guard rc >= 0 || rc == st_averror_eagain() else { throw .undecodable(ffmpegErrorString(rc)) }
        avcodec_send_packet(context, nil)
        var lastError: Int32 = st_averror_invaliddata()
        while true {
            rc = avcodec_receive_frame(context, frame)
            if rc == st_averror_eagain() || rc == st_averror_eof() { break }
            if rc < 0 { lastError = rc; break }
            defer { av_frame_unref(frame) }
            if frame.pointee.decode_error_flags != 0 || frame.pointee.flags & st_av_frame_flag_corrupt() != 0 {
                throw .undecodable("the picture is damaged")
            }
            try check(width: Int(frame.pointee.width), height: Int(frame.pointee.height))
            return try encodeJPEG(frame)
        }
        throw .undecodable(ffmpegErrorString(lastError))
    }

    static func check(width: Int, height: Int) throws(ThumbnailError) {
        guard width > 0, height > 0 else { throw .invalidSize(width: width, height: height) }
        guard width <= maxSourceSide, height <= maxSourceSide, width * height <= maxSourcePixels else {
            throw .tooLarge(width: width, height: height)
        }
    }

    /// The thumbnail's size for a picture shown `width`x`height`: within 640x360, the same
    /// aspect ratio, never larger than the picture, even sides (4:2:0).
    public static func outputSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let scale = min(1, Double(maxWidth) / Double(width), Double(maxHeight) / Double(height))
        func side(_ v: Int) -> Int { max(2, Int((Double(v) * scale).rounded()) / 2 * 2) }
        return (side(width), side(height))
    }

    /// Scales a decoded picture into the box and encodes it as a baseline JPEG.
    static func encodeJPEG(_ source: UnsafeMutablePointer<AVFrame>) throws(ThumbnailError) -> [UInt8] {
        let src = source.pointee
        var shownWidth = Int(src.width)
        let sar = src.sample_aspect_ratio
        if sar.num > 0, sar.den > 0, sar.num != sar.den {
            shownWidth = max(1, Int((Double(shownWidth) * Double(sar.num) / Double(sar.den)).rounded()))
        }
        let (width, height) = outputSize(width: shownWidth, height: Int(src.height))

        guard let codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG) else { throw .codecUnavailable("mjpeg encoder") }
        var context = avcodec_alloc_context3(codec)
        var scaled = av_frame_alloc()
        var packet = av_packet_alloc()
        var scaler: OpaquePointer? = nil
        defer {
            sws_freeContext(scaler)
            av_packet_free(&packet)
            av_frame_free(&scaled)
            avcodec_free_context(&context)
        }
        guard let context, let scaled, let packet else { throw .ffmpeg("avcodec_alloc_context3", st_averror_enomem()) }
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        context.pointee.color_range = AVCOL_RANGE_JPEG
        context.pointee.time_base = AVRational(num: 1, den: 25)
        context.pointee.sample_aspect_ratio = AVRational(num: 1, den: 1)
        context.pointee.flags |= st_av_codec_flag_qscale()
        context.pointee.global_quality = quality * st_ff_qp2lambda()
        var rc = avcodec_open2(context, codec, nil)
        guard rc >= 0 else { throw .ffmpeg("avcodec_open2(mjpeg)", rc) }

        scaled.pointee.width = Int32(width)
        scaled.pointee.height = Int32(height)
        scaled.pointee.format = AV_PIX_FMT_YUVJ420P.rawValue
        rc = av_frame_get_buffer(scaled, 0)
        guard rc >= 0 else { throw .ffmpeg("av_frame_get_buffer", rc) }

        scaler = sws_getContext(src.width, src.height, AVPixelFormat(rawValue: src.format), Int32(width), Int32(height),
                                AV_PIX_FMT_YUVJ420P, SWS_AREA, nil, nil, nil)
        guard let scaler else { throw .undecodable("its pixel format cannot be converted") }
        rc = FrameScaling.scale(scaler, from: src, into: scaled.pointee)
        guard rc > 0 else { throw .ffmpeg("sws_scale", rc < 0 ? rc : st_averror_invaliddata()) }

        scaled.pointee.pts = 0
        scaled.pointee.quality = context.pointee.global_quality
        rc = avcodec_send_frame(context, scaled)
        guard rc >= 0 else { throw .ffmpeg("avcodec_send_frame(mjpeg)", rc) }
        avcodec_send_frame(context, nil)
        rc = avcodec_receive_packet(context, packet)
        guard rc >= 0 else { throw .ffmpeg("avcodec_receive_packet(mjpeg)", rc) }
        defer { av_packet_unref(packet) }
        return Array(UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))
    }
}
