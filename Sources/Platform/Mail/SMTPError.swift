// SMTPError: a send that failed, naming the server, the step and the server's reply.

/// Why an SMTP send failed. `description` names the server and the step, e.g. `SMTP server
/// mail.example.com:587 refused RCPT TO <x@y>: 550 no such user`. It never holds the password.
package struct SMTPError: Error, CustomStringConvertible {
    package enum Reason: Sendable {
        /// The server answered the step with an error (or an unexpected) code.
        case refused(SMTPReply)
        case cannotConnect(String)
        /// TLS could not be set up (most often: the certificate is not trusted).
        case tls(String)
        /// No reply to the step within the reply timeout.
        case timedOut(seconds: Double)
        /// The whole send took longer than its limit.
        case sendTimedOut(seconds: Double)
        case closed
        case unreadableReply(SMTPReplyError)
        /// `.startTLS` is required and the server does not offer it.
        case noStartTLS
        /// A user is configured and the server offers no AUTH mechanism we speak.
        case noAuthMechanism(offered: [String])
        case other(String)
    }

    /// `host:port`.
    package let server: String
    /// What was being done: `EHLO`, `STARTTLS`, `AUTH PLAIN`, `RCPT TO <x@y>`, `DATA`...
    package let step: String
    package let reason: Reason

    package init(server: String, step: String, reason: Reason) {
        self.server = server
        self.step = step
        self.reason = reason
    }

    /// Whether the server may have the message: only once it accepted the end of DATA,
    /// which never comes with an error; every failure here means nothing was sent.
    package var description: String {
        switch reason {
        case .refused(let reply): return "SMTP server \(server) refused \(step): \(reply)"
        case .cannotConnect(let why): return "cannot connect to SMTP server \(server): \(why)"
        case .tls(let why):
            return "TLS with SMTP server \(server) failed at \(step): \(why); nothing was sent "
                + "(a server whose CA is not a public one: give its CA with --smtp-ca-file)"
        case .timedOut(let s): return "SMTP server \(server) did not answer \(step) within \(Self.seconds(s))"
        case .sendTimedOut(let s): return "sending through SMTP server \(server) took longer than \(Self.seconds(s)) (at \(step))"
        case .closed: return "SMTP server \(server) closed the connection at \(step)"
        case .unreadableReply(let e): return "SMTP server \(server) sent \(e) at \(step)"
        case .noStartTLS:
            return "SMTP server \(server) does not offer STARTTLS, which smtpSecurity starttls requires; nothing was sent "
                + "(use tls for port 465, or none only for a relay on this machine)"
        case .noAuthMechanism(let offered):
            return "SMTP server \(server) offers no AUTH mechanism we speak (PLAIN or LOGIN) at \(step); it offers: "
                + (offered.isEmpty ? "none" : offered.joined(separator: " "))
        case .other(let why): return "SMTP server \(server), \(step): \(why)"
        }
    }

    private static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}
