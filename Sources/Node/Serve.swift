// `streamtube serve`: runs a node.
import App
import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import Transcode

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node: RTMP ingest, LL-HLS delivery, the operator API and the watch page.",
        discussion: """
        Settings come from, lowest first: defaults, a JSON file (--config or STREAMTUBE_CONFIG), \
        environment variables, and these options:

        \(NodeConfiguration.helpText)
        """)

    @Option(help: "JSON config file with the same settings (keys: the file keys below).")
    var config: String?
    /// Every other option: the settings, parsed from their one table.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func resolvedConfiguration(environment: [String: String]) throws -> NodeConfiguration {
        try NodeConfiguration.load(file: config, environment: environment, flags: settings)
    }

    func run() async throws {
        let config: NodeConfiguration
        do { config = try resolvedConfiguration(environment: ProcessInfo.processInfo.environment) } catch {
            throw ValidationError("\(error)")
        }
        LogSetup.bootstrap(format: config.logFormat, level: config.logLevel)
        MediaLibraries.quietLogs()
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
        let app: NodeApplication
        do { app = try await buildApplication(config, metrics: metrics) } catch {
            throw ValidationError("\(error)")
        }
        if app.state.tokenIsNew {
            // Printed once, when it is made; it is kept in the data folder for later starts.
            // Written at once, not when the buffer fills: a container's or systemd's log shows it while the node runs.
            FileHandle.standardOutput.write(Data("""
            Admin token (kept in \(app.state.tokenFile), shown only now):
              \(app.state.adminToken)

            """.utf8))
        }
        try await app.run()
    }
}
