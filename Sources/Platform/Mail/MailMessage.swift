// MailMessage: one plain-text message and its RFC 5322 form.
import Foundation

/// A plain-text message from one sender to one or more recipients. Every header value is
/// checked when the message is made: a CR or LF in the subject or an address is an error
/// (`MailError.headerInjection`), so a message that exists can always be rendered and sent.
package struct MailMessage: Sendable, Equatable {
    package let from: MailAddress
    package let to: [MailAddress]
    package let subject: String
    /// Plain text; any line breaks (they are sent as CRLF).
    package let body: String
    package let replyTo: MailAddress?

    package init(from: MailAddress, to: [MailAddress], subject: String, body: String, replyTo: MailAddress? = nil) throws(MailError) {
        guard !to.isEmpty else { throw MailError.noRecipients }
        try MailHeaders.refuseLineBreaks(subject, field: "subject")
        self.from = from
        self.to = to
        self.subject = subject
        self.body = body
        self.replyTo = replyTo
    }

    /// Addresses as text: `addr@domain` or `Name <addr@domain>`.
    package init(from: String, to: [String], subject: String, body: String, replyTo: String? = nil) throws(MailError) {
        var recipients: [MailAddress] = []
        for address in to { recipients.append(try MailAddress(address)) }
        try self.init(from: try MailAddress(from), to: recipients, subject: subject, body: body,
                      replyTo: try replyTo.map { text throws(MailError) in try MailAddress(text) })
    }

    /// A new random Message-ID at the sender's domain: `<32 hex digits@domain>`.
    package func makeMessageID() -> String {
        var rng = SystemRandomNumberGenerator()
        let id = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        return "<\(id)@\(from.domain)>"
    }

    /// The message as it is sent (and kept in the outbox): headers, a blank line, the body in
    /// quoted-printable; CRLF line endings, no line over 998 characters. `messageID` is made
    /// at random unless given (tests give one).
    package func rendered(date: Date = Date(), messageID: String? = nil) -> String {
        var headers: [String] = [
            "Date: " + MailHeaders.date(date),
            "Message-ID: " + (messageID ?? makeMessageID()),
            "From: " + from.headerForm,
            "To: " + to.map(\.headerForm).joined(separator: ",\r\n "),
        ]
        if let replyTo { headers.append("Reply-To: " + replyTo.headerForm) }
        headers += [
            "Subject: " + MailHeaders.unstructured(subject, nameLength: "Subject: ".count),
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + QuotedPrintable.encode(body) + "\r\n"
    }
}
