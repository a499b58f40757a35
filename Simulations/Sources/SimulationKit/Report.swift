// The report of one run: Markdown for people, CSV for tools, SVG plots. Built only from the
// scenario and the measurements (never the wall clock), so one seed gives the same bytes.

import Foundation
import Gossip

/// Renders and writes the outputs of a run.
public struct Report {
    public var scenario: Scenario
    public var config: GossipConfig
    public var metrics: Metrics

    public init(scenario: Scenario, config: GossipConfig, metrics: Metrics) {
        self.scenario = scenario
        self.config = config
        self.metrics = metrics
    }

    var theory: Theory { Theory(n: scenario.nodes, config: config) }
    var measuredSeconds: Double { Double(metrics.endTime - metrics.warmupEnd) / 1e9 }

    func seconds(_ v: Int64?) -> Double? { v.map { Double($0) / 1e9 } }
    func fmt(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "—" }

    public var firstDetections: [Double] { metrics.failures.compactMap { seconds($0.firstDetection) } }
    public var allDead: [Double] { metrics.failures.compactMap { seconds($0.allDead) } }
    public var disseminations: [Double] {
        metrics.failures.compactMap { f in f.allDead.flatMap { a in f.firstDead.map { Double(a - $0) / 1e9 } } }
    }
    public var failoverTimes: [Double] { metrics.failovers.compactMap { seconds($0.agreedAfter) } }

    /// False positives (distinct alive node+incarnation declared dead) per node-hour.
    public var falsePositivesPerNodeHour: Double {
        metrics.upNodeSeconds > 0 ? Double(metrics.falsePositiveIncidents.count) / (metrics.upNodeSeconds / 3600) : 0
    }

    func perNodeSecond(_ v: UInt64) -> Double { metrics.upNodeSeconds > 0 ? Double(v) / metrics.upNodeSeconds : 0 }

    func summaryRow(_ name: String, _ values: [Double], expected: String) -> String {
        guard let s = Summary(values) else { return "| \(name) | 0 | — | — | — | \(expected) |" }
        return "| \(name) | \(s.count) | \(fmt(s.p50)) | \(fmt(s.p95)) | \(fmt(s.max)) | \(expected) |"
    }

    public func markdown() -> String {
        let t = theory
        var o = "# Simulation report: \(scenario.name)\n\n"
        if let d = scenario.description { o += d + "\n\n" }
        o += "| setting | value |\n| --- | --- |\n"
        o += "| seed | \(scenario.seed) |\n| nodes | \(scenario.nodes) |\n"
        o += "| regions | \(metrics.regionNames.joined(separator: ", ")) |\n"
        o += "| simulated | \(fmt(Double(scenario.warmupSeconds ?? 20))) s warm-up + \(fmt(measuredSeconds)) s measured |\n"
        o += "| start | \(scenario.start == "settled" ? "settled (initial dissemination already over)" : "joined (every node gossips the member list it was handed)") |\n"
        o += "| preset | \(scenario.preset ?? "lan"), Lifeguard \(scenario.lifeguard == false ? "off (awarenessMaxMultiplier 0, suspicionMaxTimeoutMult 1)" : "on") |\n"
        o += "| probe interval / timeout | \(fmt(config.probeInterval.seconds)) s / \(fmt(config.probeTimeout.seconds)) s |\n"
        o += "| gossip interval / nodes | \(fmt(config.gossipInterval.seconds)) s / \(config.gossipNodes) |\n"
        o += "| suspicion timeout min / max | \(fmt(t.suspicionMin)) s / \(fmt(t.suspicionMax)) s |\n"
        o += "| network | loss \(scenario.network?.loss ?? 0), duplicate \(scenario.network?.duplicate ?? 0), reorder \(scenario.network?.reorder ?? 0), jitter \(scenario.network?.jitterMs ?? 0) ms |\n"
        o += "| streams | \(scenario.streams ?? 1000) |\n\n"

        o += "## Failure detection\n\n"
        o += "Crashes: \(metrics.failures.count) (restarts: \(metrics.restarts)). Times in seconds after the crash.\n\n"
        o += "| measure | n | p50 | p95 | max | expected |\n| --- | --- | --- | --- | --- | --- |\n"
        o += summaryRow("first detection (first suspicion)", firstDetections, expected: "\(fmt(t.firstDetection)) (e/(e−1)·T + T; first probe e/(e−1)·T = \(fmt(t.firstProbe)))") + "\n"
        o += summaryRow("first declared dead", metrics.failures.compactMap { seconds($0.firstDead) }, expected: "detection + \(fmt(t.suspicionMin))…\(fmt(t.suspicionMax)) (suspicion timeout)") + "\n"
        o += summaryRow("dissemination (first dead → all dead)", disseminations, expected: "\(fmt(t.dissemination)) (log_{f+1}N + ln N/f = \(fmt(t.disseminationRounds)) gossip rounds; SWIM: O(log N), piggyback limit \(t.swimPiggybackPeriods) periods)") + "\n"
        o += summaryRow("full dissemination (crash → all alive nodes hold it dead)", allDead, expected: "≤ \(fmt(t.lifeguardDetectionBound)) (Lifeguard bound)") + "\n\n"
        let unfinished = metrics.failures.filter { $0.allDead == nil }
        if !unfinished.isEmpty {
            o += "Not known dead everywhere by the end or before the node restarted: \(unfinished.count) "
            o += "(restarted first: \(unfinished.filter(\.restartedBeforeAllKnew).count)).\n\n"
        }

        o += "## False positives\n\n"
        o += "| measure | value |\n| --- | --- |\n"
        o += "| alive nodes declared dead (distinct node+incarnation) | \(metrics.falsePositiveIncidents.count) |\n"
        o += "| per node-hour | \(String(format: "%.4f", falsePositivesPerNodeHour)) |\n"
        o += "| observer-level dead declarations about alive nodes | \(metrics.falseDeathDeclarations) |\n"
        o += "| observer-level suspicions of alive nodes | \(metrics.falseSuspicions) |\n"
        o += "| dead declarations across a partition (not counted above) | \(metrics.partitionDeathDeclarations) |\n"
        o += "| node-hours observed | \(String(format: "%.3f", metrics.upNodeSeconds / 3600)) |\n\n"

        o += "## Traffic (after warm-up, per alive node per second)\n\n"
        o += "Bytes are sealed-packet sizes: codec size + \(Keyring.overhead) bytes of AES-GCM overhead (packets are not encrypted in the simulator).\n\n"
        o += "| measure | value |\n| --- | --- |\n"
        o += "| datagrams | \(String(format: "%.3f", perNodeSecond(metrics.datagrams))) |\n"
        o += "| messages | \(String(format: "%.3f", perNodeSecond(metrics.messages))) |\n"
        o += "| datagram bytes | \(String(format: "%.1f", perNodeSecond(metrics.datagramBytes))) |\n"
        o += "| full-state exchanges | \(String(format: "%.4f", perNodeSecond(metrics.fullStates))) |\n"
        o += "| full-state bytes | \(String(format: "%.1f", perNodeSecond(metrics.fullStateBytes))) |\n"
        o += "| largest datagram | \(metrics.maxDatagram) B (limit \(config.maxPacketSize)) |\n"
        o += "| datagrams lost / duplicated | \(metrics.datagramsLost) / \(metrics.datagramsDuplicated) |\n\n"

        o += "## Partitions\n\n"
        if metrics.partitions.isEmpty {
            o += "None.\n\n"
        } else {
            o += "| partition | at | healed at | converged after heal |\n| --- | --- | --- | --- |\n"
            for p in metrics.partitions {
                o += "| \(p.description) | \(formatSeconds(p.at)) | \(p.healedAt.map(formatSeconds) ?? "—") | \(p.convergedAfterHeal.map(formatSeconds) ?? "not converged") |\n"
            }
            o += "\n"
        }

        o += "## Stream ownership\n\n"
        o += "Owner of a stream = `HashRing.placement(for:)` over the members a node holds alive.\n\n"
        o += "| measure | n | p50 | p95 | max | expected |\n| --- | --- | --- | --- | --- | --- |\n"
        o += summaryRow("failover (owner crash → all alive nodes agree on a new alive owner)", failoverTimes, expected: "≈ full dissemination") + "\n\n"
        o += "Failovers not agreed by the end: \(metrics.failovers.filter { $0.agreedAfter == nil }.count). "
        o += "Owner changes with a cause (old or new owner crashed or restarted): \(metrics.churnWithCause); "
        o += "**without a cause**: \(metrics.churnWithoutCause).\n\n"

        o += "## Invariants\n\n"
        if metrics.violations.isEmpty {
            o += "No violations.\n\n"
        } else {
            o += "\(metrics.violations.count) violations:\n\n"
            for v in metrics.violations.prefix(50) { o += "- \(v)\n" }
            if metrics.violations.count > 50 { o += "- … \(metrics.violations.count - 50) more in violations.csv\n" }
            o += "\n"
        }
        o += "At the end: \(metrics.finalConverged) of \(metrics.finalUp) alive nodes hold exactly the alive nodes.\n\n"
        o += "## Plots\n\n![detection](detection.svg)\n\n![convergence](convergence.svg)\n"
        return o
    }

    public func csvFiles() -> [(name: String, text: String)] {
        var failures = "node,crashed_at_s,first_detection_s,first_dead_s,all_dead_s,restarted_before_all_knew\n"
        for f in metrics.failures {
            failures += "\(f.node),\(fmt(seconds(f.crashedAt))),\(fmt(seconds(f.firstDetection))),\(fmt(seconds(f.firstDead))),\(fmt(seconds(f.allDead))),\(f.restartedBeforeAllKnew)\n"
        }
        failures = failures.replacingOccurrences(of: "—", with: "")
        var timeline = "time_s,up,converged_fraction,distinct_views,agreed_streams,datagrams\n"
        for p in metrics.timeline {
            timeline += "\(fmt(seconds(p.time))),\(p.up),\(String(format: "%.4f", p.converged)),\(p.views),\(p.agreedStreams),\(p.datagrams)\n"
        }
        var failovers = "stream,old_owner,crashed_at_s,agreed_after_s,new_owner\n"
        for f in metrics.failovers {
            failovers += "\(f.stream),\(f.owner),\(fmt(seconds(f.crashedAt))),\(f.agreedAfter.map { fmt(seconds($0)) } ?? ""),\(f.newOwner.map(String.init) ?? "")\n"
        }
        var violations = "time_s,invariant,detail\n"
        for v in metrics.violations {
            violations += "\(fmt(seconds(v.time))),\(v.invariant),\"\(v.detail.replacingOccurrences(of: "\"", with: "'"))\"\n"
        }
        let fd = Summary(firstDetections), ad = Summary(allDead), fo = Summary(failoverTimes)
        var summary = "metric,value\n"
        summary += "nodes,\(scenario.nodes)\nseed,\(scenario.seed)\ncrashes,\(metrics.failures.count)\n"
        summary += "first_detection_p50_s,\(fmt(fd?.p50))\nfirst_detection_p95_s,\(fmt(fd?.p95))\nfirst_detection_max_s,\(fmt(fd?.max))\n"
        summary += "full_dissemination_p50_s,\(fmt(ad?.p50))\nfull_dissemination_p95_s,\(fmt(ad?.p95))\nfull_dissemination_max_s,\(fmt(ad?.max))\n"
        summary += "expected_first_detection_s,\(fmt(theory.firstDetection))\nexpected_dissemination_s,\(fmt(theory.dissemination))\n"
        summary += "false_positives,\(metrics.falsePositiveIncidents.count)\nfalse_positives_per_node_hour,\(String(format: "%.4f", falsePositivesPerNodeHour))\n"
        summary += "datagrams_per_node_s,\(String(format: "%.3f", perNodeSecond(metrics.datagrams)))\nmessages_per_node_s,\(String(format: "%.3f", perNodeSecond(metrics.messages)))\n"
        summary += "bytes_per_node_s,\(String(format: "%.1f", perNodeSecond(metrics.datagramBytes + metrics.fullStateBytes)))\n"
        summary += "failover_p50_s,\(fmt(fo?.p50))\nfailover_p95_s,\(fmt(fo?.p95))\nfailover_max_s,\(fmt(fo?.max))\n"
        summary += "churn_without_cause,\(metrics.churnWithoutCause)\nviolations,\(metrics.violations.count)\n"
        summary = summary.replacingOccurrences(of: "—", with: "")
        return [("summary.csv", summary), ("failures.csv", failures), ("timeline.csv", timeline), ("failovers.csv", failovers), ("violations.csv", violations)]
    }

    public func svgFiles() -> [(name: String, text: String)] {
        let detection = SVGChart(
            title: "\(scenario.name): failure detection (CDF)", xLabel: "seconds after crash", yLabel: "fraction of crashes",
            series: [
                .init(name: "first detection", points: SVGChart.cdf(firstDetections), color: "#1f77b4", step: true),
                .init(name: "all nodes hold it dead", points: SVGChart.cdf(allDead), color: "#d62728", step: true),
                .init(name: "stream failover", points: SVGChart.cdf(failoverTimes), color: "#2ca02c", step: true),
            ], yRange: 0...1)
        var convergence = SVGChart(
            title: "\(scenario.name): nodes whose view is exact", xLabel: "simulated seconds", yLabel: "fraction of alive nodes",
            series: [
                .init(name: "exact view", points: metrics.timeline.map { (Double($0.time) / 1e9, $0.converged) }, color: "#1f77b4")
            ], yRange: 0...1)
        var marks: [(x: Double, label: String)] = [(Double(metrics.warmupEnd) / 1e9, "warm-up end")]
        for p in metrics.partitions {
            marks.append((Double(p.at) / 1e9, "partition"))
            if let h = p.healedAt { marks.append((Double(h) / 1e9, "heal")) }
        }
        if metrics.failures.count <= 20 { for f in metrics.failures { marks.append((Double(f.crashedAt) / 1e9, "crash")) } }
        convergence.markers = marks
        return [("detection.svg", detection.render()), ("convergence.svg", convergence.render())]
    }

    /// Writes report.md, the CSV files and the SVG plots into `directory`.
    public func write(to directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try markdown().write(to: directory.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
            for (name, text) in csvFiles() + svgFiles() {
                try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
            }
        } catch {
            throw SimulationError.io("\(directory.path): \(error)")
        }
    }
}
