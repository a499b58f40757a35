// `streamtube bench-password`: how long a password hash takes on this machine at a bcrypt cost,
// for an operator choosing --password-cost (each step doubles it). Prints JSON.
import Accounts
import ArgumentParser
import Foundation

struct BenchPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-password",
        abstract: "Measure password hashes per second at a bcrypt cost (what each sign-in and sign-up costs the node).",
        discussion: """
        Runs the node's own hashing for --seconds on --threads threads and prints JSON: hashesPerSecond \
        (all threads), hashesPerSecondPerThread, millisecondsPerHash (a sign-in's wait for its password check). \
        --threads 0 uses every core. Sign-ins are hashed on the node's thread pool, one core each.
        """)

    @Option(help: "bcrypt cost, as --password-cost (12 to 16).") var cost = 12
    @Option(help: "Seconds to hash for, on each thread.") var seconds = 5.0
    @Option(help: "Threads hashing at once (0: one per core).") var threads = 1

    func run() throws {
        let policy: PasswordPolicy
        do { policy = try PasswordPolicy(cost: cost) } catch { throw ValidationError("\(error)") }
        let rate = policy.measure(seconds: seconds, threads: threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : threads)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(rate), as: UTF8.self))
    }
}
