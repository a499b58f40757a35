// SMTPMailer: sends each message over its own SMTP connection.
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// An SMTP client: greeting, EHLO (HELO if refused), STARTTLS and EHLO again, AUTH (PLAIN, else
/// LOGIN), MAIL FROM, RCPT TO for each recipient, DATA (dot-stuffed), QUIT. One connection per
/// message (mail volume is low). Every failure is an `SMTPError` naming the step and the
/// server's reply; nothing is sent unless every step before the end of DATA succeeded.
package struct SMTPMailer: Mailer {
    package let settings: SMTPSettings
    private let logger: Logger
    private let group: any EventLoopGroup
    private let tlsContext: NIOSSLContext?

    /// Checks the settings (no password over plaintext to another machine) and reads the CA
    /// file now, so a bad setting fails at start and not at the first mail.
    package init(settings: SMTPSettings, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        try settings.validate()
        self.settings = settings
        self.logger = logger
        self.group = group
        if settings.security == .none {
            tlsContext = nil
        } else {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            tls.minimumTLSVersion = .tlsv12
            if let caFile = settings.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw MailError.badSetting("smtpCaFile \(caFile) cannot be read")
                }
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                } catch {
                    throw MailError.badSetting("smtpCaFile \(caFile) holds no PEM certificate (\(error))")
                }
            }
            do { tlsContext = try NIOSSLContext(configuration: tls) } catch {
                throw MailError.badSetting("cannot set up TLS for SMTP: \(error)")
            }
        }
    }

    /// RFC 5321 4.5.2: a line of the message that starts with a dot gets another one. The
    /// message already ends with CRLF.
    package static func dotStuffed(_ data: String) -> String {
        var out = data.hasPrefix(".") ? "." + data : data
        out = out.replacingOccurrences(of: "\r\n.", with: "\r\n..")
        return out.hasSuffix("\r\n") ? out : out + "\r\n"
    }

    package func send(_ message: MailMessage) async throws {
        _ = try await deliver(message)
    }

    package func deliver(_ message: MailMessage) async throws -> MailDelivery {
        let data = message.rendered()
        var session = Session(settings: settings, tlsContext: tlsContext, group: group)
        do {
            let accepted = try await session.run(message: message, data: data)
            logger.info("mail sent", metadata: [
                "mail.to": .string(message.to.map(\.address).joined(separator: ",")),
                "mail.server": .string(settings.server),
                "mail.reply": .string(accepted.description),
            ])
            return MailDelivery(
                "accepted by SMTP server \(settings.server) for \(message.to.map(\.address).joined(separator: ", ")): \(accepted)")
        } catch {
            await session.abandon()
            logger.warning("mail not sent", metadata: [
                "mail.to": .string(message.to.map(\.address).joined(separator: ",")),
                "mail.server": .string(settings.server),
                "error": .string("\(error)"),
            ])
            throw error
        }
    }
}

/// One send: the dialogue, step by step, with the deadline of the whole send.
private struct Session {
    let settings: SMTPSettings
    let tlsContext: NIOSSLContext?
    let group: any EventLoopGroup
    let deadline: NIODeadline
    var connection: SMTPConnection?
    var closeTimer: Scheduled<Void>?
    /// Whether QUIT is worth sending when the send is abandoned.
    var dialogueOpen = false

    init(settings: SMTPSettings, tlsContext: NIOSSLContext?, group: any EventLoopGroup) {
        self.settings = settings
        self.tlsContext = tlsContext
        self.group = group
        deadline = .now() + TimeAmount(settings.sendTimeout)
    }

    var server: String { settings.server }

    /// The name checked against the certificate: the host, unless it is an IP address (then
    /// the peer's address is checked against the certificate's IP addresses).
    var serverHostname: String? {
        let h = settings.host
        if h.contains(":") || h.split(separator: ".").count == 4 && h.split(separator: ".").allSatisfy({ UInt8($0) != nil }) { return nil }
        return h
    }

    mutating func run(message: MailMessage, data: String) async throws -> SMTPReply {
        let connectTimeout = min(TimeAmount(settings.connectTimeout), remaining)
        do {
            connection = try await SMTPConnection.connect(
                host: settings.host, port: settings.port, timeout: connectTimeout,
                parser: SMTPReplyParser(maxLineLength: settings.maxReplyLineLength, maxLines: settings.maxReplyLines),
                tls: settings.security == .tls ? tlsContext : nil, serverHostname: serverHostname, group: group)
        } catch {
            throw SMTPError(server: server, step: "connect", reason: .cannotConnect(Self.connectFailure(error)))
        }
        // The whole send's limit also covers a write the server never reads.
        let channel = connection!.channel
        closeTimer = channel.eventLoop.scheduleTask(deadline: deadline) { channel.close(promise: nil) }
        defer { closeTimer?.cancel() }

        _ = try await expect([220], step: "the greeting")
        dialogueOpen = true
        var extensions = try await hello()
        if settings.security == .startTLS {
            guard extensions["STARTTLS"] != nil else {
                throw SMTPError(server: server, step: "EHLO", reason: .noStartTLS)
            }
            _ = try await command("STARTTLS", expect: [220])
            try await connection!.startTLS(tlsContext!, serverHostname: serverHostname)
            extensions = try await hello(step: "EHLO after STARTTLS")
        }
        if let user = settings.user, let password = settings.password {
            try await authenticate(user: user, password: password, offered: extensions["AUTH"] ?? [])
        }
        _ = try await command("MAIL FROM:<\(message.from.address)>", expect: [250])
        for recipient in message.to {
            _ = try await command("RCPT TO:<\(recipient.address)>", expect: [250, 251])
        }
        _ = try await command("DATA", expect: [354])
        try await write(SMTPMailer.dotStuffed(data) + ".\r\n", step: "DATA")
        let accepted = try await expect([250], step: "the message (end of DATA)")
        // The message is the server's now; a failed QUIT changes nothing.
        dialogueOpen = false
        try? await write("QUIT\r\n", step: "QUIT")
        _ = try? await connection!.reply(within: min(.seconds(5), remaining))
        await connection?.close()
        return accepted
    }

    /// After a failure: QUIT if the dialogue is still in order, then close.
    mutating func abandon() async {
        guard let connection else { return }
        if dialogueOpen {
            try? await connection.write("QUIT\r\n")
            _ = try? await connection.reply(within: .seconds(2))
        }
        await connection.close()
    }

    /// EHLO, or HELO if the server refuses EHLO with a 5xx (then no extension is known).
    mutating func hello(step: String = "EHLO") async throws -> [String: [String]] {
        try await write("EHLO \(settings.heloName)\r\n", step: step)
        let reply = try await next(step: step)
        if reply.code == 250 { return reply.extensions }
        guard (500..<600).contains(reply.code) else { throw SMTPError(server: server, step: step, reason: .refused(reply)) }
        _ = try await command("HELO \(settings.heloName)", expect: [250])
        return [:]
    }

    /// AUTH PLAIN if offered, else AUTH LOGIN. The credentials are never in an error: a reply
    /// that echoes them is scrubbed.
    mutating func authenticate(user: String, password: String, offered: [String]) async throws {
        let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
        let secrets = [password, Data(password.utf8).base64EncodedString(), token]
        let scrub = { (reply: SMTPReply) in Self.scrubbed(reply, secrets: secrets) }
        if offered.contains("PLAIN") {
            try await write("AUTH PLAIN \(token)\r\n", step: "AUTH PLAIN")
            let reply = try await next(step: "AUTH PLAIN")
            guard reply.code == 235 else { throw SMTPError(server: server, step: "AUTH PLAIN", reason: .refused(scrub(reply))) }
        } else if offered.contains("LOGIN") {
            for (text, expected) in [("AUTH LOGIN", 334), (Data(user.utf8).base64EncodedString(), 334),
                                     (Data(password.utf8).base64EncodedString(), 235)] {
                try await write(text + "\r\n", step: "AUTH LOGIN")
                let reply = try await next(step: "AUTH LOGIN")
                guard reply.code == expected else { throw SMTPError(server: server, step: "AUTH LOGIN", reason: .refused(scrub(reply))) }
            }
        } else {
            throw SMTPError(server: server, step: "AUTH", reason: .noAuthMechanism(offered: offered))
        }
    }

    /// Sends a command line and reads its reply, which must have one of the codes. The step
    /// in an error is the command with its address, e.g. `RCPT TO <x@y>`.
    mutating func command(_ line: String, expect codes: Set<Int>) async throws -> SMTPReply {
        let step = line.replacingOccurrences(of: ":<", with: " <")
        try await write(line + "\r\n", step: step)
        return try await expect(codes, step: step)
    }

    mutating func expect(_ codes: Set<Int>, step: String) async throws -> SMTPReply {
        let reply = try await next(step: step)
        guard codes.contains(reply.code) else { throw SMTPError(server: server, step: step, reason: .refused(reply)) }
        return reply
    }

    /// The next reply; errors become `SMTPError`s naming the step.
    func next(step: String) async throws -> SMTPReply {
        let wait = min(TimeAmount(settings.replyTimeout), remaining)
        do {
            return try await connection!.reply(within: wait)
        } catch {
            throw mapped(error, step: step, waited: wait)
        }
    }

    func write(_ text: String, step: String) async throws {
        do { try await connection!.write(text) } catch {
            throw mapped(await connection!.firstFailure() ?? error, step: step, waited: .zero)
        }
    }

    var remaining: TimeAmount { max(.zero, deadline - .now()) }

    func mapped(_ error: any Error, step: String, waited: TimeAmount) -> SMTPError {
        if let e = error as? SMTPError { return e }
        if deadline <= .now() { return SMTPError(server: server, step: step, reason: .sendTimedOut(seconds: Self.seconds(settings.sendTimeout))) }
        switch error {
        case is SMTPConnectionTimeout:
            return SMTPError(server: server, step: step, reason: .timedOut(seconds: Double(waited.nanoseconds) / 1e9))
        case is SMTPConnectionClosed, is ChannelError: return SMTPError(server: server, step: step, reason: .closed)
        case let e as SMTPReplyError: return SMTPError(server: server, step: step, reason: .unreadableReply(e))
        case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
            return SMTPError(server: server, step: step, reason: .tls(Self.tlsFailure(error)))
        default: return SMTPError(server: server, step: step, reason: .other(Self.plain(error)))
        }
    }

    /// A reply with any credential (as text or base64) blotted out.
    static func scrubbed(_ reply: SMTPReply, secrets: [String]) -> SMTPReply {
        let forms = secrets.filter { !$0.isEmpty }
        return SMTPReply(code: reply.code, lines: reply.lines.map { line in
            forms.reduce(line) { $0.replacingOccurrences(of: $1, with: "<hidden>") }
        })
    }

    /// Why a connection could not be made, in words: `127.0.0.1:1: Connection refused`.
    static func connectFailure(_ error: any Error) -> String {
        switch error {
        case let e as NIOConnectionError:
            if e.connectionErrors.count == 1 { return plain(e.connectionErrors[0].error) }
            let attempts = e.connectionErrors.map { "\($0.target.ipAddress ?? "?"): \(plain($0.error))" }
            if !attempts.isEmpty { return attempts.joined(separator: "; ") }
            if let dns = e.dnsAError ?? e.dnsAAAAError { return "cannot resolve the host name (\(dns))" }
            return "the host name has no address"
        case ChannelError.connectTimeout(let t): return "no connection within \(Double(t.nanoseconds) / 1e9) s"
        default: return plain(error)
        }
    }

    /// Why TLS failed, in words where the reason is a common one.
    static func tlsFailure(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate was not accepted (CERTIFICATE_VERIFY_FAILED: not signed by a CA we trust, or expired)"
        }
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return "the server's certificate is not valid for this host name (\(error))"
        }
        if text.contains("WRONG_VERSION_NUMBER") { return "the server does not speak TLS on this port (WRONG_VERSION_NUMBER)" }
        return text
    }

    static func plain(_ error: any Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        return String(describing: error)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (s, atto) = duration.components
        self = .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
