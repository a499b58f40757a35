// MailHeaders: header values as RFC 5322 and RFC 2047 want them.
import Foundation

/// Header text: refusing line breaks, quoting or encoding (RFC 2047) display names and
/// subjects, folding long values, and the Date format.
enum MailHeaders {
    /// A line of the message may have at most 998 characters before its CRLF (RFC 5322 2.1.1);
    /// we fold at 78 where there is a space to fold at.
    static let maxLineLength = 998
    static let foldAt = 78

    /// Header injection: a CR or LF (or NUL) in a header value is an error, never sent.
    static func refuseLineBreaks(_ value: String, field: String) throws(MailError) {
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
            throw MailError.headerInjection(field: field)
        }
    }

    /// Printable ASCII and spaces only, with no `=?` that a reader would take for an encoded word.
    static func isPlain(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 < 0x7F) } && !s.contains("=?")
    }

    /// RFC 2047 encoded words (`=?utf-8?B?...?=`), each at most 75 characters and holding whole
    /// characters, joined by folding whitespace.
    static func encodedWords(_ s: String) -> String {
        // 75 - "=?utf-8?B?".count - "?=".count = 63 characters of base64: 45 bytes.
        let maxBytes = 45
        var words: [[UInt8]] = []
        var chunk: [UInt8] = []
        for scalar in s.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > maxBytes {
                words.append(chunk)
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append(chunk) }
        return words.map { "=?utf-8?B?" + Data($0).base64EncodedString() + "?=" }.joined(separator: "\r\n ")
    }

    /// Unstructured text (Subject): as it is when plain ASCII, folded at spaces to keep lines
    /// short; else encoded words. `nameLength` is the length of `Name: ` before it.
    static func unstructured(_ s: String, nameLength: Int) -> String {
        let words = s.split(separator: " ", omittingEmptySubsequences: false)
        guard isPlain(s), words.allSatisfy({ $0.utf8.count < maxLineLength - 100 }) else { return encodedWords(s) }
        var out = ""
        var lineLength = nameLength
        for (i, word) in words.enumerated() {
            if i > 0 {
                if lineLength + 1 + word.utf8.count > foldAt, lineLength > 1 {
                    out += "\r\n"
                    lineLength = 0
                }
                out += " "
                lineLength += 1
            }
            out += word
            lineLength += word.utf8.count
        }
        return out
    }

    /// A display name: as atoms when it has nothing special, a quoted string when it is ASCII
    /// with specials, encoded words when it is not ASCII.
    static func phrase(_ s: String) -> String {
        guard isPlain(s) else { return encodedWords(s) }
        let atext = Set("!#$%&'*+-/=?^_`{|}~ ".utf8)
        let isAtoms = s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || atext.contains(b)
        }
        if isAtoms, s.utf8.count < 900 { return s }
        guard s.utf8.count < 900 else { return encodedWords(s) }
        return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// RFC 5322 3.3: `Tue, 07 Jan 2025 10:00:00 +0000`.
    static func date(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(secondsFromGMT: 0)
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return f.string(from: date)
    }
}
