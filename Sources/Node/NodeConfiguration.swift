// NodeConfiguration: every setting of `streamtube serve`, merged from (lowest first)
// built-in defaults, a JSON config file, STREAMTUBE_* environment variables, and flags.
import Foundation
import Gossip
import Origin

struct NodeConfiguration: Codable, Equatable, Sendable {
    var host = "0.0.0.0"
    var httpPort = 8080
    var rtmpPort = 1935
    var dataDir = "./data"
    var nodeID: String?
    var region = "local"
    var adminToken: String?
    /// Host name put into the RTMP and watch URLs when a request gives none.
    var publicHost: String?
    var partTarget = 0.5
    var segmentTarget = 2.0
    var windowSegments = 8
    var logLevel = "info"
    var logFormat = "text"
    var gossipPort = 7946
    /// Other nodes to join through, "host:port,host:port".
    var seeds = ""
    /// Base64 AES key (16, 24 or 32 bytes) shared by the cluster; more keys after commas are
    /// accepted for rotation, the first one encrypts.
    var clusterKey: String?
    var clusterName = "streamtube"
    /// Address other nodes reach this one at (default: --public-host, else 127.0.0.1).
    var advertiseHost: String?
    /// Gossip timing preset: lan, wan or local.
    var gossipPreset = "lan"
    var capacity = 1
    /// SQLite file with the platform's records (default: streamtube.sqlite in the data folder).
    /// Nodes on one machine can share one; a cluster across machines needs a shared database.
    var database: String?
    /// Edge cache budgets: memory tier and RocksDB tier.
    var cacheMemoryMB = 256
    var cacheDiskMB = 4096
    /// Transcoding ladder: "name:height:kbps[:maxkbps],..." or "none" (passthrough only).
    var ladder = "720p:720:3000:3300,480p:480:1400:1540,360p:360:800:880"
    var x264Preset = "veryfast"
    var transcodeThreads = 1

    /// The keys of the config file and, upper-cased with underscores behind `STREAMTUBE_`,
    /// of the environment (`httpPort` is `STREAMTUBE_HTTP_PORT`).
    static let keys = ["host", "httpPort", "rtmpPort", "dataDir", "nodeID", "region", "adminToken",
                       "publicHost", "partTarget", "segmentTarget", "windowSegments", "logLevel", "logFormat",
                       "gossipPort", "seeds", "clusterKey", "clusterName", "advertiseHost", "gossipPreset", "capacity",
                       "ladder", "x264Preset", "transcodeThreads", "database", "cacheMemoryMB", "cacheDiskMB"]

    static func environmentName(_ key: String) -> String {
        // camelCase to SNAKE_CASE; a run of capitals (ID, MB) stays one word.
        var out = "STREAMTUBE_"
        var previous: Character?
        for c in key {
            if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out += "_" }
            out += c.uppercased()
            previous = c
        }
        return out
    }

    enum LoadError: Error, CustomStringConvertible {
        case unreadableFile(String, String)
        case badValue(source: String, key: String, value: String, expected: String)
        case unknownKey(String, file: String)

        var description: String {
            switch self {
            case .unreadableFile(let path, let why): return "cannot read config file \(path): \(why)"
            case .badValue(let source, let key, let value, let expected):
                return "\(source): \(key) = \(value) is not \(expected)"
            case .unknownKey(let key, let file):
                return "config file \(file): unknown setting \"\(key)\" (known: \(NodeConfiguration.keys.joined(separator: ", ")))"
            }
        }
    }

    /// Applies one setting given as text (environment variable or flag).
    mutating func set(_ key: String, _ value: String, source: String) throws {
        func int() throws -> Int {
            guard let v = Int(value), (0...65535).contains(v) || !key.hasSuffix("Port") else {
                throw LoadError.badValue(source: source, key: key, value: value, expected: key.hasSuffix("Port") ? "a port number" : "a whole number")
            }
            return v
        }
        func double() throws -> Double {
            guard let v = Double(value), v.isFinite else {
                throw LoadError.badValue(source: source, key: key, value: value, expected: "a number of seconds")
            }
            return v
        }
        switch key {
        case "host": host = value
        case "httpPort": httpPort = try int()
        case "rtmpPort": rtmpPort = try int()
        case "dataDir": dataDir = value
        case "nodeID": nodeID = value
        case "region": region = value
        case "adminToken": adminToken = value
        case "publicHost": publicHost = value
        case "partTarget": partTarget = try double()
        case "segmentTarget": segmentTarget = try double()
        case "windowSegments": windowSegments = try int()
        case "logLevel": logLevel = value
        case "logFormat": logFormat = value
        case "gossipPort": gossipPort = try int()
        case "seeds": seeds = value
        case "clusterKey": clusterKey = value
        case "clusterName": clusterName = value
        case "advertiseHost": advertiseHost = value
        case "gossipPreset": gossipPreset = value
        case "capacity": capacity = try int()
        case "ladder": ladder = value
        case "database": database = value
        case "cacheMemoryMB": cacheMemoryMB = try int()
        case "cacheDiskMB": cacheDiskMB = try int()
        case "x264Preset": x264Preset = value
        case "transcodeThreads": transcodeThreads = try int()
        default: break
        }
    }

    /// Loads the file (if any) and then the environment over the defaults.
    static func load(file: String?, environment: [String: String]) throws -> NodeConfiguration {
        var config = NodeConfiguration()
        if let file = file ?? environment["STREAMTUBE_CONFIG"] {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw LoadError.unreadableFile(file, error.localizedDescription)
            }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: data) } catch {
                throw LoadError.unreadableFile(file, "not valid JSON (\(error.localizedDescription))")
            }
            guard let dict = object as? [String: Any] else { throw LoadError.unreadableFile(file, "expected a JSON object") }
            for (key, value) in dict.sorted(by: { $0.key < $1.key }) {
                guard keys.contains(key) else { throw LoadError.unknownKey(key, file: file) }
                let text: String
                switch value {
                case let s as String: text = s
                case let n as NSNumber: text = n.stringValue
                default: throw LoadError.badValue(source: file, key: key, value: "\(value)", expected: "a string or a number")
                }
                try config.set(key, text, source: "config file \(file)")
            }
        }
        for key in keys {
            let name = environmentName(key)
            if let value = environment[name] { try config.set(key, value, source: "environment \(name)") }
        }
        return config
    }
}

extension NodeConfiguration {
    enum ClusterSettingError: Error, CustomStringConvertible {
        case badSeed(String)
        case badKey(String)
        case badPreset(String)
        var description: String {
            switch self {
            case .badSeed(let s): return "seed \"\(s)\" is not host:port"
            case .badKey(let why): return "cluster key: \(why) (make one with `streamtube keygen`)"
            case .badPreset(let p): return "gossip preset \"\(p)\" is not lan, wan or local"
            }
        }
    }

    func seedEndpoints() throws -> [Endpoint] {
        try seeds.split(separator: ",").map { raw in
            let seed = raw.trimmingCharacters(in: .whitespaces)
            guard let colon = seed.lastIndex(of: ":"), let port = UInt16(seed[seed.index(after: colon)...]), colon > seed.startIndex else {
                throw ClusterSettingError.badSeed(seed)
            }
            var host = String(seed[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return Endpoint(host: host, port: port)
        }
    }

    static func decodeKeys(_ text: String) throws -> Keyring {
        let keys = try text.split(separator: ",").map { part -> [UInt8] in
            guard let data = Data(base64Encoded: part.trimmingCharacters(in: .whitespaces)) else {
                throw ClusterSettingError.badKey("not base64")
            }
            guard [16, 24, 32].contains(data.count) else { throw ClusterSettingError.badKey("\(data.count) bytes; want 16, 24 or 32") }
            return [UInt8](data)
        }
        guard let first = keys.first else { throw ClusterSettingError.badKey("empty") }
        do { return try Keyring(primary: first, secondary: Array(keys.dropFirst())) } catch {
            throw ClusterSettingError.badKey("\(error)")
        }
    }

    func gossipConfig() throws -> GossipConfig {
        switch gossipPreset {
        case "lan": return .lan(clusterName: clusterName)
        case "wan": return .wan(clusterName: clusterName)
        case "local": return .local(clusterName: clusterName)
        default: throw ClusterSettingError.badPreset(gossipPreset)
        }
    }
}

extension NodeConfiguration {
    struct LadderError: Error, CustomStringConvertible {
        var message: String
        var description: String { "ladder: \(message)" }
    }

    /// Parses "name:height:kbps[:maxkbps],...". nil for "none".
    static func parseLadder(_ text: String) throws -> [LadderRung]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "none" { return nil }
        return try trimmed.split(separator: ",").map { item in
            let f = item.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 3 || f.count == 4, !f[0].isEmpty, let h = Int(f[1]), h >= 64, h <= 4320, h % 2 == 0,
                  let kbps = Int(f[2]), kbps > 0 else {
                throw LadderError(message: "\"\(item)\" is not name:height:kbps[:maxkbps] (an even height from 64 to 4320)")
            }
            let maxKbps = f.count == 4 ? Int(f[3]) : kbps * 11 / 10
            guard let maxKbps, maxKbps >= kbps else { throw LadderError(message: "\"\(item)\": max rate below the rate") }
            guard f[0] != LiveStream.sourceRendition, f[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw LadderError(message: "\"\(f[0])\" cannot name a rendition")
            }
            return LadderRung(name: f[0], height: h, videoBitrate: kbps * 1000, maxBitrate: maxKbps * 1000)
        }
    }

    func transcodeSettings() throws -> TranscodeSettings? {
        guard let rungs = try Self.parseLadder(ladder) else { return nil }
        var t = TranscodeSettings.default
        t.rungs = rungs
        t.preset = x264Preset
        t.threads = transcodeThreads
        do { try t.validate() } catch { throw LadderError(message: "\(error)") }
        return t
    }
}
