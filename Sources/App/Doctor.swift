// Doctor: checks a host before its node joins a cluster (`streamtube doctor`), with the
// settings `serve` would use: its ports free, the FFmpeg and RocksDB libraries working, room on
// the disk for the cache, the clock synchronized, the cluster key usable, the database
// reachable (and how far its schema is from this binary's), the seeds answering, the TLS files.
// Nothing is changed: no migration, no key made.
import Catalog
import Edge
import Foundation
import Logging
import NIOCore
import NIOPosix
import Transcode

package enum Doctor {
    package enum Verdict: String, Sendable, Codable {
        case ok, warn, fail
    }

    package struct Check: Sendable, Codable {
        package var name: String
        package var verdict: Verdict
        package var detail: String
    }

    package static func run(_ config: NodeConfiguration, logger: Logger) async -> [Check] {
        var checks: [Check] = []
        checks += ports(config)
        checks.append(mediaLibraries())
        checks.append(rocksDB(config))
        checks.append(disk(config))
        checks.append(clock())
        checks.append(clusterKey(config))
        checks.append(await database(config, logger: logger))
        checks += await seeds(config)
        if let tls = tlsFiles(config, logger: logger) { checks.append(tls) }
        return checks
    }

    // MARK: Checks

    static func ports(_ c: NodeConfiguration) -> [Check] {
        let tcp = Int32(SOCK_STREAM.rawValue), udp = Int32(SOCK_DGRAM.rawValue)
        var wanted: [(String, Int, Int32)] = [("http", c.httpPort, tcp), ("rtmp", c.rtmpPort, tcp), ("gossip/tcp", c.gossipPort, tcp),
                                              ("gossip/udp", c.gossipPort, udp)]
        if c.tlsCert != nil { wanted += [("https", c.httpsPort, tcp), ("rtmps", c.rtmpsPort, tcp)] }
        return wanted.map { name, port, kind in
            if let error = bindError(host: c.host, port: port, kind: kind) {
                return Check(name: "port \(name)", verdict: .fail,
                             detail: "\(c.host):\(port) cannot be taken: \(error) (another program, or a node already running here)")
            }
            return Check(name: "port \(name)", verdict: .ok, detail: "\(c.host):\(port) is free")
        }
    }

    static func bindError(host: String, port: Int, kind: Int32) -> String? {
        guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return "\(host) is no address of this host" }
        let fd = socket(Int32(address.protocol.rawValue), kind, 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { bind(fd, $0, socklen_t($1)) }
        return result == 0 ? nil : String(cString: strerror(errno))
    }

    static func mediaLibraries() -> Check {
        let versions = MediaLibraries.versions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let missing = ["libx264", "aac"].filter { !MediaLibraries.hasEncoder($0) } + ["h264", "aac"].filter { !MediaLibraries.hasDecoder($0) }
        guard missing.isEmpty else {
            return Check(name: "FFmpeg", verdict: .fail, detail: "\(versions); missing codecs: \(missing.joined(separator: ", ")) (install Debian's libavcodec)")
        }
        return Check(name: "FFmpeg", verdict: .ok, detail: "\(versions); H.264 (x264) and AAC encode and decode")
    }

    /// A small store beside the cache: written, read back, removed.
    static func rocksDB(_ c: NodeConfiguration) -> Check {
        let folder = URL(fileURLWithPath: c.dataDir).appendingPathComponent("doctor-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let said = Said()
        let store = EdgeStore(directory: folder, memoryBudget: 0, diskBudget: 8 << 20) { said.append($0) }
        defer { store.close() }
        guard store.hasDiskTier else {
            return Check(name: "RocksDB", verdict: .fail, detail: "the edge cache's database does not open: \(said.text)")
        }
        let value = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        store.put("doctor", value)
        guard store.get("doctor") == value else {
            return Check(name: "RocksDB", verdict: .fail, detail: "a value written to the cache's database did not read back: \(said.text)")
        }
        return Check(name: "RocksDB", verdict: .ok, detail: "the edge cache's database opens, writes and reads (LZ4) under \(c.dataDir)")
    }

    static func disk(_ c: NodeConfiguration) -> Check {
        var fs = statvfs()
        let path = FileManager.default.fileExists(atPath: c.dataDir) ? c.dataDir : (c.dataDir as NSString).deletingLastPathComponent
        guard statvfs(path.isEmpty ? "." : path, &fs) == 0 else {
            return Check(name: "disk", verdict: .fail, detail: "cannot read the file system of \(c.dataDir): \(String(cString: strerror(errno)))")
        }
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        let cache = c.cacheDiskMB << 20
        let detail = "\(free >> 20) MiB free under \(c.dataDir); the edge cache may take \(c.cacheDiskMB) MiB (--cache-disk-mb)"
        if free < cache { return Check(name: "disk", verdict: .fail, detail: detail + ": not enough, lower --cache-disk-mb or free space") }
        if free < cache + (2 << 30) { return Check(name: "disk", verdict: .warn, detail: detail + "; under 2 GiB left beside it for recordings") }
        return Check(name: "disk", verdict: .ok, detail: detail)
    }

    /// As systemd sees it (`timedatectl`: timesyncd, chrony or ntpd disciplining the clock).
    static func clock() -> Check {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timedatectl")
        p.arguments = ["show", "--property=NTPSynchronized", "--value"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else {
            return Check(name: "clock", verdict: .warn, detail: "cannot tell whether it is synchronized (no timedatectl here): make sure NTP runs")
        }
        p.waitUntilExit()
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if p.terminationStatus == 0, said == "yes" { return Check(name: "clock", verdict: .ok, detail: "synchronized (NTP)") }
        if p.terminationStatus != 0 || said.isEmpty {
            return Check(name: "clock", verdict: .warn, detail: "cannot tell whether it is synchronized (systemd does not answer): make sure NTP runs")
        }
        return Check(name: "clock", verdict: .warn,
                     detail: "not synchronized: playlists' program date-times, tokens' expiry and recordings' times drift between nodes; run chrony or systemd-timesyncd")
    }

    static func clusterKey(_ c: NodeConfiguration) -> Check {
        let given = c.clusterKey ?? NodeState.existingClusterKey(dataDir: c.dataDir)
        guard let given else {
            if c.seeds.isEmpty {
                return Check(name: "cluster key", verdict: .ok, detail: "none yet: a lone node makes one in its data folder")
            }
            return Check(name: "cluster key", verdict: .fail,
                         detail: "none given, and this node has seeds: every node of a cluster needs the same --cluster-key (STREAMTUBE_CLUSTER_KEY)")
        }
        do {
            let keyring = try NodeConfiguration.decodeKeys(given)
            return Check(name: "cluster key", verdict: .ok, detail: "\(keyring.keys.count) key(s), 32 bytes each")
        } catch {
            return Check(name: "cluster key", verdict: .fail, detail: "\(error)")
        }
    }

    static func database(_ c: NodeConfiguration, logger: Logger) async -> Check {
        let location: DatabaseLocation
        do { location = try c.database.map(DatabaseLocation.init) ?? .sqlite(path: c.dataDir + "/streamtube.sqlite") } catch {
            return Check(name: "database", verdict: .fail, detail: "\(error)")
        }
        if case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
            return Check(name: "database", verdict: .ok, detail: "SQLite \(path) does not exist yet: made at the first start")
        }
        let latest = Migrations.all(sealer: VersionsOnly()).map(\.version).max() ?? 0
        do {
            let version = try await Database.schemaVersion(at: location, logger: logger)
            if version > latest {
                return Check(name: "database", verdict: .fail,
                             detail: "\(location.description) is at schema \(version), newer than this binary's \(latest): run the newer streamtube")
            }
            let todo = latest - version
            return Check(name: "database", verdict: .ok,
                         detail: "\(location.description) answers, schema \(version)" + (todo > 0 ? "; \(todo) migration(s) run at the next start" : ", up to date"))
        } catch {
            return Check(name: "database", verdict: .fail, detail: "\(error)")
        }
    }

    /// Each seed's gossip port over TCP (gossip answers there as well as over UDP).
    static func seeds(_ c: NodeConfiguration) async -> [Check] {
        guard let endpoints = try? c.seedEndpoints(), !endpoints.isEmpty else { return [] }
        var out: [Check] = []
        for e in endpoints {
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(2))
                    .connect(host: e.host, port: Int(e.port)).get()
                try? await channel.close()
                out.append(Check(name: "seed \(e)", verdict: .ok, detail: "reachable"))
            } catch {
                out.append(Check(name: "seed \(e)", verdict: .fail, detail: "not reachable: \(error) (is it up? is port \(e.port) open between the hosts, TCP and UDP?)"))
            }
        }
        return out
    }

    static func tlsFiles(_ c: NodeConfiguration, logger: Logger) -> Check? {
        guard let cert = c.tlsCert else { return nil }
        guard let key = c.tlsKey else { return Check(name: "TLS", verdict: .fail, detail: "--tls-cert without --tls-key") }
        do {
            let identity = try PublicTLS.load(certificatePath: cert, keyPath: key)
            let days = Int(identity.notAfter.timeIntervalSinceNow / 86400)
            return Check(name: "TLS", verdict: days < 14 ? .warn : .ok, detail: "\(cert): valid until \(identity.notAfter) (\(days) days)")
        } catch {
            return Check(name: "TLS", verdict: .fail, detail: "\(error)")
        }
    }

    /// Migrations are only counted here, never run: they need no key.
    struct VersionsOnly: SecretSealer {
        func seal(_ plaintext: String) throws -> String { plaintext }
        func open(_ sealed: String) -> String? { sealed }
    }

    final class Said: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ s: String) { lock.withLock { lines.append(s) } }
        var text: String { lock.withLock { lines.joined(separator: "; ") } }
    }
}
