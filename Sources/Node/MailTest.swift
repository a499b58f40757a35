// `streamtube mail-test`: sends one message with the node's mail settings.
import App
import ArgumentParser
import Foundation
import Logging

struct MailTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail-test",
        abstract: "Send a test message with the node's mail settings (the same as serve's), and say where it went.",
        discussion: """
        Reads the settings as `serve` does: defaults, a JSON file (--config or STREAMTUBE_CONFIG), \
        environment variables, and serve's options (--smtp-host, --smtp-port, --smtp-security, \
        --smtp-user, --smtp-password, --smtp-ca-file, --mail-from, --data-dir...). With no SMTP host, \
        the message is written to DATA_DIR/outbox. Exits non-zero if the message was not sent.
        """)

    @Option(help: "The address to send the test message to.")
    var to: String
    @Option(help: "JSON config file with serve's settings.")
    var config: String?
    /// Every other option: serve's settings, parsed from their one table.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func run() async throws {
        let config = try NodeConfiguration.forCommand(file: self.config, flags: settings)
        LogSetup.bootstrap(format: config.logFormat, level: config.logLevel)
        do {
            let delivery = try await config.sendTestMail(to: to, logger: Logger(label: "streamtube.mail"))
            print("test message to \(to) \(delivery)")
        } catch {
            FileHandle.standardError.write(Data("mail-test: not sent: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
