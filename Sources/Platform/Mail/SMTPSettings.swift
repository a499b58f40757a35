// SMTPSettings: where and how SMTPMailer sends.

/// An SMTP server and how to talk to it. The password never appears in `description` or a
/// mirror (so never in a log or an error).
package struct SMTPSettings: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    package enum Security: String, Sendable, CaseIterable {
        /// Plain connection upgraded with STARTTLS, which is required: a server that does not
        /// offer it is refused before anything is sent (port 587).
        case startTLS = "starttls"
        /// TLS from the first byte (port 465).
        case tls
        /// No encryption: for a relay on this machine. AUTH is refused unless the host is loopback.
        case none

        /// `starttls`, `tls` or `none`, as the setting is written.
        package init(setting: String) throws(MailError) {
            guard let s = Security(rawValue: setting.lowercased()) else {
                throw MailError.badSetting("smtpSecurity \"\(setting)\" is not starttls, tls or none")
            }
            self = s
        }

        package var defaultPort: Int {
            switch self {
            case .startTLS: return 587
            case .tls: return 465
            case .none: return 25
            }
        }
    }

    package var host: String
    package var port: Int
    package var security: Security
    package var user: String?
    package var password: String?
    /// PEM file of the CA certificates the server's certificate is checked against; nil: the system's.
    package var caFile: String?
    /// The name given in EHLO/HELO: this machine's host name as the world knows it.
    package var heloName: String
    package var connectTimeout: Duration = .seconds(10)
    /// The longest wait for any one reply.
    package var replyTimeout: Duration = .seconds(30)
    /// The longest a whole send (connect to QUIT) may take.
    package var sendTimeout: Duration = .seconds(120)
    package var maxReplyLineLength = SMTPReplyParser.defaultMaxLineLength
    package var maxReplyLines = SMTPReplyParser.defaultMaxLines

    package init(host: String, port: Int? = nil, security: Security = .startTLS, user: String? = nil, password: String? = nil,
                 caFile: String? = nil, heloName: String = "localhost") {
        self.host = host
        self.port = port ?? security.defaultPort
        self.security = security
        self.user = user
        self.password = password
        self.caFile = caFile
        self.heloName = heloName
    }

    /// `host:port` (an IPv6 address in brackets), as errors name the server.
    package var server: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// This machine: `localhost`, 127.0.0.0/8 or ::1.
    package var hostIsLoopback: Bool {
        let h = host.lowercased().trimmingCharacters(in: ["[", "]"])
        return h == "localhost" || h.hasSuffix(".localhost") || h == "::1" || h.hasPrefix("127.")
    }

    /// Settings that cannot work, or would send a password in the clear over the network.
    package func validate() throws(MailError) {
        guard !host.isEmpty else { throw MailError.badSetting("smtpHost is empty") }
        guard (1...65535).contains(port) else { throw MailError.badSetting("smtpPort \(port) is not a port number") }
        if user != nil, password == nil { throw MailError.badSetting("smtpUser is set but smtpPassword is not") }
        if password != nil, user == nil { throw MailError.badSetting("smtpPassword is set but smtpUser is not") }
        if user != nil, security == .none, !hostIsLoopback {
            throw MailError.badSetting(
                "smtpUser is set but smtpSecurity is none and \(host) is not this machine: the password would cross the network "
                + "in the clear; use starttls or tls")
        }
    }

    package var description: String {
        "SMTP \(server) (\(security.rawValue)\(user.map { ", user \($0)" } ?? ""))"
    }

    package var customMirror: Mirror {
        Mirror(self, children: ["host": host, "port": port, "security": security, "user": user as Any,
                                "password": password == nil ? "nil" : "<hidden>", "caFile": caFile as Any, "heloName": heloName])
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
