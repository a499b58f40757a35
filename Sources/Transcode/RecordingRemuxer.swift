// RecordingRemuxer: a recording's CMAF files (an init segment, then its segments) remuxed into
// one MP4 with libavformat — every packet copied as it is (no decode, no encode), the `moov`
// atom first (`+faststart`), so the file plays and seeks before it is all downloaded.
import CFFmpeg
import Foundation
import Origin

package enum RecordingRemuxer {
    /// Remuxes `runs` into one MP4 at `output` (written in place: the caller renames it).
    ///
    /// Each run is a list of file paths read as one fragmented MP4 — an init segment, then the
    /// segments that use it — so a run ends where the init changes or time starts again (a
    /// discontinuity). Every run's audio and video go to the first run's streams, the whole run
    /// shifted by one offset so that it starts where the run before ended — time going back (a new
    /// session) or jumping ahead (a segment left out, a break in the broadcast) alike, as a player
    /// of the playlist's discontinuity goes on: the tracks stay in sync. The first run starts at 0.
    package static func remux(runs: [[String]], to output: String) throws(TranscodeError) {
        var out: UnsafeMutablePointer<AVFormatContext>?
        var rc = avformat_alloc_output_context2(&out, nil, "mp4", output)
        guard rc >= 0, let out else { throw .ffmpeg("avformat_alloc_output_context2", rc) }
        defer {
            if out.pointee.pb != nil { avio_closep(&out.pointee.pb) }
            avformat_free_context(out)
        }
        var packet = av_packet_alloc()
        defer { av_packet_free(&packet) }
        guard let packet else { throw .ffmpeg("av_packet_alloc", st_averror_enomem()) }
        let micro = AVRational(num: 1, den: 1_000_000)
        var outputByType: [Int32: Int32] = [:]
        var started = false
        var endMicros: Int64?
        for run in runs where !run.isEmpty {
            // The files read one after another as one stream of bytes, one file open at a time
            // (FFmpeg's concat protocol opens them all at once: a long recording has thousands).
            let chain = FileChain(run)
            defer { chain.close() }
            let bufferSize = 1 << 16
            guard let buffer = av_malloc(bufferSize) else { throw .ffmpeg("av_malloc", st_averror_enomem()) }
            var io = avio_alloc_context(buffer.assumingMemoryBound(to: UInt8.self), Int32(bufferSize), 0,
                                        Unmanaged.passUnretained(chain).toOpaque(), { opaque, bytes, size in
                guard let opaque, let bytes else { return st_averror_eof() }
                return Unmanaged<FileChain>.fromOpaque(opaque).takeUnretainedValue().read(into: bytes, size: size)
            }, nil, nil)
            guard io != nil else {
                av_free(buffer)
                throw .ffmpeg("avio_alloc_context", st_averror_enomem())
            }
            defer {
                // The context's buffer may have been replaced by FFmpeg: free the one it holds.
                if io != nil { av_freep(&io!.pointee.buffer) }
                avio_context_free(&io)
            }
            var input = avformat_alloc_context()
            guard input != nil else { throw .ffmpeg("avformat_alloc_context", st_averror_enomem()) }
            input!.pointee.pb = io
            input!.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
            rc = avformat_open_input(&input, nil, av_find_input_format("mp4"), nil)
            guard rc >= 0, let opened = input else { throw .ffmpeg("avformat_open_input", rc) }
            defer { avformat_close_input(&input) }
            rc = avformat_find_stream_info(opened, nil)
            guard rc >= 0 else { throw .ffmpeg("avformat_find_stream_info", rc) }
            var map = [Int32](repeating: -1, count: Int(opened.pointee.nb_streams))
            for i in 0..<Int(opened.pointee.nb_streams) {
                guard let s = opened.pointee.streams[i] else { continue }
                let type = s.pointee.codecpar.pointee.codec_type
                guard type == AVMEDIA_TYPE_VIDEO || type == AVMEDIA_TYPE_AUDIO else { continue }
                if !started, outputByType[type.rawValue] == nil {
                    guard let o = avformat_new_stream(out, nil) else { throw .ffmpeg("avformat_new_stream", st_averror_enomem()) }
                    rc = avcodec_parameters_copy(o.pointee.codecpar, s.pointee.codecpar)
                    guard rc >= 0 else { throw .ffmpeg("avcodec_parameters_copy", rc) }
                    o.pointee.codecpar.pointee.codec_tag = 0
                    o.pointee.time_base = s.pointee.time_base
                    outputByType[type.rawValue] = o.pointee.index
                }
                map[i] = outputByType[type.rawValue] ?? -1
            }
            if !started {
                guard !outputByType.isEmpty else { throw .ffmpeg("avformat_find_stream_info", st_averror_invaliddata()) }
                rc = avio_open(&out.pointee.pb, output, AVIO_FLAG_WRITE)
                guard rc >= 0 else { throw .ffmpeg("avio_open", rc) }
                var options: OpaquePointer?
                av_dict_set(&options, "movflags", "+faststart", 0)
                rc = avformat_write_header(out, &options)
                av_dict_free(&options)
                guard rc >= 0 else { throw .ffmpeg("avformat_write_header", rc) }
                started = true
            }
            var offsetMicros: Int64?
            while true {
                rc = av_read_frame(opened, packet)
                if rc == st_averror_eof() { break }
                guard rc >= 0 else { throw .ffmpeg("av_read_frame", rc) }
                defer { av_packet_unref(packet) }
                let index = Int(packet.pointee.stream_index)
                guard index < map.count, map[index] >= 0, let s = opened.pointee.streams[index],
                      let o = out.pointee.streams[Int(map[index])] else { continue }
                let (inBase, outBase) = (s.pointee.time_base, o.pointee.time_base)
                let stamp = packet.pointee.dts != st_av_nopts_value() ? packet.pointee.dts : packet.pointee.pts
                if offsetMicros == nil, stamp != st_av_nopts_value() {
                    let first = av_rescale_q(stamp, inBase, micro)
                    // From its earliest stream's start, so every stream keeps its place against the others;
                    // the first run starts the file at 0 (a trimmed recording starts mid-broadcast).
                    let start = opened.pointee.start_time != st_av_nopts_value() ? opened.pointee.start_time : first
                    // After a run: from the earlier of that start and the first decode time (a decode time before
                    // its presentation, B-frames), so that no decode time goes back past the previous run's end.
                    offsetMicros = endMicros.map { $0 - min(start, first) } ?? -start
                }
                av_packet_rescale_ts(packet, inBase, outBase)
                let shift = av_rescale_q(offsetMicros ?? 0, micro, outBase)
                if packet.pointee.pts != st_av_nopts_value() { packet.pointee.pts += shift }
                if packet.pointee.dts != st_av_nopts_value() { packet.pointee.dts += shift }
                let last = packet.pointee.dts != st_av_nopts_value() ? packet.pointee.dts : packet.pointee.pts
                if last != st_av_nopts_value() {
                    let end = av_rescale_q(last + max(packet.pointee.duration, 0), outBase, micro)
                    endMicros = max(endMicros ?? end, end)
                }
                packet.pointee.stream_index = map[index]
                packet.pointee.pos = -1
                rc = av_interleaved_write_frame(out, packet)
                guard rc >= 0 else { throw .ffmpeg("av_interleaved_write_frame", rc) }
            }
        }
        guard started else { throw .ffmpeg("avformat_open_input", st_averror_invaliddata()) }
        rc = av_write_trailer(out)
        guard rc >= 0 else { throw .ffmpeg("av_write_trailer", rc) }
    }
}

/// Files read one after another as one stream of bytes, for a custom `AVIOContext`.
private final class FileChain {
    private let paths: [String]
    private var index = 0
    private var file: UnsafeMutablePointer<FILE>?

    init(_ paths: [String]) { self.paths = paths }

    /// Up to `size` bytes into `bytes`: the count, EOF after the last file, or an error.
    func read(into bytes: UnsafeMutablePointer<UInt8>, size: Int32) -> Int32 {
        while index < paths.count {
            if file == nil {
                file = fopen(paths[index], "rb")
                if file == nil { return -errno }
            }
            let n = fread(bytes, 1, Int(size), file)
            if n > 0 { return Int32(n) }
            if ferror(file) != 0 { return -EIO }
            close()
            index += 1
        }
        return st_averror_eof()
    }

    func close() {
        if let file { fclose(file) }
        file = nil
    }
}
