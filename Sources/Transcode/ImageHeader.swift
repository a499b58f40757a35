// ImageHeader: what an uploaded image says it is, read from its first bytes before any
// decoder sees it — the format by its magic bytes, the size from its header — so that a
// picture too large to hold is refused before a frame is allocated for it.

/// The format and declared size of a JPEG, PNG or WebP image. Pure: no FFmpeg.
public struct ImageHeader: Equatable, Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case jpeg, png, webp
    }

    public var format: Format
    public var width: Int
    public var height: Int

    /// Reads the header; nil when the bytes are none of the three formats or their header is
    /// cut short or malformed.
    public init?(_ bytes: [UInt8]) {
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
            guard let (w, h) = Self.jpegSize(bytes) else { return nil }
            self.init(format: .jpeg, width: w, height: h)
        } else if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            // The first chunk is IHDR: length (13), "IHDR", width, height (big-endian).
            guard bytes.count >= 24, Array(bytes[12..<16]) == Array("IHDR".utf8) else { return nil }
            self.init(format: .png, width: Self.be32(bytes, 16), height: Self.be32(bytes, 20))
        } else if bytes.count >= 12, Array(bytes[0..<4]) == Array("RIFF".utf8), Array(bytes[8..<12]) == Array("WEBP".utf8) {
            guard let (w, h) = Self.webpSize(bytes) else { return nil }
            self.init(format: .webp, width: w, height: h)
        } else {
            return nil
        }
    }

    public init(format: Format, width: Int, height: Int) {
        self.format = format
        self.width = width
        self.height = height
    }

    /// The frame header (SOFn) of a JPEG: markers are walked up to it; a scan (SOS) or the end
    /// before one means there is no picture to size.
    static func jpegSize(_ b: [UInt8]) -> (Int, Int)? {
        var i = 2
        while i < b.count {
            guard b[i] == 0xFF else { return nil }
            while i < b.count, b[i] == 0xFF { i += 1 }  // fill bytes
            guard i < b.count else { return nil }
            let marker = b[i]
            i += 1
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }  // no length
            if marker == 0xD9 || marker == 0xDA { return nil }                // end, or a scan before any frame header
            guard i + 2 <= b.count else { return nil }
            let length = Int(b[i]) << 8 | Int(b[i + 1])
            guard length >= 2 else { return nil }
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                guard length >= 7, i + 7 <= b.count else { return nil }
                let height = Int(b[i + 3]) << 8 | Int(b[i + 4])
                let width = Int(b[i + 5]) << 8 | Int(b[i + 6])
                return (width, height)
            }
            i += length
        }
        return nil
    }

    /// The size in a WebP's first chunk: lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`).
    static func webpSize(_ b: [UInt8]) -> (Int, Int)? {
        guard b.count >= 30 else { return nil }
        switch String(decoding: b[12..<16], as: UTF8.self) {
        case "VP8 ":
            guard b[23] == 0x9D, b[24] == 0x01, b[25] == 0x2A else { return nil }
            return ((Int(b[26]) | Int(b[27]) << 8) & 0x3FFF, (Int(b[28]) | Int(b[29]) << 8) & 0x3FFF)
        case "VP8L":
            guard b[20] == 0x2F else { return nil }
            let bits = Int(b[21]) | Int(b[22]) << 8 | Int(b[23]) << 16 | Int(b[24]) << 24
            return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            return ((Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16) + 1, (Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16) + 1)
        default:
            return nil
        }
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int {
        Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
    }
}
