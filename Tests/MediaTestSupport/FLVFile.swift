import Foundation

/// A minimal FLV file reader (tests only): header, then tags with their previous-tag sizes.
package struct FLVFile {
    package struct Tag: Equatable {
        package var type: UInt8
        package var timestamp: UInt32
        package var body: [UInt8]
    }

    package var hasAudio: Bool
    package var hasVideo: Bool
    package var tags: [Tag]

    package enum ParseError: Error { case notFLV, truncated(at: Int), badBackPointer(at: Int) }

    package init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 13, bytes[0] == 0x46, bytes[1] == 0x4C, bytes[2] == 0x56 else { throw ParseError.notFLV }
        hasAudio = bytes[4] & 0x04 != 0
        hasVideo = bytes[4] & 0x01 != 0
        let headerSize = Int(bytes[5]) << 24 | Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        var i = headerSize + 4  // PreviousTagSize0
        tags = []
        while i < bytes.count {
            guard bytes.count - i >= 11 else { throw ParseError.truncated(at: i) }
            let size = Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            let ts = UInt32(bytes[i + 7]) << 24 | UInt32(bytes[i + 4]) << 16 | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6])
            guard bytes.count - i >= 11 + size + 4 else { throw ParseError.truncated(at: i) }
            tags.append(Tag(type: bytes[i] & 0x1F, timestamp: ts, body: Array(bytes[(i + 11)..<(i + 11 + size)])))
            let back = Int(bytes[i + 11 + size]) << 24 | Int(bytes[i + 12 + size]) << 16 | Int(bytes[i + 13 + size]) << 8 | Int(bytes[i + 14 + size])
            guard back == 11 + size else { throw ParseError.badBackPointer(at: i) }
            i += 11 + size + 4
        }
    }
}
