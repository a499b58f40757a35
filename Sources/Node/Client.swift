// The CLI's side of the operator API: `streams create|list`, `members`.
import App
import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the node is and the operator token to use.
struct Connection: ParsableArguments {
    @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:8080).") var server: String?
    @Option(help: "Admin token (default $STREAMTUBE_ADMIN_TOKEN, else the data folder's admin-token file).") var adminToken: String?
    @Option(help: "Data folder to read the admin token from (default ./data).") var dataDir: String = "./data"

    /// A request to the operator API, its answer decoded as `T` when the status is `expected`.
    func request<T: Decodable>(_ method: String, _ path: String, body: (some Encodable)? = nil as String?,
                               expect expected: Int = 200, as: T.Type) async throws -> T {
        let env = ProcessInfo.processInfo.environment
        let base = server ?? env["STREAMTUBE_SERVER"] ?? "http://127.0.0.1:\(env["STREAMTUBE_HTTP_PORT"] ?? "8080")"
        guard let url = URL(string: base + path) else { throw ValidationError("bad --server \(base)") }
        let token = adminToken ?? env["STREAMTUBE_ADMIN_TOKEN"]
            ?? (try? String(contentsOfFile: dataDir + "/admin-token", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let token, !token.isEmpty else {
            throw ValidationError("no admin token: pass --admin-token, set STREAMTUBE_ADMIN_TOKEN, or run where --data-dir holds admin-token")
        }
        var req = URLRequest(url: url)
        req.httpMethod = method
        req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
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
            throw ValidationError("the node answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return value
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
            let s = try await connection.request("POST", "/api/streams", body: CreateStreamRequest(title: title), expect: 201,
                                                 as: StreamResponse.self)
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
            for s in try await connection.request("GET", "/api/streams", as: [StreamResponse].self) {
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
