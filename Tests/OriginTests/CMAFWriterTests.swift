// Structural tests of CMAFWriter output: the box tree, field values and trun data offsets,
// checked byte by byte with a small box walker (no ffmpeg needed).

import XCTest
@testable import Origin

final class CMAFWriterTests: XCTestCase {
    let video = CMAFTrack.video(id: 1, try! AVCDecoderConfiguration(record: H264ConfigurationTests.baselineRecord))
    let audio = CMAFTrack.audio(id: 2, try! AudioSpecificConfig(bytes: [0x11, 0x90]))

    func fourCCs(_ bytes: [UInt8], _ range: Range<Int>) -> [String] {
        stride(from: range.lowerBound, to: range.upperBound, by: 4).map { String(decoding: bytes[$0..<$0 + 4], as: UTF8.self) }
    }

    func testInitSegmentBoxTree() throws {
        let bytes = CMAFWriter.initSegment(tracks: [video, audio])
        XCTAssertEqual(BoxParser.boxes(bytes).map(\.type), ["ftyp", "moov"])
        XCTAssertEqual(BoxParser.boxes(bytes).last?.end, bytes.count)
        let ftyp = try XCTUnwrap(BoxParser.find(bytes, ["ftyp"]).first)
        XCTAssertEqual(fourCCs(bytes, ftyp.bodyStart..<ftyp.bodyStart + 4), ["iso6"])
        let brands = fourCCs(bytes, ftyp.bodyStart + 8..<ftyp.end)
        for brand in ["iso6", "cmfc", "mp41", "dash"] { XCTAssertTrue(brands.contains(brand), brand) }

        let moov = try XCTUnwrap(BoxParser.find(bytes, ["moov"]).first)
        XCTAssertEqual(BoxParser.boxes(bytes, in: moov.bodyStart..<moov.end).map(\.type), ["mvhd", "trak", "trak", "mvex"])
        let mvhd = try XCTUnwrap(BoxParser.find(bytes, ["moov", "mvhd"]).first)
        XCTAssertEqual(mvhd.size, 108)
        XCTAssertEqual(BoxParser.be32(bytes, mvhd.end - 4), 3, "next_track_ID")

        let traks = BoxParser.find(bytes, ["moov", "trak"])
        XCTAssertEqual(traks.count, 2)
        let tkhds = BoxParser.find(bytes, ["moov", "trak", "tkhd"])
        XCTAssertEqual(tkhds.map { $0.size }, [92, 92])
        XCTAssertEqual(tkhds.map { BoxParser.be32(bytes, $0.bodyStart + 12) }, [1, 2], "track IDs")
        XCTAssertEqual(BoxParser.be32(bytes, tkhds[0].end - 8), 320 << 16)
        XCTAssertEqual(BoxParser.be32(bytes, tkhds[0].end - 4), 240 << 16)
        XCTAssertEqual(BoxParser.be32(bytes, tkhds[1].end - 8), 0)

        let mdhds = BoxParser.find(bytes, ["moov", "trak", "mdia", "mdhd"])
        XCTAssertEqual(mdhds.map { BoxParser.be32(bytes, $0.bodyStart + 12) }, [90_000, 48_000], "timescales")
        let hdlrs = BoxParser.find(bytes, ["moov", "trak", "mdia", "hdlr"])
        XCTAssertEqual(hdlrs.flatMap { fourCCs(bytes, $0.bodyStart + 8..<$0.bodyStart + 12) }, ["vide", "soun"])
        XCTAssertEqual(BoxParser.find(bytes, ["moov", "trak", "mdia", "minf", "vmhd"]).count, 1)
        XCTAssertEqual(BoxParser.find(bytes, ["moov", "trak", "mdia", "minf", "smhd"]).count, 1)
        XCTAssertEqual(BoxParser.find(bytes, ["moov", "trak", "mdia", "minf", "dinf", "dref", "url "]).count, 2)

        let stbl = ["moov", "trak", "mdia", "minf", "stbl"]
        for table in ["stts", "stsc", "stco"] {
            let boxes = BoxParser.find(bytes, stbl + [table])
            XCTAssertEqual(boxes.count, 2, table)
            XCTAssertTrue(boxes.allSatisfy { $0.size == 16 && BoxParser.be32(bytes, $0.bodyStart + 4) == 0 }, "\(table) is empty")
        }
        XCTAssertTrue(BoxParser.find(bytes, stbl + ["stsz"]).allSatisfy { $0.size == 20 })

        let avcC = try XCTUnwrap(BoxParser.find(bytes, stbl + ["stsd", "avc1", "avcC"]).first)
        XCTAssertEqual(Array(bytes[avcC.bodyStart..<avcC.end]), H264ConfigurationTests.baselineRecord)
        let avc1 = try XCTUnwrap(BoxParser.find(bytes, stbl + ["stsd", "avc1"]).first)
        XCTAssertEqual(BoxParser.be32(bytes, avc1.bodyStart + 24), 320 << 16 | 240, "avc1 width/height")

        let esds = try XCTUnwrap(BoxParser.find(bytes, stbl + ["stsd", "mp4a", "esds"]).first)
        let esdsBody = Array(bytes[esds.bodyStart + 4..<esds.end])
        XCTAssertEqual(esdsBody.first, 0x03, "ES_Descriptor")
        XCTAssertEqual(Array(esdsBody.suffix(7)), [0x05, 0x02, 0x11, 0x90, 0x06, 0x01, 0x02], "ASC then SLConfig")
        let mp4a = try XCTUnwrap(BoxParser.find(bytes, stbl + ["stsd", "mp4a"]).first)
        XCTAssertEqual(BoxParser.be32(bytes, mp4a.bodyStart + 24), 48_000 << 16)

        let trex = BoxParser.find(bytes, ["moov", "mvex", "trex"])
        XCTAssertEqual(trex.map { BoxParser.be32(bytes, $0.bodyStart + 4) }, [1, 2])
        XCTAssertEqual(trex.map { BoxParser.be32(bytes, $0.bodyStart + 8) }, [1, 1], "default sample description index")
    }

    func testFragmentLayoutAndDataOffsets() throws {
        let videoSamples = [
            CMAFSample(duration: 3000, compositionOffset: 6000, isSync: true, data: [0, 0, 0, 2, 0x65, 0xAA]),
            CMAFSample(duration: 3000, compositionOffset: -3000, isSync: false, data: [0, 0, 0, 3, 0x41, 0xBB, 0xCC]),
        ]
        let audioSamples = (0..<3).map { CMAFSample(duration: 1024, isSync: true, data: [UInt8](repeating: UInt8(0x20 + $0), count: 5 + $0)) }
        let runs = [CMAFTrackRun(trackID: 1, baseDecodeTime: 0x1_0000_0001, samples: videoSamples),
                    CMAFTrackRun(trackID: 2, baseDecodeTime: 4096, samples: audioSamples)]
        let bytes = CMAFWriter.fragment(sequenceNumber: 7, runs: runs)

        XCTAssertEqual(BoxParser.boxes(bytes).map(\.type), ["moof", "mdat"])
        let moof = BoxParser.boxes(bytes)[0], mdat = BoxParser.boxes(bytes)[1]
        XCTAssertEqual(mdat.end, bytes.count)
        XCTAssertEqual(mdat.size - 8, 6 + 7 + 5 + 6 + 7)
        XCTAssertEqual(BoxParser.be32(bytes, BoxParser.find(bytes, ["moof", "mfhd"])[0].bodyStart + 4), 7)

        let trafs = BoxParser.find(bytes, ["moof", "traf"])
        XCTAssertEqual(trafs.count, 2)
        for (traf, run) in zip(trafs, runs) {
            let children = BoxParser.boxes(bytes, in: traf.bodyStart..<traf.end)
            XCTAssertEqual(children.map(\.type), ["tfhd", "tfdt", "trun"])
            let tfhd = children[0], tfdt = children[1], trun = children[2]
            XCTAssertEqual(BoxParser.be32(bytes, tfhd.bodyStart), 0x0002_0000, "version 0, default-base-is-moof")
            XCTAssertEqual(BoxParser.be32(bytes, tfhd.bodyStart + 4), run.trackID)
            XCTAssertEqual(bytes[tfdt.bodyStart], 1, "tfdt version 1")
            XCTAssertEqual(BoxParser.be64(bytes, tfdt.bodyStart + 4), run.baseDecodeTime)
            XCTAssertEqual(BoxParser.be32(bytes, trun.bodyStart), 0x0100_0F01, "trun version 1 and flags")
            XCTAssertEqual(Int(BoxParser.be32(bytes, trun.bodyStart + 4)), run.samples.count)
            var dataPosition = moof.start + Int(Int32(bitPattern: BoxParser.be32(bytes, trun.bodyStart + 8)))
            XCTAssertGreaterThanOrEqual(dataPosition, mdat.bodyStart)
            var entry = trun.bodyStart + 12
            for sample in run.samples {
                XCTAssertEqual(BoxParser.be32(bytes, entry), sample.duration)
                let size = Int(BoxParser.be32(bytes, entry + 4))
                XCTAssertEqual(size, sample.data.count)
                XCTAssertEqual(BoxParser.be32(bytes, entry + 8), sample.isSync ? 0x0200_0000 : 0x0101_0000)
                XCTAssertEqual(Int32(bitPattern: BoxParser.be32(bytes, entry + 12)), sample.compositionOffset)
                XCTAssertEqual(Array(bytes[dataPosition..<dataPosition + size]), sample.data, "trun data offset points at the sample")
                dataPosition += size
                entry += 16
            }
            XCTAssertEqual(entry, trun.end)
        }
    }

    func testEmptyFragmentIsWellFormed() {
        let bytes = CMAFWriter.fragment(sequenceNumber: 1, runs: [])
        XCTAssertEqual(BoxParser.boxes(bytes).map(\.type), ["moof", "mdat"])
        XCTAssertEqual(BoxParser.boxes(bytes).map(\.size), [24, 8])
    }

    func testDescriptorSizesUseExpandableEncoding() {
        XCTAssertEqual(CMAFWriter.descriptor(tag: 5, [1, 2]), [5, 2, 1, 2])
        let long = CMAFWriter.descriptor(tag: 4, [UInt8](repeating: 9, count: 200))
        XCTAssertEqual(Array(long.prefix(3)), [4, 0x81, 0x48])               // 200 = 1 * 128 + 72
        XCTAssertEqual(long.count, 203)
    }
}
