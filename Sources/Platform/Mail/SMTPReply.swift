// SMTPReply: a server's reply, and the bounded decoder that reads them off the wire.
import NIOCore

/// One reply: a three-digit code and its text lines (`250-first`, `250 last` → two lines).
package struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    package let code: Int
    /// The text of each line, after the code and its separator.
    package let lines: [String]

    package init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// 2xx: done. 3xx: go on (354 after DATA, 334 during AUTH).
    package var isPositive: Bool { (200..<400).contains(code) }

    /// `550 no such user`; the lines of a multi-line reply joined by ` / `.
    package var description: String {
        let text = lines.filter { !$0.isEmpty }.joined(separator: " / ")
        return text.isEmpty ? String(code) : "\(code) \(text)"
    }

    /// The EHLO reply's extension keywords and their parameters, upper-cased: `["STARTTLS": [],
    /// "AUTH": ["PLAIN", "LOGIN"]]` (the first line is the server's greeting, not an extension).
    package var extensions: [String: [String]] {
        var out: [String: [String]] = [:]
        for line in lines.dropFirst() {
            // `AUTH=PLAIN LOGIN` is the form some old servers use.
            let words = line.uppercased().split(whereSeparator: { $0 == " " || $0 == "=" }).map(String.init)
            guard let keyword = words.first else { continue }
            out[keyword, default: []] += words.dropFirst()
        }
        return out
    }
}

/// What makes a server's reply unreadable. A hostile or broken server cannot make the client
/// buffer without bound: a line and the number of lines in one reply are both limited.
package enum SMTPReplyError: Error, Equatable, CustomStringConvertible {
    case lineTooLong(limit: Int)
    case tooManyLines(limit: Int)
    case malformed(String)

    package var description: String {
        switch self {
        case .lineTooLong(let limit): return "a reply line longer than \(limit) bytes"
        case .tooManyLines(let limit): return "a reply of more than \(limit) lines"
        case .malformed(let line): return "a malformed reply line \"\(line)\""
        }
    }
}

/// Gathers reply lines into replies: `250-a`, `250-b`, `250 c` is one reply of three lines.
/// Pure (lines in, replies out), so the bounds are tested without sockets.
package struct SMTPReplyParser: Sendable {
    /// RFC 5321 4.5.3.1.5 allows 512 bytes a reply line; servers send longer EHLO lines, so we
    /// allow more, but not without end.
    package static let defaultMaxLineLength = 2048
    package static let defaultMaxLines = 100

    package let maxLineLength: Int
    package let maxLines: Int
    private var code: Int?
    private var lines: [String] = []

    package init(maxLineLength: Int = defaultMaxLineLength, maxLines: Int = defaultMaxLines) {
        self.maxLineLength = maxLineLength
        self.maxLines = maxLines
    }

    /// Takes one line (without its CRLF); returns the reply it completes, if it does.
    package mutating func parse(line bytes: some Collection<UInt8>) throws(SMTPReplyError) -> SMTPReply? {
        guard bytes.count <= maxLineLength else { throw .lineTooLong(limit: maxLineLength) }
        let line = String(decoding: bytes, as: UTF8.self)
        let chars = Array(line.utf8)
        guard chars.count >= 3, chars[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              chars.count == 3 || chars[3] == UInt8(ascii: " ") || chars[3] == UInt8(ascii: "-"),
              let code = Int(String(decoding: chars[0...2], as: UTF8.self)), (200...599).contains(code) || (100...199).contains(code)
        else { throw .malformed(String(line.prefix(80))) }
        if let expected = self.code, expected != code { throw .malformed(String(line.prefix(80))) }
        guard lines.count < maxLines else { throw .tooManyLines(limit: maxLines) }
        self.code = code
        lines.append(chars.count > 4 ? String(decoding: chars[4...], as: UTF8.self) : "")
        let isLast = chars.count == 3 || chars[3] == UInt8(ascii: " ")
        guard isLast else { return nil }
        defer { self.code = nil; lines = [] }
        return SMTPReply(code: code, lines: lines)
    }
}

/// Splits the byte stream into lines (CRLF, or a bare LF) and the lines into replies. Never
/// assumes a whole line arrived; refuses a line longer than the parser's bound before it has
/// buffered more than that.
package struct SMTPReplyDecoder: ByteToMessageDecoder {
    package typealias InboundOut = SMTPReply
    private var parser: SMTPReplyParser

    package init(parser: SMTPReplyParser = SMTPReplyParser()) { self.parser = parser }

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let lf = buffer.readableBytesView.firstIndex(of: 0x0A) else {
            // The line so far, plus room for its CR.
            if buffer.readableBytes > parser.maxLineLength + 1 { throw SMTPReplyError.lineTooLong(limit: parser.maxLineLength) }
            return .needMoreData
        }
        let length = lf - buffer.readerIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == 0x0D { line = line.getSlice(at: line.readerIndex, length: line.readableBytes - 1)! }
        if let reply = try parser.parse(line: line.readableBytesView) {
            context.fireChannelRead(wrapInboundOut(reply))
        }
        return .continue
    }

    package mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
