// The Mail target without sockets: a message's RFC 5322 form, RFC 2047 and quoted-printable,
// header injection, dot-stuffing, and the bounded reading of SMTP replies (in EmbeddedChannel).
import App
import Foundation
import Logging
import Mail
import NIOCore
import NIOEmbedded
import XCTest

final class MailTests: XCTestCase {
    let date = Date(timeIntervalSince1970: 1_736_244_000)  // Tue, 07 Jan 2025 10:00:00 +0000

    func message(subject: String = "Verify your address", body: String = "Hello\nthere",
                 from: String = "StreamTube <noreply@stream.example>", to: [String] = ["alice@example.com"]) throws -> MailMessage {
        try MailMessage(from: from, to: to, subject: subject, body: body)
    }

    /// The headers of a rendered message, unfolded, by name.
    func headers(_ rendered: String) -> [String: String] {
        let head = rendered.components(separatedBy: "\r\n\r\n")[0].replacingOccurrences(of: "\r\n ", with: " ")
        var out: [String: String] = [:]
        for line in head.components(separatedBy: "\r\n") {
            let colon = line.firstIndex(of: ":")!
            out[String(line[..<colon])] = String(line[line.index(after: colon)...].dropFirst())
        }
        return out
    }

    /// Decodes a header made of RFC 2047 B-encoded words (what we write) back to text.
    func decodeWords(_ value: String) -> String {
        let words = value.split(separator: " ")
        var bytes = Data()
        for w in words {
            XCTAssertTrue(w.hasPrefix("=?utf-8?B?") && w.hasSuffix("?="), String(w))
            XCTAssertLessThanOrEqual(w.count, 75)
            bytes += Data(base64Encoded: String(w.dropFirst(10).dropLast(2)))!
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func testRenderedHeaders() throws {
        let m = try MailMessage(from: "StreamTube <noreply@stream.example>", to: ["alice@example.com", "Bob <bob@example.com>"],
                                subject: "Verify your address", body: "Hello", replyTo: "help@stream.example")
        let text = m.rendered(date: date, messageID: "<abc@stream.example>")
        XCTAssertTrue(text.hasPrefix("""
        Date: Tue, 07 Jan 2025 10:00:00 +0000\r
        Message-ID: <abc@stream.example>\r
        From: StreamTube <noreply@stream.example>\r
        To: alice@example.com,\r
         Bob <bob@example.com>\r
        Reply-To: help@stream.example\r
        Subject: Verify your address\r
        MIME-Version: 1.0\r
        Content-Type: text/plain; charset=utf-8\r
        Content-Transfer-Encoding: quoted-printable\r
        \r
        Hello\r\n
        """), text)
    }

    func testMessageIDIsRandomAtTheSendersDomain() throws {
        let m = try message()
        let a = m.makeMessageID(), b = m.makeMessageID()
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.hasPrefix("<") && a.hasSuffix("@stream.example>"), a)
        XCTAssertEqual(a.count, "<@stream.example>".count + 32)
        XCTAssertTrue(headers(m.rendered())["Message-ID"]!.hasSuffix("@stream.example>"))
    }

    func testCRLFAndLineLengths() throws {
        let long = String(repeating: "ü", count: 3000) + "\n" + String(repeating: "a ", count: 1000) + "\r\nend\rx"
        let text = try message(subject: String(repeating: "word ", count: 400), body: long).rendered(date: date)
        let bytes = Array(text.utf8)
        for (i, b) in bytes.enumerated() {
            if b == 0x0A { XCTAssertEqual(bytes[i - 1], 0x0D, "bare LF at \(i)") }
            if b == 0x0D { XCTAssertEqual(bytes[i + 1], 0x0A, "bare CR at \(i)") }
            XCTAssertLessThan(b, 0x80, "8-bit byte at \(i)")
        }
        for line in text.components(separatedBy: "\r\n") { XCTAssertLessThanOrEqual(line.utf8.count, 998) }
        XCTAssertTrue(text.hasSuffix("\r\n"))
    }

    func testLongASCIISubjectIsFoldedAndUnfoldsBack() throws {
        let subject = (1...40).map { "word\($0)" }.joined(separator: " ")
        let text = try message(subject: subject).rendered(date: date)
        XCTAssertEqual(headers(text)["Subject"], subject)
        let head = text.components(separatedBy: "\r\n\r\n")[0]
        for line in head.components(separatedBy: "\r\n") { XCTAssertLessThanOrEqual(line.count, 78, line) }
    }

    func testNonASCIISubjectAndNamesAreEncodedWords() throws {
        let subject = "Vérifiez votre adresse — ストリーム 🎥 " + String(repeating: "é", count: 60)
        let m = try MailMessage(from: "Ströme Ünïcode <noreply@stream.example>", to: ["Zoë <zoe@example.com>"],
                                subject: subject, body: "x")
        let h = headers(m.rendered(date: date))
        XCTAssertEqual(decodeWords(h["Subject"]!), subject)
        XCTAssertTrue(h["From"]!.hasSuffix(" <noreply@stream.example>"))
        XCTAssertEqual(decodeWords(String(h["From"]!.dropLast(" <noreply@stream.example>".count))), "Ströme Ünïcode")
        XCTAssertEqual(decodeWords(String(h["To"]!.dropLast(" <zoe@example.com>".count))), "Zoë")
    }

    func testDisplayNamesWithSpecialsAreQuoted() throws {
        let m = try MailMessage(from: "\"Smith, \\\"J\\\"\" <j@stream.example>", to: ["a@example.com"], subject: "s", body: "b")
        XCTAssertEqual(m.from.displayName, "Smith, \"J\"")
        XCTAssertEqual(headers(m.rendered(date: date))["From"], "\"Smith, \\\"J\\\"\" <j@stream.example>")
    }

    func testQuotedPrintableRoundTrip() {
        let texts = [
            "plain", "", "a=b", "trailing space \nand tab\t", "ünïcödé ✓ 🎥",
            String(repeating: "x", count: 200), String(repeating: "é", count: 100), "line\r\nline\rline\n",
            ".\n..leading dots\n.", "https://stream.example/verify?token=abc=def&x=1",
        ]
        for t in texts {
            let encoded = QuotedPrintable.encode(t)
            for line in encoded.components(separatedBy: "\r\n") {
                XCTAssertLessThanOrEqual(line.count, 76, line)
                XCTAssertFalse(line.hasSuffix(" ") || line.hasSuffix("\t"), line)
                XCTAssertTrue(line.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, line)
            }
            let expected = t.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
                .replacingOccurrences(of: "\n", with: "\r\n")
            XCTAssertEqual(QuotedPrintable.decode(encoded), expected, t)
        }
        XCTAssertEqual(QuotedPrintable.encode("a=b é"), "a=3Db =C3=A9")
    }

    func testDotStuffing() {
        XCTAssertEqual(SMTPMailer.dotStuffed(".a\r\nb\r\n..c\r\n.\r\n"), "..a\r\nb\r\n...c\r\n..\r\n")
        XCTAssertEqual(SMTPMailer.dotStuffed("no dots"), "no dots\r\n")
        let rendered = try! message(body: ".\n.hidden\nfine").rendered(date: date)
        XCTAssertFalse(SMTPMailer.dotStuffed(rendered).contains("\r\n.\r\n"))
    }

    func testHeaderInjectionIsRefused() {
        XCTAssertThrowsError(try message(subject: "Hi\r\nBcc: victim@example.com")) {
            XCTAssertEqual($0 as? MailError, .headerInjection(field: "subject"))
        }
        XCTAssertThrowsError(try message(subject: "Hi\nBcc: victim@example.com"))
        XCTAssertThrowsError(try message(subject: "Hi\rX"))
        XCTAssertThrowsError(try message(to: ["a@example.com\r\nBcc: victim@example.com"])) {
            XCTAssertEqual($0 as? MailError, .headerInjection(field: "address"))
        }
        XCTAssertThrowsError(try MailAddress(address: "a@example.com", displayName: "Eve\nBcc: x@y"))
        XCTAssertThrowsError(try message(from: "Eve\n <eve@example.com>"))
        XCTAssertThrowsError(try MailMessage(from: "a@b.example", to: [], subject: "s", body: "b")) {
            XCTAssertEqual($0 as? MailError, .noRecipients)
        }
    }

    func testAddresses() throws {
        for good in ["a@example.com", "first.last+tag@sub.example.co", "<a@example.com>", "  A B <a@example.com> "] {
            XCTAssertNoThrow(try MailAddress(good), good)
        }
        for bad in ["", "a", "@example.com", "a@", "a b@example.com", "a@exa mple.com", "a@@example.com", "ü@example.com",
                    "a@example.com>", "a@[1.2.3.4]", ".a@example.com", "a@example.com."] {
            XCTAssertThrowsError(try MailAddress(bad), bad)
        }
        let a = try MailAddress("Alice Liddell <alice@example.com>")
        XCTAssertEqual(a.displayName, "Alice Liddell")
        XCTAssertEqual(a.address, "alice@example.com")
        XCTAssertEqual(a.domain, "example.com")
    }

    // MARK: replies

    func testReplyParserMultiLine() throws {
        var p = SMTPReplyParser()
        XCTAssertNil(try p.parse(line: Array("250-mail.example.com Hello".utf8)))
        XCTAssertNil(try p.parse(line: Array("250-STARTTLS".utf8)))
        XCTAssertNil(try p.parse(line: Array("250-AUTH PLAIN LOGIN".utf8)))
        let reply = try XCTUnwrap(try p.parse(line: Array("250 8BITMIME".utf8)))
        XCTAssertEqual(reply.code, 250)
        XCTAssertEqual(reply.lines, ["mail.example.com Hello", "STARTTLS", "AUTH PLAIN LOGIN", "8BITMIME"])
        XCTAssertEqual(reply.extensions["AUTH"], ["PLAIN", "LOGIN"])
        XCTAssertNotNil(reply.extensions["STARTTLS"])
        XCTAssertEqual(try p.parse(line: Array("221".utf8)), SMTPReply(code: 221, lines: [""]))
        XCTAssertEqual(try p.parse(line: Array("550 5.1.1 no such user".utf8))?.description, "550 5.1.1 no such user")
    }

    func testReplyParserBounds() {
        var p = SMTPReplyParser(maxLineLength: 100, maxLines: 5)
        XCTAssertThrowsError(try p.parse(line: Array(("250 " + String(repeating: "x", count: 97)).utf8))) {
            XCTAssertEqual($0 as? SMTPReplyError, .lineTooLong(limit: 100))
        }
        p = SMTPReplyParser(maxLineLength: 100, maxLines: 5)
        for _ in 0..<5 { XCTAssertNoThrow(try p.parse(line: Array("250-x".utf8))) }
        XCTAssertThrowsError(try p.parse(line: Array("250-x".utf8))) {
            XCTAssertEqual($0 as? SMTPReplyError, .tooManyLines(limit: 5))
        }
        for bad in ["", "25", "abc hello", "250x", "999 what", "250-a"] {
            var q = SMTPReplyParser()
            if bad == "250-a" {
                _ = try? q.parse(line: Array("250-a".utf8))
                XCTAssertThrowsError(try q.parse(line: Array("251 mixed codes".utf8)))
            } else {
                XCTAssertThrowsError(try q.parse(line: Array(bad.utf8)), bad)
            }
        }
    }

    func testReplyDecoderByteByByte() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(SMTPReplyDecoder()))
        for byte in "220 ready\r\n250-one\r\n250 two\n".utf8 {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        XCTAssertEqual(try channel.readInbound(as: SMTPReply.self), SMTPReply(code: 220, lines: ["ready"]))
        XCTAssertEqual(try channel.readInbound(as: SMTPReply.self), SMTPReply(code: 250, lines: ["one", "two"]))
        XCTAssertNil(try channel.readInbound(as: SMTPReply.self))
        _ = try channel.finish()
    }

    func testReplyDecoderRefusesAnEndlessLineBeforeBufferingIt() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(
            SMTPReplyDecoder(parser: SMTPReplyParser(maxLineLength: 512, maxLines: 10))))
        let chunk = ByteBuffer(bytes: Array(repeating: UInt8(ascii: "x"), count: 256))
        XCTAssertNoThrow(try channel.writeInbound(chunk))
        XCTAssertNoThrow(try channel.writeInbound(chunk))
        XCTAssertThrowsError(try channel.writeInbound(chunk)) {
            XCTAssertEqual($0 as? SMTPReplyError, .lineTooLong(limit: 512))
        }
        _ = try? channel.finish()
    }

    func testReplyDecoderRefusesAnEndlessReply() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(
            SMTPReplyDecoder(parser: SMTPReplyParser(maxLineLength: 512, maxLines: 10))))
        XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(string: String(repeating: "220-hi\r\n", count: 11)))) {
            XCTAssertEqual($0 as? SMTPReplyError, .tooManyLines(limit: 10))
        }
        _ = try? channel.finish()
    }

    // MARK: settings

    func testPasswordOverPlaintextOnlyToThisMachine() throws {
        var s = SMTPSettings(host: "mail.example.com", security: .none, user: "u", password: "secret")
        XCTAssertThrowsError(try s.validate())
        for host in ["localhost", "127.0.0.1", "::1"] {
            s.host = host
            XCTAssertNoThrow(try s.validate(), host)
        }
        s.security = .startTLS
        s.host = "mail.example.com"
        XCTAssertNoThrow(try s.validate())
        XCTAssertEqual(s.port, 25)
        XCTAssertEqual(SMTPSettings(host: "h", security: .tls).port, 465)
        XCTAssertFalse("\(s)".contains("secret"))
        XCTAssertFalse(String(reflecting: s).contains("secret"))
        var dumped = ""
        dump(s, to: &dumped)
        XCTAssertFalse(dumped.contains("secret"), dumped)
    }

    func testNodeConfigurationChoosesTheMailer() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mail-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var config = NodeConfiguration()
        config.dataDir = folder
        XCTAssertNil(try config.smtpSettings())
        XCTAssertTrue(try config.mailer(logger: Logger(label: "test")) is OutboxMailer)
        XCTAssertEqual(config.outboxFolder, folder + "/outbox")
        config.smtpHost = "mail.example.com"
        config.smtpUser = "u"
        config.smtpPassword = "p"
        config.publicURL = "https://stream.example/"
        let s = try XCTUnwrap(try config.smtpSettings())
        XCTAssertEqual(s.security, .startTLS)
        XCTAssertEqual(s.port, 587)
        XCTAssertEqual(s.heloName, "stream.example")
        XCTAssertTrue(try config.mailer(logger: Logger(label: "test")) is SMTPMailer)
        config.smtpSecurity = "ssl"
        XCTAssertThrowsError(try config.smtpSettings())
        config.mailFrom = "not an address"
        XCTAssertThrowsError(try config.mailSender())
    }

    func testOutboxWritesPrivateFiles() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mail-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let outbox = try OutboxMailer(folder: folder + "/outbox", logger: Logger(label: "test"))
        let delivery = try await outbox.deliver(try message(body: "secret link"))
        let file = try XCTUnwrap(delivery.file)
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let dir = try FileManager.default.attributesOfItem(atPath: folder + "/outbox")
        XCTAssertEqual((dir[.posixPermissions] as? NSNumber)?.intValue, 0o700)
        XCTAssertTrue(try String(contentsOfFile: file, encoding: .utf8).contains("secret link"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/outbox").count, 1)
    }
}
