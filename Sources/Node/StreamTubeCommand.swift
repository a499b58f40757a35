// The `streamtube` command: `serve` runs a node; `streams create|list` talk to a running node.
import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Edge
import Gossip
import Hummingbird
import Logging
import Metrics
import Origin
import Prometheus
import ServiceLifecycle

@main
struct StreamTubeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamtube",
        abstract: "StreamTube: a self-hosted live-streaming node.",
        subcommands: [Serve.self, Streams.self, Members.self, Keygen.self, Version.self],
        defaultSubcommand: nil)
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the media libraries linked in.")
    static let version = "0.1.0"
    func run() {
        print("streamtube \(Self.version)")
        for (lib, v) in MediaLibraries.versions.sorted(by: { $0.key < $1.key }) { print("\(lib) \(v)") }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node: RTMP ingest, LL-HLS delivery, the operator API and the watch page.",
        discussion: """
        Settings come from, lowest first: defaults, a JSON file (--config or STREAMTUBE_CONFIG), \
        environment variables (STREAMTUBE_HTTP_PORT, STREAMTUBE_RTMP_PORT, STREAMTUBE_DATA_DIR, \
        STREAMTUBE_NODE_ID, STREAMTUBE_REGION, STREAMTUBE_ADMIN_TOKEN, ...), and these flags.
        """)

    @Option(help: "JSON config file with the same settings (keys: \(NodeConfiguration.keys.joined(separator: ", "))).")
    var config: String?
    @Option(help: "Address to listen on (default 0.0.0.0).") var host: String?
    @Option(help: "HTTP port (default 8080).") var httpPort: Int?
    @Option(help: "RTMP port (default 1935).") var rtmpPort: Int?
    @Option(help: "Folder for the SQLite file, the cache and node state (default ./data).") var dataDir: String?
    @Option(help: "This node's id (default: made once and kept in the data folder).") var nodeId: String?
    @Option(help: "Region this node runs in (default local).") var region: String?
    @Option(help: "Token for the operator API (default: made once, printed, kept in the data folder).") var adminToken: String?
    @Option(help: "Host name to put in stream URLs (default: the Host the request came to).") var publicHost: String?
    @Option(help: "LL-HLS part duration in seconds (default 0.5).") var partTarget: Double?
    @Option(help: "Segment duration in seconds (default 2).") var segmentTarget: Double?
    @Option(help: "Log format: text or json (default text).") var logFormat: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error (default info).") var logLevel: String?
    @Option(help: "Gossip port, UDP and TCP (default 7946).") var gossipPort: Int?
    @Option(help: "Nodes to join through: host:port,host:port (their gossip ports).") var seeds: String?
    @Option(help: "Cluster key(s), base64, comma-separated; the first encrypts (default: made once, kept in the data folder).") var clusterKey: String?
    @Option(help: "Cluster name; nodes of other clusters are ignored (default streamtube).") var clusterName: String?
    @Option(help: "Address other nodes reach this one at (default --public-host, else 127.0.0.1).") var advertiseHost: String?
    @Option(help: "Gossip timing preset: lan, wan or local (default lan).") var gossipPreset: String?
    @Option(help: "Relative capacity for stream ownership (default 1; 0 takes no streams).") var capacity: Int?
    @Option(help: "Transcoding ladder, name:height:kbps[:maxkbps],... or none (default 720p:720:3000,480p:480:1400,360p:360:800).") var ladder: String?
    @Option(help: "x264 preset for the ladder (default veryfast).") var x264Preset: String?
    @Option(help: "x264 threads per rendition (default 1).") var transcodeThreads: Int?
    @Option(help: "Edge cache memory budget in MiB (default 256).") var cacheMemoryMb: Int?
    @Option(help: "Edge cache disk budget in MiB (default 4096).") var cacheDiskMb: Int?
    @Option(help: "SQLite file for stream records (default DATA_DIR/streamtube.sqlite; nodes on one machine may share one).") var database: String?

    func resolvedConfiguration(environment: [String: String]) throws -> NodeConfiguration {
        var c = try NodeConfiguration.load(file: config, environment: environment)
        if let host { c.host = host }
        if let httpPort { c.httpPort = httpPort }
        if let rtmpPort { c.rtmpPort = rtmpPort }
        if let dataDir { c.dataDir = dataDir }
        if let nodeId { c.nodeID = nodeId }
        if let region { c.region = region }
        if let adminToken { c.adminToken = adminToken }
        if let publicHost { c.publicHost = publicHost }
        if let partTarget { c.partTarget = partTarget }
        if let segmentTarget { c.segmentTarget = segmentTarget }
        if let logFormat { c.logFormat = logFormat }
        if let logLevel { c.logLevel = logLevel }
        if let gossipPort { c.gossipPort = gossipPort }
        if let seeds { c.seeds = seeds }
        if let clusterKey { c.clusterKey = clusterKey }
        if let clusterName { c.clusterName = clusterName }
        if let advertiseHost { c.advertiseHost = advertiseHost }
        if let gossipPreset { c.gossipPreset = gossipPreset }
        if let capacity { c.capacity = capacity }
        if let ladder { c.ladder = ladder }
        if let x264Preset { c.x264Preset = x264Preset }
        if let transcodeThreads { c.transcodeThreads = transcodeThreads }
        if let database { c.database = database }
        if let cacheMemoryMb { c.cacheMemoryMB = cacheMemoryMb }
        if let cacheDiskMb { c.cacheDiskMB = cacheDiskMb }
        return c
    }

    func run() async throws {
        let config: NodeConfiguration
        do { config = try resolvedConfiguration(environment: ProcessInfo.processInfo.environment) } catch {
            throw ValidationError("\(error)")
        }
        guard ["text", "json"].contains(config.logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard (0...65535).contains(config.httpPort), (0...65535).contains(config.rtmpPort) else {
            throw ValidationError("ports must be between 0 and 65535")
        }
        let packaging = PackagingSettings(partTarget: config.partTarget, segmentTarget: config.segmentTarget,
                                          windowSegments: config.windowSegments)
        do { try packaging.validate() } catch { throw ValidationError("\(error)") }

        let seedList: [Endpoint]
        let gossipConfig: GossipConfig
        let transcode: TranscodeSettings?
        do {
            seedList = try config.seedEndpoints()
            gossipConfig = try config.gossipConfig()
            transcode = try config.transcodeSettings()
        } catch { throw ValidationError("\(error)") }
        guard (0...65535).contains(config.gossipPort), config.capacity >= 0 else {
            throw ValidationError("--gossip-port must be a port number and --capacity at least 0")
        }

        LogSetup.bootstrap(format: config.logFormat, level: config.logLevel)
        MediaLibraries.quietLogs()
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))

        let node = try NodeState.prepare(dataDir: config.dataDir, nodeID: config.nodeID, adminToken: config.adminToken)
        var nodeLogger = Logger(label: "streamtube")
        nodeLogger[metadataKey: "node"] = "\(node.nodeID)"
        let logger = nodeLogger
        if node.tokenIsNew {
            // Printed once, when it is made; it is kept in the data folder for later starts.
            print("""
            Admin token (kept in \(node.tokenFile), shown only now):
              \(node.adminToken)
            """)
        }

        let keyring: Keyring
        do {
            keyring = try NodeConfiguration.decodeKeys(config.clusterKey ?? node.clusterKey())
        } catch { throw ValidationError("\(error)") }

        let store = try await StreamStore.open(path: config.database ?? node.databasePath, logger: logger)
        let registry = StreamRegistry(store: store, packaging: packaging, ladder: transcode, logger: logger)
        try await registry.load()

        let info = NodeInfo(nodeID: node.nodeID, region: config.region, rtmpPort: config.rtmpPort,
                            httpPort: config.httpPort, publicHost: config.publicHost)

        let advertise = config.advertiseHost ?? config.publicHost ?? "127.0.0.1"
        let metadata = MemberMetadata(
            id: NodeID(node.nodeID),
            gossipAddress: Endpoint(host: advertise, port: UInt16(config.gossipPort)),
            httpAddress: Endpoint(host: advertise, port: UInt16(config.httpPort)),
            rtmpAddress: Endpoint(host: advertise, port: UInt16(config.rtmpPort)),
            region: config.region, capacity: UInt32(config.capacity), load: 0, softwareVersion: Version.version)
        let gossip = GossipNode(settings: GossipSettings(bindHost: config.host, port: config.gossipPort, seeds: seedList,
                                                         config: gossipConfig, keyring: keyring),
                                local: metadata, logger: logger, load: { registry.liveCount })
        let clusterRouter = ClusterRouter(view: gossip.view, region: config.region)
        let relayAuth = RelayAuth(clusterKey: keyring.primaryKey)
        let rtmpControl = RTMPControl()
        let edge = EdgeProxy(router: clusterRouter,
                             cache: EdgeStore(directory: URL(fileURLWithPath: node.cacheDir), memoryBudget: config.cacheMemoryMB << 20,
                                              diskBudget: config.cacheDiskMB << 20) { message in
                                 logger.warning("edge store", metadata: ["detail": "\(message)"])
                             },
                             localID: node.nodeID, logger: logger)
        registry.lookUpPeers { query in
            await PeerRecords.lookup(query, router: clusterRouter, client: edge.client, auth: relayAuth, localID: node.nodeID)
        }
        let replicator = Replicator(router: clusterRouter, client: edge.client, auth: relayAuth, localID: node.nodeID, logger: logger)
        let rtmp = RTMPServer(host: config.host, port: config.rtmpPort, registry: registry,
                              cluster: IngestCluster(router: clusterRouter, auth: relayAuth, replicator: replicator),
                              control: rtmpControl, logger: logger)
        let router = HTTPRoutes.build(registry: registry, info: info, adminToken: node.adminToken, metrics: metrics,
                                      cluster: gossip.view, edge: edge, replicaAuth: relayAuth, logger: logger)
        // Cached media is answered on the event loop, in front of the router.
        let fastPath: MediaFastPath.Lookup = { path in
            edge.cachedMedia(path: path) { registry.record(id: $0) != nil }
        }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [MediaFastPath(lookup: fastPath)])),
            configuration: .init(address: .hostname(config.host, port: config.httpPort), serverName: "streamtube"),
            onServerRunning: { channel in
                logger.info("node ready", metadata: [
                    "http": "\(channel.localAddress?.description ?? "?")", "rtmpPort": "\(config.rtmpPort)",
                    "dataDir": "\(config.dataDir)", "region": "\(config.region)", "streams": "\(registry.all.count)",
                    "gossipPort": "\(config.gossipPort)",
                ])
            },
            logger: logger)
        // Shut down in reverse order: the handover first (while everything still runs), then
        // the HTTP server, gossip and RTMP.
        let handover = HandoverService(gossip: gossip, rtmp: rtmpControl, replicator: replicator, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: rtmp), .init(service: gossip), .init(service: app), .init(service: handover)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await edge.shutdown()
        await store.close()
    }
}

/// Node state kept in the data folder: its id, the admin token, the database and cache paths.
struct NodeState {
    var nodeID: String
    var adminToken: String
    var tokenIsNew: Bool
    var tokenFile: String
    var databasePath: String
    var cacheDir: String
    var dataDir: URL

    static func prepare(dataDir: String, nodeID: String?, adminToken: String?) throws -> NodeState {
        let fm = FileManager.default
        let base = URL(fileURLWithPath: dataDir)
        let cache = base.appendingPathComponent("cache")
        do {
            try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create the data folder \(dataDir): \(error.localizedDescription)")
        }
        func readOrMake(_ name: String, make: () -> String) throws -> (String, Bool) {
            let url = base.appendingPathComponent(name)
            if let s = try? String(contentsOf: url, encoding: .utf8) {
                let v = s.trimmingCharacters(in: .whitespacesAndNewlines)
                if !v.isEmpty { return (v, false) }
            }
            let v = make()
            try Data((v + "\n").utf8).write(to: url, options: .atomic)
            try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
            return (v, true)
        }
        let id = try nodeID ?? readOrMake("node-id") { "node-" + StreamRegistry.randomID(length: 8) }.0
        let tokenFile = base.appendingPathComponent("admin-token").path
        var token = adminToken ?? ""
        var isNew = false
        if adminToken == nil {
            (token, isNew) = try readOrMake("admin-token") { StreamRegistry.randomKey() + StreamRegistry.randomKey() }
        }
        return NodeState(nodeID: id, adminToken: token, tokenIsNew: isNew, tokenFile: tokenFile,
                         databasePath: base.appendingPathComponent("streamtube.sqlite").path, cacheDir: cache.path,
                         dataDir: base)
    }

    /// The cluster key kept in the data folder, made on first use (a single node needs none
    /// given; every node of a cluster must be started with the same --cluster-key).
    func clusterKey() throws -> String {
        let url = dataDir.appendingPathComponent("cluster-key")
        if let s = try? String(contentsOf: url, encoding: .utf8), !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return s.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let key = Keygen.makeKey()
        try Data((key + "\n").utf8).write(to: url, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        return key
    }
}

struct Streams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage streams on a running node.", subcommands: [Create.self, List.self])

    struct Connection: ParsableArguments {
        @Option(help: "The node's HTTP address (default $STREAMTUBE_SERVER or http://127.0.0.1:8080).") var server: String?
        @Option(help: "Admin token (default $STREAMTUBE_ADMIN_TOKEN, else the data folder's admin-token file).") var adminToken: String?
        @Option(help: "Data folder to read the admin token from (default ./data).") var dataDir: String = "./data"

        func request(_ method: String, _ path: String, body: [String: String]? = nil) async throws -> (Int, Data) {
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
                req.httpBody = try JSONSerialization.data(withJSONObject: body)
            }
            do {
                let (data, response) = try await URLSession.shared.data(for: req)
                return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
            } catch {
                throw ValidationError("cannot reach the node at \(base): \(error.localizedDescription). Is `streamtube serve` running?")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a stream; prints its id, key, RTMP URL and watch URL.")
        @Option(help: "The stream's title.") var title: String
        @Flag(help: "Print the answer as JSON.") var json = false
        @OptionGroup var connection: Connection

        func run() async throws {
            let (status, data) = try await connection.request("POST", "/api/streams", body: ["title": title])
            guard status == 201, let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("the node answered \(status): \(String(decoding: data, as: UTF8.self))")
            }
            if json {
                print(String(decoding: data, as: UTF8.self))
                return
            }
            for k in ["id", "key", "rtmpURL", "watchURL", "playlistURL"] {
                print("\(k): \(s[k] as? String ?? "")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the node's streams.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let (status, data) = try await connection.request("GET", "/api/streams")
            guard status == 200, let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
                throw ValidationError("the node answered \(status): \(String(decoding: data, as: UTF8.self))")
            }
            for s in list {
                let live = (s["live"] as? [String: Any])?["state"] as? String ?? "offline"
                print("\(s["id"] as? String ?? "")\t\(live)\t\(s["title"] as? String ?? "")\t\(s["watchURL"] as? String ?? "")")
            }
        }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a new random cluster key (base64, 32 bytes) for --cluster-key.")
    static func makeKey() -> String { Data(Keyring.generateKey(bitCount: 256)).base64EncodedString() }
    func run() { print(Self.makeKey()) }
}

struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the cluster's members as a running node sees them.")
    @OptionGroup var connection: Streams.Connection

    func run() async throws {
        let (status, data) = try await connection.request("GET", "/api/cluster")
        guard status == 200, let body = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let members = body["members"] as? [[String: Any]] else {
            throw ValidationError("the node answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        print(["ID", "STATUS", "INCARNATION", "REGION", "GOSSIP", "HTTP", "RTT_MS", "LOAD", "STREAMS"].joined(separator: "\t"))
        for m in members {
            let rtt = (m["rttMs"] as? Double).map { String(format: "%.1f", $0) } ?? "-"
            print([m["id"], m["status"], m["incarnation"], m["region"], m["gossipAddress"], m["httpAddress"], rtt, m["load"], m["streamsOwned"]]
                .map { "\($0 ?? "-")" }.joined(separator: "\t"))
        }
    }
}

/// Graceful leave (SIGTERM, a rolling upgrade): the streams published here are handed to
/// their standbys before the node stops. The node leaves the cluster (the ring names the
/// standbys owners), stops taking publishers and closes the ones it has — their relays
/// reconnect to the new owners and replay their last GOP — and sends the standbys the last
/// of what it made, marked as going on, so their playlists continue without a gap.
struct HandoverService: Service {
    let gossip: GossipNode
    let rtmp: RTMPControl
    let replicator: Replicator
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let publishing = rtmp.publishingCount
        guard publishing > 0 else {
            await gossip.leave()
            return
        }
        let started = ContinuousClock.now
        logger.info("handing streams over to their standbys", metadata: ["streams": "\(publishing)"])
        _ = await replicator.flush(timeout: .seconds(3))
        await gossip.leave()
        replicator.beginHandover()
        let closed = await rtmp.closeAll(reason: "handed over to the standby")
        let sent = await replicator.flush(timeout: .seconds(5))
        let elapsed = ContinuousClock.now - started
        logger.info("streams handed over", metadata: ["streams": "\(closed)", "replicated": "\(sent)",
                                                       "ms": "\(Int(elapsed.seconds * 1000))"])
    }
}
