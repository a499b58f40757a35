// AudioTranscoder: FLV audio that is not AAC (MP3, PCM, G.711, Speex, Nellymoser) decoded
// with libavcodec, resampled with libswresample and encoded to AAC-LC with FFmpeg's native
// encoder, so every rendition carries AAC. Not thread-safe: one per stream, used under its lock.
import CFFmpeg

public enum AudioTranscodeError: Error, Equatable, CustomStringConvertible {
    case unsupportedFormat(UInt8)
    case ffmpeg(String, Int32)

    public var description: String {
        switch self {
        case .unsupportedFormat(let f): return "FLV sound format \(f) cannot be decoded"
        case .ffmpeg(let call, let code): return "\(call) failed (\(code))"
        }
    }
}

public final class AudioTranscoder: @unchecked Sendable {
    /// The AAC AudioSpecificConfig of the output.
    public let audioSpecificConfig: [UInt8]
    public let outputSampleRate: Int32
    private var decoder: UnsafeMutablePointer<AVCodecContext>?
    private var encoder: UnsafeMutablePointer<AVCodecContext>?
    private var resampler: OpaquePointer?
    private var fifo: OpaquePointer?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var encodedSamples: Int64 = 0

    public init(soundFormat: UInt8, sampleRate: Int, channels: Int, sampleSize: Int) throws {
        let codecID: AVCodecID
        var pcmFormat: AVSampleFormat? = nil
        switch soundFormat {
        case 2, 14: codecID = AV_CODEC_ID_MP3
        case 0, 3:
            codecID = sampleSize == 8 ? AV_CODEC_ID_PCM_U8 : AV_CODEC_ID_PCM_S16LE
            pcmFormat = sampleSize == 8 ? AV_SAMPLE_FMT_U8 : AV_SAMPLE_FMT_S16
        case 7: codecID = AV_CODEC_ID_PCM_ALAW
        case 8: codecID = AV_CODEC_ID_PCM_MULAW
        case 11: codecID = AV_CODEC_ID_SPEEX
        case 4, 5, 6: codecID = AV_CODEC_ID_NELLYMOSER
        default: throw AudioTranscodeError.unsupportedFormat(soundFormat)
        }
        let inRate: Int32 = soundFormat == 14 ? 8000 : (soundFormat == 11 ? 16000 : (soundFormat == 7 || soundFormat == 8 ? 8000 : Int32(sampleRate)))
        let inChannels: Int32 = soundFormat == 11 ? 1 : Int32(channels)
        guard let dcodec = avcodec_find_decoder(codecID), let dec = avcodec_alloc_context3(dcodec) else {
            throw AudioTranscodeError.unsupportedFormat(soundFormat)
        }
        decoder = dec
        dec.pointee.sample_rate = inRate
        av_channel_layout_default(&dec.pointee.ch_layout, inChannels)
        if let pcmFormat { dec.pointee.sample_fmt = pcmFormat }
        var r = avcodec_open2(dec, dcodec, nil)
        guard r >= 0 else { throw AudioTranscodeError.ffmpeg("avcodec_open2(decoder)", r) }

        outputSampleRate = [44100, 48000, 32000, 24000, 22050, 16000].contains(inRate) ? inRate : 48000
        guard let ecodec = avcodec_find_encoder(AV_CODEC_ID_AAC), let enc = avcodec_alloc_context3(ecodec) else {
            throw AudioTranscodeError.ffmpeg("avcodec_find_encoder(aac)", -1)
        }
        encoder = enc
        enc.pointee.sample_rate = outputSampleRate
        enc.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
        av_channel_layout_default(&enc.pointee.ch_layout, min(inChannels, 2))
        enc.pointee.bit_rate = 128_000
        enc.pointee.time_base = AVRational(num: 1, den: outputSampleRate)
        enc.pointee.flags |= st_av_codec_flag_global_header()
        r = avcodec_open2(enc, ecodec, nil)
        guard r >= 0 else { throw AudioTranscodeError.ffmpeg("avcodec_open2(aac)", r) }
        audioSpecificConfig = Array(UnsafeBufferPointer(start: enc.pointee.extradata, count: Int(enc.pointee.extradata_size)))

        fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, enc.pointee.ch_layout.nb_channels, 4096)
        packet = av_packet_alloc()
        frame = av_frame_alloc()
    }

    deinit {
        avcodec_free_context(&decoder)
        avcodec_free_context(&encoder)
        swr_free(&resampler)
        if let fifo { av_audio_fifo_free(fifo) }
        av_packet_free(&packet)
        av_frame_free(&frame)
    }

    /// Decodes one FLV audio payload (without its one-byte header) and returns the AAC frames
    /// (1024 samples each) that are complete now. A payload that does not decode is skipped.
    public func push(_ data: [UInt8]) -> [[UInt8]] {
        guard let decoder, let packet, let frame, !data.isEmpty else { return [] }
        guard av_new_packet(packet, Int32(data.count)) >= 0 else { return [] }
        data.withUnsafeBytes { packet.pointee.data.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: data.count) }
        defer { av_packet_unref(packet) }
        guard avcodec_send_packet(decoder, packet) >= 0 else { return [] }
        var out: [[UInt8]] = []
        while avcodec_receive_frame(decoder, frame) >= 0 {
            resample(frame)
            av_frame_unref(frame)
            out += encodeAvailable()
        }
        return out
    }

    private func resample(_ input: UnsafeMutablePointer<AVFrame>) {
        guard let fifo, let encoder else { return }
        if resampler == nil {
            // Set up from the first decoded frame: its real format, layout and rate.
            let r = swr_alloc_set_opts2(&resampler, &encoder.pointee.ch_layout, AV_SAMPLE_FMT_FLTP, outputSampleRate,
                                        &input.pointee.ch_layout, AVSampleFormat(rawValue: input.pointee.format),
                                        input.pointee.sample_rate, 0, nil)
            guard r >= 0, resampler != nil, swr_init(resampler) >= 0 else {
                swr_free(&resampler)
                return
            }
        }
        guard let resampler else { return }
        let maxOut = swr_get_out_samples(resampler, input.pointee.nb_samples)
        guard maxOut > 0 else { return }
        let channels = Int(encoder.pointee.ch_layout.nb_channels)
        var planes = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: channels)
        for c in 0..<channels { planes[c] = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(maxOut) * 4) }
        defer { for p in planes { p?.deallocate() } }
        let converted = planes.withUnsafeMutableBufferPointer { out -> Int32 in
            input.pointee.extended_data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { inData in
                swr_convert(resampler, out.baseAddress, maxOut, inData, input.pointee.nb_samples)
            }
        }
        guard converted > 0 else { return }
        planes.withUnsafeMutableBufferPointer { out in
            out.baseAddress!.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: channels) {
                _ = av_audio_fifo_write(fifo, $0, converted)
            }
        }
    }

    private func encodeAvailable() -> [[UInt8]] {
        guard let encoder, let fifo, let packet else { return [] }
        var out: [[UInt8]] = []
        let frameSize = encoder.pointee.frame_size > 0 ? encoder.pointee.frame_size : 1024
        while av_audio_fifo_size(fifo) >= frameSize {
            guard let f = av_frame_alloc() else { break }
            var fp: UnsafeMutablePointer<AVFrame>? = f
            defer { av_frame_free(&fp) }
            f.pointee.nb_samples = frameSize
            f.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
            f.pointee.sample_rate = outputSampleRate
            av_channel_layout_copy(&f.pointee.ch_layout, &encoder.pointee.ch_layout)
            guard av_frame_get_buffer(f, 0) >= 0 else { break }
            f.pointee.extended_data.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 8) {
                _ = av_audio_fifo_read(fifo, $0, frameSize)
            }
            f.pointee.pts = encodedSamples
            encodedSamples += Int64(frameSize)
            guard avcodec_send_frame(encoder, f) >= 0 else { break }
            while avcodec_receive_packet(encoder, packet) >= 0 {
                out.append(Array(UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size))))
                av_packet_unref(packet)
            }
        }
        return out
    }
}
