// `streamtube admin`: tasks on the node's database, run where the node's data folder (or its
// --database) is, without a running node.
import App
import ArgumentParser
import Foundation
import Logging

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Administer the platform's accounts on this node's database.",
                                                    subcommands: [CreateUser.self])

    struct CreateUser: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an account with a password (--admin: the platform's first admin).",
            discussion: "Reads the node's settings as `serve` does (--config, STREAMTUBE_*, --data-dir, --database, ...). "
                + "The password is read from standard input (one line), never from the command line.")
        @Option(help: "The account's email address.") var email: String
        @Option(help: "The name people see (default: the email's local part).") var name: String = ""
        @Flag(help: "Make it an admin.") var admin = false
        @Option(help: "Role: viewer, broadcaster or admin (default broadcaster; --admin means admin).") var role: String?
        @Option(help: "JSON config file, as for serve.") var config: String?
        @Argument(parsing: .allUnrecognized, help: .hidden) var settings: [String] = []

        func run() async throws {
            let config = try NodeConfiguration.forCommand(file: self.config, flags: settings)
            let chosen = admin ? "admin" : (role ?? "broadcaster")
            let password = try Prompt.secret("Password for \(email): ")
            LogSetup.bootstrap(format: config.logFormat, level: "warning")
            do {
                let account = try await AdminTasks.createUser(config, email: email, name: name, password: password, role: chosen,
                                                              logger: Logger(label: "streamtube"))
                print("made \(account.role.rawValue) \(account.email) (id \(account.id)): sign in at /signin")
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }
}

/// Reading a secret: from the terminal without echo, or one line of standard input.
enum Prompt {
    static func secret(_ prompt: String) throws -> String {
        if isatty(STDIN_FILENO) != 0 {
            FileHandle.standardError.write(Data(prompt.utf8))
            var old = termios()
            tcgetattr(STDIN_FILENO, &old)
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
            defer {
                tcsetattr(STDIN_FILENO, TCSANOW, &old)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password given") }
            return line
        }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("no password on standard input (give it as one line)")
        }
        return line
    }

    static func line(_ prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw ValidationError("nothing entered") }
        return line
    }
}
