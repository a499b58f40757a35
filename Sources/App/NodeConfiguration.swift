// NodeConfiguration: every setting of `streamtube serve`, merged from (lowest first) built-in
// defaults, a JSON config file, STREAMTUBE_* environment variables, and flags. Each setting
// is declared once, in `NodeConfiguration.settings`: its file key names its environment
// variable (`httpPort` is `STREAMTUBE_HTTP_PORT`) and its flag (`--http-port`).
import Foundation
import Gossip
import Origin

package struct NodeConfiguration: Codable, Equatable, Sendable {
    package var host = "0.0.0.0"
    package var httpPort = 8080
    package var rtmpPort = 1935
    /// The node's own certificate (PEM chain) and key: with both, HTTPS and RTMPS are served too.
    package var tlsCert: String?
    package var tlsKey: String?
    package var httpsPort = 8443
    package var rtmpsPort = 1936
    /// Plain-HTTP page requests answered with a redirect to HTTPS.
    package var httpRedirect = false
    /// Strict-Transport-Security max-age on HTTPS answers; 0: none.
    package var hstsSeconds = 0
    package var dataDir = "./data"
    package var nodeID: String?
    package var region = "local"
    package var adminToken: String?
    package var publicHost: String?
    /// A third of a second (10 frames at 30 fps): PART-HOLD-BACK, three parts, is then 1 s,
    /// which is what puts the watch page at about 1.5 s behind the broadcaster.
    package var partTarget = 0.334
    package var segmentTarget = 2.0
    package var windowSegments = 8
    package var logLevel = "info"
    package var logFormat = "text"
    package var gossipPort = 7946
    package var seeds = ""
    package var clusterKey: String?
    package var clusterName = "streamtube"
    package var advertiseHost: String?
    package var gossipPreset = "lan"
    package var capacity = 1
    package var database: String?
    package var cacheMemoryMB = 256
    package var cacheDiskMB = 4096
    /// Viewer sessions this node serves at most before new viewers are answered 503; 0: no bound.
    package var maxViewers = 0
    /// Seconds the event loops may run late before new viewers are answered 503; 0: no bound.
    package var maxEventLoopLag = 1.0
    /// Every live session is recorded (segments kept on disk, a VOD when it ends).
    package var recordings = true
    /// Default: DATA_DIR/recordings.
    package var recordingsDir: String?
    /// A broadcaster back within this many seconds continues the same recording.
    package var recordingReconnectGrace = 60.0
    /// The bytes of recordings this node keeps, oldest removed first; 0: no limit.
    package var recordingsMaxBytes = 0
    package var ladder = "720p:720:3000:3300,480p:480:1400:1540,360p:360:800:880"
    package var x264Preset = "veryfast"
    package var transcodeThreads = 1
    package var clusterTLS = false
    /// Load balancers whose word about the client's address is taken (X-Forwarded-For, PROXY protocol).
    package var trustedProxies: String?
    // The platform: people, mail, sign-in providers.
    package var publicURL: String?
    package var signup = "open"
    package var firstSignupAdmin = false
    package var smtpHost: String?
    package var smtpPort = 587
    package var smtpSecurity = "starttls"
    package var smtpUser: String?
    package var smtpPassword: String?
    package var smtpCAFile: String?
    package var mailFrom = "StreamTube <noreply@localhost>"
    package var oidcIssuer: String?
    package var oidcClientID: String?
    package var oidcClientSecret: String?
    package var oidcName = "OpenID Connect"
    package var googleClientID: String?
    package var googleClientSecret: String?
    package var facebookClientID: String?
    package var facebookClientSecret: String?
    package var xClientID: String?
    package var xClientSecret: String?
    package var platformFee = "0"
    package var testPayments = "auto"
    package var renewalSeconds = 30
    /// For tests only: a subscription's period in seconds instead of a calendar month or year (0: off).
    package var subscriptionPeriodSeconds = 0
    package var stripeSecretKey: String?
    package var stripeWebhookSecret: String?
    package var stripeAPIBase = "https://api.stripe.com"
    package var paypalClientID: String?
    package var paypalSecret: String?
    package var paypalWebhookID: String?
    package var paypalAPIBase = "https://api-m.paypal.com"
    package var btcpayURL: String?
    package var btcpayAPIKey: String?
    package var btcpayStoreID: String?
    package var btcpayWebhookSecret: String?
    package var passwordCost = 12
    package var reminderMinutes = 15
    package var missedAfterMinutes = 30

    package init() {}
}

/// One setting: its key, what it means, and how text sets it.
package struct Setting {
    package let key: String
    package let help: String
    /// On or off: the flag alone turns it on (`--cluster-tls`), or takes true/false.
    package var isSwitch = false
    let apply: (inout NodeConfiguration, String, String) throws -> Void
    let current: (NodeConfiguration) -> String?

    package var environmentName: String { NodeConfiguration.environmentName(key) }
    package var flag: String { "--" + NodeConfiguration.words(key).joined(separator: "-").lowercased() }

    static func text(_ key: String, _ path: WritableKeyPath<NodeConfiguration, String>, _ help: String) -> Setting {
        Setting(key: key, help: help, apply: { c, v, _ in c[keyPath: path] = v }, current: { $0[keyPath: path] })
    }

    static func text(_ key: String, _ path: WritableKeyPath<NodeConfiguration, String?>, _ help: String) -> Setting {
        Setting(key: key, help: help, apply: { c, v, _ in c[keyPath: path] = v }, current: { $0[keyPath: path] })
    }

    static func int(_ key: String, _ path: WritableKeyPath<NodeConfiguration, Int>, _ help: String, port: Bool = false) -> Setting {
        Setting(key: key, help: help, apply: { c, v, source in
            guard let n = Int(v), !port || (0...65535).contains(n) else {
                throw NodeConfiguration.LoadError.badValue(source: source, key: key, value: v,
                                                           expected: port ? "a port number" : "a whole number")
            }
            c[keyPath: path] = n
        }, current: { String($0[keyPath: path]) })
    }

    static func boolean(_ key: String, _ path: WritableKeyPath<NodeConfiguration, Bool>, _ help: String) -> Setting {
        Setting(key: key, help: help, isSwitch: true, apply: { c, v, source in
            guard let b = Self.booleans[v.lowercased()] else {
                throw NodeConfiguration.LoadError.badValue(source: source, key: key, value: v, expected: "true or false")
            }
            c[keyPath: path] = b
        }, current: { String($0[keyPath: path]) })
    }

    /// What turns a switch on or off (a JSON file's true and false arrive as 1 and 0).
    static let booleans = ["true": true, "false": false, "1": true, "0": false, "yes": true, "no": false, "on": true, "off": false]

    static func seconds(_ key: String, _ path: WritableKeyPath<NodeConfiguration, Double>, _ help: String) -> Setting {
        Setting(key: key, help: help, apply: { c, v, source in
            guard let d = Double(v), d.isFinite else {
                throw NodeConfiguration.LoadError.badValue(source: source, key: key, value: v, expected: "a number of seconds")
            }
            c[keyPath: path] = d
        }, current: { String($0[keyPath: path]) })
    }
}

extension NodeConfiguration {
    /// Every setting, once.
    package static var settings: [Setting] {
        [
            .text("host", \.host, "Address to listen on."),
            .int("httpPort", \.httpPort, "HTTP port.", port: true),
            .int("rtmpPort", \.rtmpPort, "RTMP port.", port: true),
            .text("tlsCert", \.tlsCert,
                  "PEM file of the node's certificate chain (leaf first): with --tls-key, HTTPS (HTTP/2 and HTTP/1.1) and RTMPS are served too. SIGHUP reloads both files."),
            .text("tlsKey", \.tlsKey, "PEM file of the certificate's private key (give it by file only, readable by the node alone)."),
            .int("httpsPort", \.httpsPort, "HTTPS port (with --tls-cert).", port: true),
            .int("rtmpsPort", \.rtmpsPort, "RTMPS port (with --tls-cert).", port: true),
            .boolean("httpRedirect", \.httpRedirect,
                     "Answer plain-HTTP page requests (GET and HEAD) with a redirect to HTTPS (with --tls-cert); health, metrics and node-to-node requests are left alone."),
            .int("hstsSeconds", \.hstsSeconds, "Strict-Transport-Security max-age on HTTPS answers, in seconds; 0: no header."),
            .text("dataDir", \.dataDir, "Folder for the SQLite file (unless --database says otherwise), the cache and node state."),
            .text("nodeID", \.nodeID, "This node's id (default: made once and kept in the data folder)."),
            .text("region", \.region, "Region this node runs in."),
            .text("adminToken", \.adminToken, "Operator token (default: made once, printed, kept in the data folder)."),
            .text("publicHost", \.publicHost, "Host name to put in stream URLs (default: the Host the request came to)."),
            .seconds("partTarget", \.partTarget, "LL-HLS part duration in seconds."),
            .seconds("segmentTarget", \.segmentTarget, "Segment duration in seconds."),
            .int("windowSegments", \.windowSegments, "Segments in a live playlist."),
            .text("logLevel", \.logLevel, "Log level: trace, debug, info, notice, warning, error."),
            .text("logFormat", \.logFormat, "Log format: text or json."),
            .int("gossipPort", \.gossipPort, "Gossip port, UDP and TCP.", port: true),
            .text("seeds", \.seeds, "Nodes to join through: host:port,host:port (their gossip ports)."),
            .text("clusterKey", \.clusterKey, "Cluster key(s), base64, comma-separated; the first encrypts (default: made once, kept in the data folder)."),
            .text("clusterName", \.clusterName, "Cluster name; nodes of other clusters are ignored."),
            .text("advertiseHost", \.advertiseHost, "Address other nodes reach this one at (default --public-host, else 127.0.0.1)."),
            .text("gossipPreset", \.gossipPreset, "Gossip timing preset: lan, wan or local."),
            .int("capacity", \.capacity, "Relative capacity for stream ownership (0 takes no streams)."),
            .text("database", \.database,
                  "The platform's records: an SQLite file (default DATA_DIR/streamtube.sqlite; nodes on one machine may share one), "
                  + "or postgres://user:password@host:5432/database[?sslmode=...] for a cluster of hosts (give a password by environment or file)."),
            .int("cacheMemoryMB", \.cacheMemoryMB, "Edge cache memory budget in MiB."),
            .int("cacheDiskMB", \.cacheDiskMB, "Edge cache disk budget in MiB."),
            .int("maxViewers", \.maxViewers, "Viewers this node serves at most; past it new viewers get 503 and Retry-After (0: no bound)."),
            .seconds("maxEventLoopLag", \.maxEventLoopLag,
                     "Seconds the event loops may run late (an overloaded node) before new viewers get 503 and Retry-After (0: no bound)."),
            .boolean("recordings", \.recordings,
                     "Record every live session this node packages or holds as standby (its segments, then a VOD); false records nothing."),
            .text("recordingsDir", \.recordingsDir, "Folder for recordings, e.g. on another disk (default DATA_DIR/recordings)."),
            .seconds("recordingReconnectGrace", \.recordingReconnectGrace,
                     "A broadcaster who comes back within this many seconds continues the same recording (behind a discontinuity); later, a new one."),
            .int("recordingsMaxBytes", \.recordingsMaxBytes,
                 "Bytes of recordings this node keeps; past it the oldest copies (never one being recorded) are removed. 0: no limit."),
            .text("ladder", \.ladder, "Transcoding ladder, name:height:kbps[:maxkbps],... or none."),
            .text("x264Preset", \.x264Preset, "x264 preset for the ladder."),
            .int("transcodeThreads", \.transcodeThreads, "x264 threads per rendition."),
            .boolean("clusterTLS", \.clusterTLS,
                     "Mutual TLS between nodes (relays, replication, record lookups, edge fetches), certificates from a CA derived from the cluster key; give it to every node."),
            .text("trustedProxies", \.trustedProxies,
                  "Load balancers in front of the node, as addresses or CIDR ranges, comma-separated: their X-Forwarded-For (HTTP) and PROXY protocol header (RTMP, required from them) name the client. Default: none."),
            .text("publicURL", \.publicURL,
                  "The platform's address as people reach it, e.g. https://stream.example.com: links in mail and sign-in redirects (default http://PUBLIC_HOST:HTTP_PORT)."),
            .text("signup", \.signup, "Who may make an account: open (anyone), or closed (admins make accounts)."),
            .boolean("firstSignupAdmin", \.firstSignupAdmin, "The first account signed up on a node with no admin becomes its admin."),
            .text("smtpHost", \.smtpHost, "SMTP server for mail (verification, resets); none: mail is written to DATA_DIR/outbox."),
            .int("smtpPort", \.smtpPort, "SMTP port.", port: true),
            .text("smtpSecurity", \.smtpSecurity, "SMTP security: starttls (required), tls (implicit, port 465) or none (plaintext; a local relay only)."),
            .text("smtpUser", \.smtpUser, "SMTP user name (AUTH PLAIN, only over TLS)."),
            .text("smtpPassword", \.smtpPassword, "SMTP password (give it by environment or file)."),
            .text("smtpCaFile", \.smtpCAFile, "PEM file of CA certificates the SMTP server's certificate is checked against (default: the system's)."),
            .text("mailFrom", \.mailFrom, "Sender of the platform's mail, e.g. StreamTube <noreply@example.com>."),
            .text("platformFee", \.platformFee, "The platform's fee on every sale, in percent (0 to 50, up to two decimals, e.g. 10 or 2.5)."),
            .text("testPayments", \.testPayments, "The built-in test gateway, a page on the node that pays at once and moves no money (for trying the platform): on, off, or auto (on while no payment provider is configured)."),
            .int("renewalSeconds", \.renewalSeconds, "How often the node that runs subscription renewals looks for what is due (seconds)."),
            .int("subscriptionPeriodSeconds", \.subscriptionPeriodSeconds, "For tests only: every subscription period lasts this many seconds instead of a month or a year (0: off, the calendar's)."),
            .text("stripeSecretKey", \.stripeSecretKey, "Stripe: the secret API key (sk_...; give it by environment or file). With the webhook secret, buyers can pay by card through Stripe Checkout."),
            .text("stripeWebhookSecret", \.stripeWebhookSecret, "Stripe: the signing secret of the webhook endpoint PUBLIC_URL/webhooks/stripe (whsec_...)."),
            .text("stripeApiBase", \.stripeAPIBase, "Stripe: the API's address (a stand-in's in tests)."),
            .text("paypalClientId", \.paypalClientID, "PayPal: the REST app's client id."),
            .text("paypalSecret", \.paypalSecret, "PayPal: the REST app's secret (give it by environment or file)."),
            .text("paypalWebhookId", \.paypalWebhookID, "PayPal: the id of the webhook to PUBLIC_URL/webhooks/paypal (its signatures are checked with PayPal)."),
            .text("paypalApiBase", \.paypalAPIBase, "PayPal: the API's address (https://api-m.sandbox.paypal.com for the sandbox; a stand-in's in tests)."),
            .text("btcpayUrl", \.btcpayURL, "BTCPay Server (Bitcoin and Lightning): the server's address, e.g. https://btcpay.example.com."),
            .text("btcpayApiKey", \.btcpayAPIKey, "BTCPay: a Greenfield API key that may create and view the store's invoices (give it by environment or file)."),
            .text("btcpayStoreId", \.btcpayStoreID, "BTCPay: the store's id."),
            .text("btcpayWebhookSecret", \.btcpayWebhookSecret, "BTCPay: the secret of the store's webhook to PUBLIC_URL/webhooks/btcpay."),
            .text("oidcIssuer", \.oidcIssuer, "An OpenID Connect provider's issuer URL (its discovery document is ISSUER/.well-known/openid-configuration)."),
            .text("oidcClientID", \.oidcClientID, "Client id at the OpenID Connect provider."),
            .text("oidcClientSecret", \.oidcClientSecret, "Client secret at the OpenID Connect provider (give it by environment or file)."),
            .text("oidcName", \.oidcName, "The OpenID Connect provider's name on the sign-in button."),
            .text("googleClientID", \.googleClientID, "Google sign-in: OAuth client id."),
            .text("googleClientSecret", \.googleClientSecret, "Google sign-in: client secret."),
            .text("facebookClientID", \.facebookClientID, "Facebook sign-in: app id."),
            .text("facebookClientSecret", \.facebookClientSecret, "Facebook sign-in: app secret."),
            .text("xClientID", \.xClientID, "X sign-in: OAuth 2.0 client id."),
            .text("xClientSecret", \.xClientSecret, "X sign-in: OAuth 2.0 client secret."),
            .int("reminderMinutes", \.reminderMinutes, "Minutes before a scheduled stream starts that its channel's followers are reminded by mail."),
            .int("missedAfterMinutes", \.missedAfterMinutes, "Minutes after its time a scheduled stream that has not started is marked missed (its broadcaster is told)."),
            .int("passwordCost", \.passwordCost, "bcrypt cost of password hashes (at least 12; each step doubles the work; `streamtube bench-password --cost N` times one on this machine)."),
        ]
    }

    /// The keys of the config file.
    package static var keys: [String] { settings.map(\.key) }

    /// `camelCase` as words; a run of capitals (ID, MB) stays one word.
    static func words(_ key: String) -> [String] {
        var words: [String] = []
        var current = ""
        var previous: Character?
        for c in key {
            if c.isUppercase, let p = previous, p.isLowercase || p.isNumber {
                words.append(current)
                current = ""
            }
            current.append(c)
            previous = c
        }
        words.append(current)
        return words
    }

    package static func environmentName(_ key: String) -> String {
        "STREAMTUBE_" + words(key).joined(separator: "_").uppercased()
    }

    package enum LoadError: Error, CustomStringConvertible {
        case unreadableFile(String, String)
        case badValue(source: String, key: String, value: String, expected: String)
        case unknownKey(String, file: String)
        case unknownFlag(String)
        case missingValue(String)

        package var description: String {
            switch self {
            case .unreadableFile(let path, let why): return "cannot read config file \(path): \(why)"
            case .badValue(let source, let key, let value, let expected): return "\(source): \(key) = \(value) is not \(expected)"
            case .unknownKey(let key, let file):
                return "config file \(file): unknown setting \"\(key)\" (known: \(NodeConfiguration.keys.joined(separator: ", ")))"
            case .unknownFlag(let flag): return "unknown option \(flag) (see streamtube serve --help)"
            case .missingValue(let flag): return "option \(flag) needs a value"
            }
        }
    }

    /// Applies one setting given as text.
    package mutating func set(_ key: String, _ value: String, source: String) throws {
        guard let setting = Self.settings.first(where: { $0.key == key }) else { return }
        try setting.apply(&self, value, source)
    }

    /// Loads the file (if any) and then the environment over the defaults.
    package static func load(file: String?, environment: [String: String]) throws -> NodeConfiguration {
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
        for setting in settings {
            if let value = environment[setting.environmentName] {
                try setting.apply(&config, value, "environment \(setting.environmentName)")
            }
        }
        return config
    }

    /// Flags over the file and the environment: `--http-port 9090` or `--http-port=9090`.
    package static func load(file: String?, environment: [String: String], flags: [String]) throws -> NodeConfiguration {
        var config = try load(file: file, environment: environment)
        let byFlag = Dictionary(uniqueKeysWithValues: settings.map { ($0.flag, $0) })
        var i = 0
        while i < flags.count {
            var flag = flags[i]
            var value: String?
            if let eq = flag.firstIndex(of: "=") {
                value = String(flag[flag.index(after: eq)...])
                flag = String(flag[..<eq])
            }
            guard let setting = byFlag[flag] else { throw LoadError.unknownFlag(flag) }
            if value == nil, setting.isSwitch {
                // `--cluster-tls` alone, or followed by true/false.
                if i + 1 < flags.count, Setting.booleans[flags[i + 1].lowercased()] != nil {
                    i += 1
                    value = flags[i]
                } else {
                    value = "true"
                }
            }
            if value == nil {
                i += 1
                guard i < flags.count else { throw LoadError.missingValue(flag) }
                value = flags[i]
            }
            try setting.apply(&config, value!, "option \(flag)")
            i += 1
        }
        return config
    }

    /// The settings as `serve --help` shows them: flag, environment variable, default.
    package static var helpText: String {
        let defaults = NodeConfiguration()
        return settings.map { s in
            let d = s.current(defaults).map { $0.isEmpty ? "" : " (default \($0))" } ?? ""
            let form = s.isSwitch ? "\(s.flag)[=true|false]" : "\(s.flag) <value>"
            return "  \(form)\n        \(s.help)\(d)\n        environment \(s.environmentName), file key \"\(s.key)\""
        }.joined(separator: "\n")
    }
}

extension NodeConfiguration {
    package enum ClusterSettingError: Error, CustomStringConvertible {
        case badSeed(String)
        case badKey(String)
        case badPreset(String)
        package var description: String {
            switch self {
            case .badSeed(let s): return "seed \"\(s)\" is not host:port"
            case .badKey(let why): return "cluster key: \(why) (make one with `streamtube keygen`)"
            case .badPreset(let p): return "gossip preset \"\(p)\" is not lan, wan or local"
            }
        }
    }

    package func seedEndpoints() throws -> [Endpoint] {
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

    package static func decodeKeys(_ text: String) throws -> Keyring {
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

    package func gossipConfig() throws -> GossipConfig {
        switch gossipPreset {
        case "lan": return .lan(clusterName: clusterName)
        case "wan": return .wan(clusterName: clusterName)
        case "local": return .local(clusterName: clusterName)
        default: throw ClusterSettingError.badPreset(gossipPreset)
        }
    }

    package func transcodeSettings() throws -> TranscodeSettings? {
        try TranscodeSettings.default.overriding(ladder: ladder, preset: x264Preset).map { t in
            var t = t
            t.threads = transcodeThreads
            try t.validate()
            return t
        }
    }
}
