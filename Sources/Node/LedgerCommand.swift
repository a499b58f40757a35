// `streamtube ledger verify`: checks, on the node's database, that every transaction of the
// ledger balances; exits 0 only then (for monitoring and after a restore).
import App
import ArgumentParser
import Foundation
import Logging
import Payments

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ledger", abstract: "The payments ledger on this node's database.",
                                                    subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that every ledger transaction balances; exit 0 only when every one does.",
            discussion: "Reads the node's settings as `serve` does (--config, STREAMTUBE_*, --data-dir, --database, ...).")
        @Option(help: "JSON config file, as for serve.") var config: String?
        @Argument(parsing: .allUnrecognized, help: .hidden) var settings: [String] = []

        func run() async throws {
            let config = try NodeConfiguration.forCommand(file: self.config, flags: settings)
            LogSetup.bootstrap(format: config.logFormat, level: "warning")
            let report: LedgerReport
            do { report = try await AdminTasks.verifyLedger(config, logger: Logger(label: "streamtube")) } catch {
                throw ValidationError("\(error)")
            }
            print(report)
            if !report.isBalanced { throw ExitCode(1) }
        }
    }
}
