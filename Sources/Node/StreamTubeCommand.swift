// The `streamtube` command.
import App
import ArgumentParser
import Foundation
import Transcode

@main
struct StreamTubeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamtube",
        abstract: "StreamTube: a self-hosted live-streaming node.",
        subcommands: [Serve.self, Login.self, Logout.self, Streams.self, Admin.self, Members.self, Keygen.self, ClusterCert.self,
                      MailTest.self, BenchPassword.self, LedgerCommand.self, Ready.self, DoctorCommand.self, Version.self],
        defaultSubcommand: nil)
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the media libraries linked in.")
    func run() {
        print("streamtube \(streamTubeVersion)")
        for (lib, v) in MediaLibraries.versions.sorted(by: { $0.key < $1.key }) { print("\(lib) \(v)") }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a new random cluster key (base64, 32 bytes) for --cluster-key.")
    func run() { print(NodeState.makeClusterKey()) }
}

extension NodeConfiguration {
    /// The node's settings as `serve` reads them (a file, STREAMTUBE_*, flags), for a command run
    /// beside the node; a bad setting is the command's usage error.
    static func forCommand(file: String?, flags: [String]) throws -> NodeConfiguration {
        do { return try load(file: file, environment: ProcessInfo.processInfo.environment, flags: flags) } catch {
            throw ValidationError("\(error)")
        }
    }
}
