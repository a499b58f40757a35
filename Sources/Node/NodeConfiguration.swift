// NodeConfiguration: every setting of `streamtube serve`, merged from (lowest first)
// built-in defaults, a JSON config file, STREAMTUBE_* environment variables, and flags.
import Foundation

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

    /// The keys of the config file and, upper-cased with underscores behind `STREAMTUBE_`,
    /// of the environment (`httpPort` is `STREAMTUBE_HTTP_PORT`).
    static let keys = ["host", "httpPort", "rtmpPort", "dataDir", "nodeID", "region", "adminToken",
                       "publicHost", "partTarget", "segmentTarget", "windowSegments", "logLevel", "logFormat"]

    static func environmentName(_ key: String) -> String {
        var out = "STREAMTUBE_"
        for c in key {
            if c.isUppercase, out.last != "_" { out += "_" }
            out += c.uppercased()
        }
        return out.replacingOccurrences(of: "NODE_I_D", with: "NODE_ID")
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
