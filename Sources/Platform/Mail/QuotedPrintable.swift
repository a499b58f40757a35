// QuotedPrintable: the body's transfer encoding (RFC 2045 6.7).
import Foundation

/// Quoted-printable: seven-bit lines of at most 76 characters whatever the text, so the body
/// passes any SMTP server (no 8BITMIME needed) and no line comes near the 998 limit.
package enum QuotedPrintable {
    static let maxLineLength = 76

    /// Encodes text: its line breaks (CRLF, CR or LF) become CRLF, every other byte outside
    /// printable ASCII (and `=`, and a space or tab ending a line) becomes `=XX`, and lines
    /// longer than 76 characters are broken with soft line breaks (`=` at the end).
    package static func encode(_ text: String) -> String {
        var lines: [String] = []
        for line in logicalLines(text) {
            var out = ""
            var length = 0
            let bytes = Array(line.utf8)
            for (i, b) in bytes.enumerated() {
                let isLast = i == bytes.count - 1
                let literal = (b >= 33 && b <= 126 && b != UInt8(ascii: "=")) || ((b == 0x20 || b == 0x09) && !isLast)
                let piece = literal ? String(UnicodeScalar(b)) : "=" + hex(b)
                // Room for the piece and, unless this is the line's end, a soft break's `=`.
                let room = isLast ? maxLineLength : maxLineLength - 1
                if length + piece.count > room {
                    out += "=\r\n"
                    length = 0
                }
                out += piece
                length += piece.count
            }
            lines.append(out)
        }
        return lines.joined(separator: "\r\n")
    }

    /// Decodes quoted-printable text (soft line breaks removed, `=XX` turned back into bytes);
    /// hard line breaks come back as CRLF.
    package static func decode(_ encoded: String) -> String {
        var bytes: [UInt8] = []
        let lines = encoded.components(separatedBy: "\r\n")
        for (n, line) in lines.enumerated() {
            let chars = Array(line.utf8)
            var i = 0
            var soft = false
            while i < chars.count {
                if chars[i] == UInt8(ascii: "=") {
                    if i == chars.count - 1 { soft = true; break }
                    if i + 2 < chars.count, let v = UInt8(String(decoding: chars[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                        bytes.append(v)
                        i += 3
                        continue
                    }
                }
                bytes.append(chars[i])
                i += 1
            }
            if !soft && n < lines.count - 1 { bytes += [0x0D, 0x0A] }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The text's lines, whichever line break it uses.
    static func logicalLines(_ text: String) -> [Substring] {
        let normal = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        return normal.split(separator: "\n", omittingEmptySubsequences: false)
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 0x0F)]])
    }
}
