// One sws_scale call on whole frames: the eight data planes and line sizes of each frame laid
// out as the C API wants them. Used by the ladder's rungs and by thumbnails.
import CFFmpeg

enum FrameScaling {
    /// Scales all of `src` into `dst` (allocated to the scaler's output size and format); sws_scale's result.
    static func scale(_ scaler: OpaquePointer, from src: AVFrame, into dst: AVFrame) -> Int32 {
        let srcData: [UnsafePointer<UInt8>?] = [src.data.0, src.data.1, src.data.2, src.data.3,
                                                src.data.4, src.data.5, src.data.6, src.data.7].map { $0.map { UnsafePointer($0) } }
        let srcLines: [Int32] = [src.linesize.0, src.linesize.1, src.linesize.2, src.linesize.3,
                                 src.linesize.4, src.linesize.5, src.linesize.6, src.linesize.7]
        let dstData: [UnsafeMutablePointer<UInt8>?] = [dst.data.0, dst.data.1, dst.data.2, dst.data.3,
                                                       dst.data.4, dst.data.5, dst.data.6, dst.data.7]
        let dstLines: [Int32] = [dst.linesize.0, dst.linesize.1, dst.linesize.2, dst.linesize.3,
                                 dst.linesize.4, dst.linesize.5, dst.linesize.6, dst.linesize.7]
        return sws_scale(scaler, srcData, srcLines, 0, src.height, dstData, dstLines)
    }
}
