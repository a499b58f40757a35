// streamtube-sim: runs a scenario file through the deterministic cluster simulator and
// writes report.md, CSV files and SVG plots. Exits non-zero when an invariant was broken.

import ArgumentParser
import Foundation
import SimulationKit

@main
struct StreamTubeSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamtube-sim",
        abstract: "Simulate a StreamTube cluster (real gossip code, virtual clock and network).")

    @Argument(help: "Scenario JSON files (Simulations/scenarios/*.json).")
    var scenarios: [String]

    @Option(name: .shortAndLong, help: "Output folder; each scenario writes into a subfolder named after it.")
    var output: String = "sim-out"

    @Option(help: "Override the scenario's seed.")
    var seed: UInt64?

    @Option(help: "Override the number of nodes.")
    var nodes: Int?

    @Option(help: "Override the measured duration (simulated seconds).")
    var duration: Double?

    @Option(help: "Override how the cluster starts: joined (every node gossips the member list it was handed) or settled.")
    var start: String?

    @Flag(help: "Show a progress bar on stderr even when it is not a terminal.")
    var progress = false

    @Flag(name: .customLong("no-progress"), help: "Never show the progress bar.")
    var noProgress = false

    mutating func run() throws {
        var failed = false
        for path in scenarios {
            var scenario = try Scenario.load(from: URL(fileURLWithPath: path))
            if let s = seed { scenario.seed = s }
            if let n = nodes { scenario.nodes = n }
            if let d = duration { scenario.durationSeconds = d }
            if let s = start { scenario.start = s }
            let sim = try Simulation(scenario: scenario)
            let bar = ProgressBar(label: scenario.name, enabled: !noProgress && (progress || isatty(2) != 0))
            let start = Date()
            let warmupFraction = (scenario.warmupSeconds ?? 20) / ((scenario.warmupSeconds ?? 20) + scenario.durationSeconds)
            nonisolated(unsafe) var warmupDone: Date?
            sim.onProgress = { f in
                bar.update(f)
                if warmupDone == nil, f >= warmupFraction { warmupDone = Date() }
            }
            let metrics = sim.run()
            let wall = Date().timeIntervalSince(start)
            bar.done()
            let report = Report(scenario: scenario, config: sim.config, metrics: metrics)
            let dir = URL(fileURLWithPath: output).appendingPathComponent(scenario.name)
            try report.write(to: dir)
            let simulated = Double(metrics.endTime) / 1e9
            let line = String(
                format: "%@: %d nodes, %.0f s simulated in %.1f s wall (%.1f× real time), %d violations -> %@\n",
                scenario.name, scenario.nodes, simulated, wall, simulated / max(wall, 1e-9), metrics.violations.count, dir.path)
            FileHandle.standardError.write(Data(line.utf8))
            if let w = warmupDone {
                let warm = w.timeIntervalSince(start)
                let measured = max(wall - warm, 1e-9)
                let after = String(
                    format: "  warm-up %.1f s wall; measured part: %.0f s simulated in %.1f s wall (%.1f× real time)\n",
                    warm, scenario.durationSeconds, measured, scenario.durationSeconds / measured)
                FileHandle.standardError.write(Data(after.utf8))
            }
            for v in metrics.violations.prefix(10) { FileHandle.standardError.write(Data("  violation: \(v)\n".utf8)) }
            if !metrics.violations.isEmpty { failed = true }
        }
        if failed { throw ExitCode(2) }
    }
}
