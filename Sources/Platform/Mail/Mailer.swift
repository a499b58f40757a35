// Mailer: what sends the platform's mail, and the choice between SMTP and the outbox.
import Logging

/// Sends a message, or throws (`MailError`, `SMTPError`) and nothing was sent.
package protocol Mailer: Sendable {
    func send(_ message: MailMessage) async throws
    /// Sends and says where the message went (for `streamtube mail-test`). A mailer that has
    /// nothing to say (a test's) need only implement `send`.
    func deliver(_ message: MailMessage) async throws -> MailDelivery
}

extension Mailer {
    package func deliver(_ message: MailMessage) async throws -> MailDelivery {
        try await send(message)
        return MailDelivery("sent")
    }
}

/// Where a message went: `written to /data/outbox/....eml`, `accepted by SMTP server ...: 250 ...`.
package struct MailDelivery: Sendable, Equatable, CustomStringConvertible {
    package let description: String
    /// The file, when the message was written to the outbox.
    package let file: String?

    package init(_ description: String, file: String? = nil) {
        self.description = description
        self.file = file
    }
}

/// The platform's mailer: SMTP when a server is configured, else the outbox folder (the
/// embedded default: nothing leaves the machine, and an operator reads the files).
package func makeMailer(smtp: SMTPSettings?, outboxFolder: String, logger: Logger) throws -> any Mailer {
    if let smtp { return try SMTPMailer(settings: smtp, logger: logger) }
    return try OutboxMailer(folder: outboxFolder, logger: logger)
}
