// CMAF packaging: writes the init segment and moof+mdat fragments of a CMAF presentation
// (ISO/IEC 14496-12 boxes, ISO/IEC 23000-19 constraints). Pure: bytes in, bytes out, no I/O,
// no clock. Each fragment becomes one LL-HLS part; a segment is its parts concatenated.
// It does not decide where fragments start — the caller cuts runs at keyframes.

/// Builds CMAF init segments and fragments.
public enum CMAFWriter {
    /// `trun` sample flags for a sync sample: sample_depends_on = 2 (depends on no other), not non-sync.
    public static let syncSampleFlags: UInt32 = 0x0200_0000
    /// `trun` sample flags for any other sample: sample_depends_on = 1, sample_is_non_sync_sample.
    public static let nonSyncSampleFlags: UInt32 = 0x0101_0000

    /// The movie timescale of `mvhd`; durations there are zero, so it only needs to be valid.
    static let movieTimescale: UInt32 = 1000

    /// The init segment: `ftyp` + `moov` describing `tracks`, with empty sample tables and `mvex`.
    public static func initSegment(tracks: [CMAFTrack]) -> [UInt8] {
        var w = BoxWriter(reservingCapacity: 1024)
        w.box("ftyp") { w in
            w.fourCC("iso6")
            w.u32(0)
            for brand in ["iso6", "cmfc", "mp41", "dash"] { w.fourCC(brand) }
            if tracks.contains(where: { if case .avc = $0.format { true } else { false } }) { w.fourCC("avc1") }
        }
        w.box("moov") { w in
            w.fullBox("mvhd", version: 0, flags: 0) { w in
                w.u32(0); w.u32(0)              // creation, modification time
                w.u32(movieTimescale)
                w.u32(0)                        // duration: unknown, live
                w.u32(0x0001_0000)              // rate 1.0
                w.u16(0x0100)                   // volume 1.0
                w.zeros(10)
                w.unityMatrix()
                w.zeros(24)                     // pre_defined
                w.u32((tracks.map(\.id).max() ?? 0) + 1)
            }
            for track in tracks { writeTrak(&w, track) }
            w.box("mvex") { w in
                for track in tracks {
                    w.fullBox("trex", version: 0, flags: 0) { w in
                        w.u32(track.id)
                        w.u32(1)                // default_sample_description_index
                        w.u32(0); w.u32(0); w.u32(0)
                    }
                }
            }
        }
        return w.bytes
    }

    /// One fragment: `moof` with a `traf` per run, then one `mdat` holding the runs' data in order.
    ///
    /// `sequenceNumber` should start at 1 and grow by one per fragment of the presentation.
    /// Each run's `trun` data offset points into the `mdat` relative to the `moof` start
    /// (`default-base-is-moof`), so a fragment decodes on its own after the init segment.
    public static func fragment(sequenceNumber: UInt32, runs: [CMAFTrackRun]) -> [UInt8] {
        let payloadSize = runs.reduce(0) { total, run in total + run.samples.reduce(0) { $0 + $1.data.count } }
        let mdatHeaderSize = payloadSize + 8 > Int(UInt32.max) ? 16 : 8
        var w = BoxWriter(reservingCapacity: payloadSize + 256 + runs.reduce(0) { $0 + 16 * $1.samples.count })
        var dataOffsetFields: [Int] = []
        w.box("moof") { w in
            w.fullBox("mfhd", version: 0, flags: 0) { w in w.u32(sequenceNumber) }
            for run in runs {
                w.box("traf") { w in
                    w.fullBox("tfhd", version: 0, flags: 0x02_0000) { w in w.u32(run.trackID) }  // default-base-is-moof
                    w.fullBox("tfdt", version: 1, flags: 0) { w in w.u64(run.baseDecodeTime) }
                    // data-offset, sample duration, size, flags and composition time offset present.
                    w.fullBox("trun", version: 1, flags: 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800) { w in
                        w.u32(UInt32(run.samples.count))
                        dataOffsetFields.append(w.count)
                        w.i32(0)                // patched below, once the moof size is known
                        for sample in run.samples {
                            w.u32(sample.duration)
                            w.u32(UInt32(sample.data.count))
                            w.u32(sample.isSync ? syncSampleFlags : nonSyncSampleFlags)
                            w.i32(sample.compositionOffset)
                        }
                    }
                }
            }
        }
        var dataOffset = w.count + mdatHeaderSize
        for (field, run) in zip(dataOffsetFields, runs) {
            w.patch32(at: field, UInt32(truncatingIfNeeded: dataOffset))
            dataOffset += run.samples.reduce(0) { $0 + $1.data.count }
        }
        if mdatHeaderSize == 8 {
            w.u32(UInt32(payloadSize + 8))
            w.fourCC("mdat")
        } else {
            w.u32(1)
            w.fourCC("mdat")
            w.u64(UInt64(payloadSize + 16))
        }
        for run in runs {
            for sample in run.samples { w.append(sample.data) }
        }
        return w.bytes
    }

    // MARK: - moov pieces

    private static func writeTrak(_ w: inout BoxWriter, _ track: CMAFTrack) {
        let isVideo: Bool
        let width: Int
        let height: Int
        switch track.format {
        case .avc(let config): (isVideo, width, height) = (true, config.width, config.height)
        case .aac: (isVideo, width, height) = (false, 0, 0)
        }
        w.box("trak") { w in
            w.fullBox("tkhd", version: 0, flags: 0x000003) { w in   // enabled, in movie
                w.u32(0); w.u32(0)
                w.u32(track.id)
                w.u32(0)
                w.u32(0)                        // duration
                w.zeros(8)
                w.u16(0)                        // layer
                w.u16(0)                        // alternate_group
                w.u16(isVideo ? 0 : 0x0100)     // volume
                w.u16(0)
                w.unityMatrix()
                w.u32(UInt32(clamping: width) << 16)
                w.u32(UInt32(clamping: height) << 16)
            }
            w.box("mdia") { w in
                w.fullBox("mdhd", version: 0, flags: 0) { w in
                    w.u32(0); w.u32(0)
                    w.u32(track.timescale)
                    w.u32(0)
                    w.u16(0x55C4)               // language "und", ISO 639-2/T packed
                    w.u16(0)
                }
                w.fullBox("hdlr", version: 0, flags: 0) { w in
                    w.u32(0)
                    w.fourCC(isVideo ? "vide" : "soun")
                    w.zeros(12)
                    w.append(Array((isVideo ? "VideoHandler" : "SoundHandler").utf8))
                    w.u8(0)
                }
                w.box("minf") { w in
                    if isVideo {
                        w.fullBox("vmhd", version: 0, flags: 1) { w in w.zeros(8) }
                    } else {
                        w.fullBox("smhd", version: 0, flags: 0) { w in w.zeros(4) }
                    }
                    w.box("dinf") { w in
                        w.fullBox("dref", version: 0, flags: 0) { w in
                            w.u32(1)
                            w.fullBox("url ", version: 0, flags: 1) { _ in }  // media in this file
                        }
                    }
                    w.box("stbl") { w in
                        w.fullBox("stsd", version: 0, flags: 0) { w in
                            w.u32(1)
                            switch track.format {
                            case .avc(let config): writeAVC1(&w, config)
                            case .aac(let config): writeMP4A(&w, config, trackID: track.id)
                            }
                        }
                        w.fullBox("stts", version: 0, flags: 0) { w in w.u32(0) }
                        w.fullBox("stsc", version: 0, flags: 0) { w in w.u32(0) }
                        w.fullBox("stsz", version: 0, flags: 0) { w in w.u32(0); w.u32(0) }
                        w.fullBox("stco", version: 0, flags: 0) { w in w.u32(0) }
                    }
                }
            }
        }
    }

    private static func writeAVC1(_ w: inout BoxWriter, _ config: AVCDecoderConfiguration) {
        w.box("avc1") { w in
            w.zeros(6)
            w.u16(1)                            // data_reference_index
            w.zeros(16)                         // pre_defined, reserved
            w.u16(UInt16(clamping: config.width))
            w.u16(UInt16(clamping: config.height))
            w.u32(0x0048_0000); w.u32(0x0048_0000)  // 72 dpi
            w.u32(0)
            w.u16(1)                            // frame_count
            w.zeros(32)                         // compressorname
            w.u16(0x0018)                       // depth
            w.u16(0xFFFF)                       // pre_defined = -1
            w.box("avcC") { w in w.append(config.record) }
        }
    }

    private static func writeMP4A(_ w: inout BoxWriter, _ config: AudioSpecificConfig, trackID: UInt32) {
        w.box("mp4a") { w in
            w.zeros(6)
            w.u16(1)                            // data_reference_index
            w.zeros(8)
            w.u16(UInt16(clamping: config.channelCount))
            w.u16(16)                           // samplesize
            w.zeros(4)
            // 16.16 fixed point; rates above 65535 Hz do not fit and are given by the ASC alone.
            w.u32(config.sampleRate <= 0xFFFF ? UInt32(config.sampleRate) << 16 : 0)
            w.fullBox("esds", version: 0, flags: 0) { w in
                let decoderSpecificInfo = descriptor(tag: 0x05, config.bytes)
                var decoderConfig: [UInt8] = [0x40, 0x15]     // MPEG-4 Audio; AudioStream, upstream 0, reserved 1
                decoderConfig += [0, 0, 0]                    // bufferSizeDB
                decoderConfig += [0, 0, 0, 0, 0, 0, 0, 0]     // maxBitrate, avgBitrate: unknown
                decoderConfig += decoderSpecificInfo
                var es: [UInt8] = [UInt8(truncatingIfNeeded: trackID >> 8), UInt8(truncatingIfNeeded: trackID), 0]
                es += descriptor(tag: 0x04, decoderConfig)
                es += descriptor(tag: 0x06, [0x02])           // SLConfigDescriptor, predefined MP4
                w.append(descriptor(tag: 0x03, es))
            }
        }
    }

    /// An MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3): tag, expandable size, body.
    static func descriptor(tag: UInt8, _ body: [UInt8]) -> [UInt8] {
        var sizeBytes: [UInt8] = [UInt8(body.count & 0x7F)]
        var rest = body.count >> 7
        while rest > 0 {
            sizeBytes.insert(UInt8(rest & 0x7F) | 0x80, at: 0)
            rest >>= 7
        }
        return [tag] + sizeBytes + body
    }
}
