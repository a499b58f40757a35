// The platform's settings, from the node's configuration.
import Accounts
import Foundation
import Logging

extension NodeConfiguration {
    /// Accounts' settings; a value that cannot work is a clear error at start.
    package func accountsSettings() throws -> AccountsSettings {
        var s = AccountsSettings()
        guard let signup = AccountsSettings.Signup(rawValue: signup.lowercased()) else {
            throw ConfigurationError("--signup must be open or closed, got \(signup)")
        }
        s.signup = signup
        s.firstSignupAdmin = firstSignupAdmin
        s.passwordCost = passwordCost
        s.publicURL = try platformURL()
        return s
    }

    /// Where people reach the platform: --public-url, else http://PUBLIC_HOST:HTTP_PORT.
    package func platformURL() throws -> String {
        if let raw = publicURL {
            let url = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
            guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil,
                  u.query == nil, u.fragment == nil else {
                throw ConfigurationError("--public-url must be an http(s) URL like https://stream.example.com, got \(raw)")
            }
            return url
        }
        let host = publicHost ?? "127.0.0.1"
        return httpPort == 80 ? "http://\(host)" : "http://\(host):\(httpPort)"
    }
}

extension NodeConfiguration {
    /// How the platform's mail goes out.
    package func sendMail(logger: Logger) -> SendMail {
        let outbox = URL(fileURLWithPath: dataDir).appendingPathComponent("outbox")
        let from = mailFrom
        return { to, subject, text in
            try FileManager.default.createDirectory(at: outbox, withIntermediateDirectories: true)
            let file = outbox.appendingPathComponent("\(Int(Date().timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8)).eml")
            let message = "From: \(from)\r\nTo: \(to)\r\nSubject: \(subject)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                + text.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n"
            try Data(message.utf8).write(to: file)
            logger.info("mail written to the outbox", metadata: ["to": "\(to)", "file": "\(file.path)"])
        }
    }
}
