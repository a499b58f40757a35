// The node's mail settings as a mailer: SMTP when smtpHost is set, else DATA_DIR/outbox.
import Foundation
import Logging
import Mail

extension NodeConfiguration {
    /// The SMTP settings, or nil when no SMTP host is set (empty or `none`): mail then goes to
    /// the outbox folder.
    package func smtpSettings() throws -> SMTPSettings? {
        guard let host = smtpHost?.trimmingCharacters(in: .whitespaces), !host.isEmpty, host.lowercased() != "none" else {
            return nil
        }
        var settings = SMTPSettings(host: host, port: smtpPort, security: try SMTPSettings.Security(setting: smtpSecurity),
                                    user: smtpUser.flatMap { $0.isEmpty ? nil : $0 },
                                    password: smtpPassword.flatMap { $0.isEmpty ? nil : $0 },
                                    caFile: smtpCAFile.flatMap { $0.isEmpty ? nil : $0 })
        settings.heloName = heloName
        try settings.validate()
        return settings
    }

    /// The name this node gives in EHLO: the public URL's host, else the public host, else
    /// this machine's name.
    var heloName: String {
        if let url = publicURL.flatMap(URL.init(string:)), let host = url.host, !host.isEmpty { return host }
        if let publicHost, !publicHost.isEmpty { return publicHost }
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty ? "localhost" : name
    }

    /// Where mail is written when no SMTP server is set.
    package var outboxFolder: String { (dataDir as NSString).appendingPathComponent("outbox") }

    /// The sender of the platform's mail (`mailFrom`).
    package func mailSender() throws -> MailAddress {
        do { return try MailAddress(mailFrom) } catch {
            throw MailError.badSetting("mailFrom \"\(mailFrom)\": \(error)")
        }
    }

    /// The platform's mailer, from these settings.
    package func mailer(logger: Logger) throws -> any Mailer {
        try makeMailer(smtp: try smtpSettings(), outboxFolder: outboxFolder, logger: logger)
    }

    /// `streamtube mail-test`: one test message to `address`, through the mailer these settings
    /// make; says where it went, or throws the error that stopped it.
    package func sendTestMail(to address: String, logger: Logger) async throws -> MailDelivery {
        let chosen = try mailer(logger: logger)
        let via = try smtpSettings().map(\.description) ?? "the outbox \(outboxFolder)"
        let message = try MailMessage(
            from: try mailSender(), to: [try MailAddress(address)], subject: "StreamTube mail test",
            body: """
            This is a test message from StreamTube, sent with `streamtube mail-test` to check
            the node's mail settings (\(via)).

            If you can read this, the platform's mail (address verification, password resets)
            will reach people.
            """)
        return try await chosen.deliver(message)
    }
}
