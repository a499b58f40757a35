// The CLI's side of the operator API: `streams create|list`, `members`.
import App
import ArgumentParser
import Foundation
import Logging
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the node is and whose credentials to use: the operator token when one is given
/// (--admin-token, $STREAMTUBE_ADMIN_TOKEN), else the personal token `streamtube login` saved
/// for this server, else the data folder's operator token.
struct Connection: ParsableArguments {
    @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:8080).") var server: String?
    @Option(help: "Admin token (default $STREAMTUBE_ADMIN_TOKEN, else your `streamtube login` token, else the data folder's admin-token file).")
    var adminToken: String?
    @Option(help: "Data folder to read the admin token from (default ./data).") var dataDir: String = "./data"

    var base: String {
        let env = ProcessInfo.processInfo.environment
        let raw = server ?? env["STREAMTUBE_SERVER"] ?? "http://127.0.0.1:\(env["STREAMTUBE_HTTP_PORT"] ?? "8080")"
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }

    enum Credential {
        case operatorToken(String)
        case personal(String)
    }

    func credential() throws -> Credential {
        let env = ProcessInfo.processInfo.environment
        if let token = adminToken ?? env["STREAMTUBE_ADMIN_TOKEN"], !token.isEmpty { return .operatorToken(token) }
        if let saved = Credentials.load()[base] { return .personal(saved.token) }
        if let token = (try? String(contentsOfFile: dataDir + "/admin-token", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
            return .operatorToken(token)
        }
        throw ValidationError("not signed in: run `streamtube login --server \(base)`, or pass --admin-token "
                              + "(or STREAMTUBE_ADMIN_TOKEN, or run where --data-dir holds admin-token)")
    }

    /// A request to the operator API (`path`) or, signed in with a personal token, to the
    /// public API (`personalPath`); the answer decoded as `T` when the status is `expected`.
    func request<T: Decodable>(_ method: String, _ path: String, personalPath: String? = nil, body: (some Encodable)? = nil as String?,
                               expect expected: Int = 200, as: T.Type) async throws -> T {
        let token: String
        let route: String
        switch try credential() {
        case .operatorToken(let t): (token, route) = (t, path)
        case .personal(let t):
            guard let personalPath else {
                throw ValidationError("this command needs the operator token: pass --admin-token or set STREAMTUBE_ADMIN_TOKEN")
            }
            (token, route) = (t, personalPath)
        }
        return try await Self.send(method, base: base, path: route, bearer: token, body: body, expect: expected, as: T.self)
    }

    static func send<T: Decodable>(_ method: String, base: String, path: String, bearer: String?, body: (some Encodable)?,
                                   expect expected: Int, as: T.Type) async throws -> T {
        guard let url = URL(string: base + path) else { throw ValidationError("bad --server \(base)") }
        var req = URLRequest(url: url)
        req.httpMethod = method
        req.setValue("streamtube/\(streamTubeVersion)", forHTTPHeaderField: "User-Agent")
        if let bearer { req.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        if let body {
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
            req.httpBody = try JSONEncoder().encode(body)
        }
        let data: Data
        let status: Int
        do {
            let (d, response) = try await URLSession.shared.data(for: req)
            (data, status) = (d, (response as? HTTPURLResponse)?.statusCode ?? 0)
        } catch {
            throw ValidationError("cannot reach the node at \(base): \(error.localizedDescription). Is `streamtube serve` running?")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard status == expected, let value = try? decoder.decode(T.self, from: data) else {
            if let problem = try? decoder.decode(ProblemAnswer.self, from: data) {
                throw ValidationError("the node answered \(status): \(problem.detail)")
            }
            throw ValidationError("the node answered \(status): \(String(decoding: data.prefix(2000), as: UTF8.self))")
        }
        return value
    }
}

struct ProblemAnswer: Decodable {
    var detail: String
}

/// Personal tokens `streamtube login` saved, by server: a JSON file only its owner can read
/// ($STREAMTUBE_CREDENTIALS, else $XDG_CONFIG_HOME/streamtube/credentials.json, else
/// ~/.config/streamtube/credentials.json).
enum Credentials {
    struct Saved: Codable {
        var token: String
        var tokenID: String
        var email: String
    }

    static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["STREAMTUBE_CREDENTIALS"], !p.isEmpty { return p }
        let config = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.config")
        return config + "/streamtube/credentials.json"
    }

    static func load() -> [String: Saved] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        return (try? JSONDecoder().decode([String: Saved].self, from: data)) ?? [:]
    }

    static func save(_ all: [String: Saved]) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(all)
        // Made 0600 before the token is in it.
        FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        try data.write(to: url)
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in to a node with your email and password; saves a personal API token for the other commands.",
        discussion: "The password is read from the terminal without echo, or as one line of standard input.")
    @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:8080).") var server: String?
    @Option(help: "Your account's email (asked for when not given).") var email: String?

    func run() async throws {
        let connection = try Connection.parse(server.map { ["--server", $0] } ?? [])
        let email = try self.email ?? Prompt.line("Email: ")
        let password = try Prompt.secret("Password: ")
        var host = ProcessInfo.processInfo.hostName
        if host.isEmpty { host = "this computer" }
        let made = try await Connection.send("POST", base: connection.base, path: "/api/v1/auth/token", bearer: nil,
                                             body: LoginRequest(email: email, password: password, name: "streamtube CLI on \(host)"),
                                             expect: 201, as: CreatedTokenResponse.self)
        var all = Credentials.load()
        all[connection.base] = .init(token: made.token, tokenID: made.info.id, email: email)
        try Credentials.save(all)
        print("signed in to \(connection.base) as \(email); token saved in \(Credentials.path)")
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke and forget the token `streamtube login` saved for a node.")
    @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:8080).") var server: String?

    func run() async throws {
        let connection = try Connection.parse(server.map { ["--server", $0] } ?? [])
        var all = Credentials.load()
        guard let saved = all[connection.base] else { throw ValidationError("not signed in to \(connection.base)") }
        guard let url = URL(string: connection.base + "/api/v1/tokens/" + saved.tokenID) else { throw ValidationError("bad server") }
        var req = URLRequest(url: url)
        req.httpMethod = "DELETE"
        req.setValue("Bearer \(saved.token)", forHTTPHeaderField: "Authorization")
        // Forgotten here even when the node cannot be reached (the token can be revoked from the settings page).
        let status = (try? await URLSession.shared.data(for: req)).flatMap { ($0.1 as? HTTPURLResponse)?.statusCode }
        all[connection.base] = nil
        try Credentials.save(all)
        print(status == 204 ? "signed out of \(connection.base): the token is revoked"
              : "forgot the token for \(connection.base); the node did not confirm revoking it (revoke it in your settings)")
    }
}

struct Streams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage streams on a running node.", subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a stream; prints its id, key, RTMP URL and watch URL.")
        @Option(help: "The stream's title.") var title: String
        @Flag(help: "Print the answer as JSON.") var json = false
        @OptionGroup var connection: Connection

        func run() async throws {
            let s = try await connection.request("POST", "/api/streams", personalPath: "/api/v1/streams", body: CreateStreamRequest(title: title),
                                                 expect: 201, as: StreamResponse.self)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(s), as: UTF8.self))
                return
            }
            for (k, v) in [("id", s.id), ("key", s.key ?? ""), ("rtmpURL", s.rtmpURL ?? ""), ("watchURL", s.watchURL), ("playlistURL", s.playlistURL)] {
                print("\(k): \(v)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the node's streams.")
        @OptionGroup var connection: Connection

        func run() async throws {
            for s in try await connection.request("GET", "/api/streams", personalPath: "/api/v1/streams", as: [StreamResponse].self) {
                print("\(s.id)\t\((s.live?.state ?? .offline).rawValue)\t\(s.title)\t\(s.watchURL)")
            }
        }
    }
}

struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the cluster's members as a running node sees them.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let cluster = try await connection.request("GET", "/api/cluster", as: ClusterResponse.self)
        print(["ID", "STATUS", "INCARNATION", "REGION", "GOSSIP", "HTTP", "RTT_MS", "LOAD", "STREAMS"].joined(separator: "\t"))
        for m in cluster.members {
            let rtt = m.rttMs.map { String(format: "%.1f", $0) } ?? "-"
            print([m.id, m.status, "\(m.incarnation)", m.region, m.gossipAddress, m.httpAddress, rtt, "\(m.load)", "\(m.streamsOwned)"]
                .joined(separator: "\t"))
        }
    }
}

/// A health check for containers (the image has no curl): asks a node whether it is ready.
struct Ready: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running node whether it takes traffic (/healthz/ready): exits 0 when ready, 1 when not or unreachable.")
    @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:$STREAMTUBE_HTTP_PORT, port 8080).")
    var server: String?

    func run() async throws {
        let base = Connection.parseOrExit(server.map { ["--server", $0] } ?? []).base
        guard let url = URL(string: base + "/healthz/ready") else { throw ValidationError("bad --server \(base)") }
        var req = URLRequest(url: url, timeoutInterval: 5)
        req.setValue("streamtube/\(streamTubeVersion)", forHTTPHeaderField: "User-Agent")
        do {
            let (data, response) = try await URLSession.shared.data(for: req)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let answer = try? JSONDecoder().decode(ReadinessResponse.self, from: data)
            if status == 200, answer?.ready == true {
                print("ready")
                return
            }
            print("not ready: \(answer?.reason ?? "the node answered \(status)")")
        } catch {
            print("not ready: cannot reach \(base): \(error.localizedDescription)")
        }
        throw ExitCode(1)
    }
}

/// `streamtube doctor`: a host checked before its node joins (see `Doctor`).
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host before its node joins: ports, FFmpeg and RocksDB, disk, clock, cluster key, database, seeds, TLS files.",
        discussion: "Reads the node's settings as `serve` does (--config, STREAMTUBE_*, --data-dir, --database, --seeds, ...) and changes "
            + "nothing. Exits 1 when a check fails.")
    @Option(help: "JSON config file, as for serve.") var config: String?
    @Flag(help: "Print the checks as JSON.") var json = false
    @Argument(parsing: .allUnrecognized, help: .hidden) var settings: [String] = []

    func run() async throws {
        let config = try NodeConfiguration.forCommand(file: self.config, flags: settings)
        LogSetup.bootstrap(format: config.logFormat, level: "error")
        let checks = await Doctor.run(config, logger: Logger(label: "doctor"))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(checks), as: UTF8.self))
        } else {
            for c in checks { print("\(c.verdict.rawValue.uppercased().padding(toLength: 5, withPad: " ", startingAt: 0)) \(c.name): \(c.detail)") }
        }
        if checks.contains(where: { $0.verdict == .fail }) { throw ExitCode(1) }
    }
}
