// The platform's settings, from the node's configuration.
import Accounts
import Foundation
import Logging
import Mail
import OIDC
import Payments

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
    /// How the platform's mail goes out: over SMTP (--smtp-host), else into the outbox folder.
    /// A setting that cannot work fails here, at start, not at the first mail.
    package func sendMail(logger: Logger) throws -> SendMail {
        let mailer = try mailer(logger: logger)
        let from = try mailSender()
        return { to, subject, text in
            try await mailer.send(try MailMessage(from: from, to: [try MailAddress(to)], subject: subject, body: text))
        }
    }
}

extension NodeConfiguration {
    /// The sign-in providers configured: a generic OpenID Connect issuer, Google, Facebook, X.
    package func signInProviders() throws -> [ProviderConfiguration] {
        var out: [ProviderConfiguration] = []
        if let issuer = oidcIssuer, !issuer.isEmpty {
            guard let url = URL(string: issuer), let id = oidcClientID, !id.isEmpty else {
                throw ConfigurationError("--oidc-issuer needs a URL like https://id.example.com and --oidc-client-id")
            }
            out.append(.generic(issuer: url, clientID: id, secret: oidcClientSecret, name: oidcName))
        }
        for (name, id, secret, make) in [
            ("google", googleClientID, googleClientSecret, ProviderConfiguration.google),
            ("facebook", facebookClientID, facebookClientSecret, ProviderConfiguration.facebook),
            ("x", xClientID, xClientSecret, ProviderConfiguration.x),
        ] as [(String, String?, String?, (String, String) -> ProviderConfiguration)] {
            guard let id, !id.isEmpty else { continue }
            guard let secret, !secret.isEmpty else { throw ConfigurationError("--\(name)-client-id needs --\(name)-client-secret") }
            out.append(make(id, secret))
        }
        return out
    }
}

extension NodeConfiguration {
    /// The platform's fee in basis points (1/100 of a percent), from `--platform-fee` in percent.
    package func platformFeeBasisPoints() throws -> Int {
        let t = platformFee.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = Int(parts[0]), whole >= 0, parts[0].allSatisfy(\.isNumber),
              parts.count == 1 || (1...2).contains(parts[1].count) && parts[1].allSatisfy(\.isNumber) else {
            throw ConfigurationError("--platform-fee must be a percentage like 10 or 2.5, got \(platformFee)")
        }
        let fraction = parts.count == 2 ? Int(parts[1].padding(toLength: 2, withPad: "0", startingAt: 0))! : 0
        let bp = whole * 100 + fraction
        guard bp <= 5_000 else { throw ConfigurationError("--platform-fee must be at most 50 (percent), got \(platformFee)") }
        return bp
    }
}

extension NodeConfiguration {
    /// Stripe, when both its secrets are given; one without the other is a clear error.
    package func stripeSettings() throws -> StripeSettings? {
        let key = stripeSecretKey.flatMap { $0.isEmpty ? nil : $0 }, hook = stripeWebhookSecret.flatMap { $0.isEmpty ? nil : $0 }
        guard key != nil || hook != nil else { return nil }
        guard let key, let hook else {
            throw ConfigurationError("Stripe needs both --stripe-secret-key and --stripe-webhook-secret")
        }
        guard let base = URL(string: stripeAPIBase), ["http", "https"].contains(base.scheme ?? ""), base.host != nil else {
            throw ConfigurationError("--stripe-api-base must be an http(s) URL, got \(stripeAPIBase)")
        }
        return StripeSettings(secretKey: key, webhookSecret: hook, apiBase: stripeAPIBase)
    }

    /// BTCPay Server, when its four settings are given; some without the others is a clear error.
    package func btcpaySettings() throws -> BTCPaySettings? {
        let given = [btcpayURL, btcpayAPIKey, btcpayStoreID, btcpayWebhookSecret].map { $0.flatMap { $0.isEmpty ? nil : $0 } }
        guard given.contains(where: { $0 != nil }) else { return nil }
        guard let url = given[0], let key = given[1], let store = given[2], let hook = given[3] else {
            throw ConfigurationError("BTCPay needs --btcpay-url, --btcpay-api-key, --btcpay-store-id and --btcpay-webhook-secret")
        }
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw ConfigurationError("--btcpay-url must be an http(s) URL, got \(url)")
        }
        return BTCPaySettings(url: url, apiKey: key, storeID: store, webhookSecret: hook)
    }

    /// PayPal, when its client id, secret and webhook id are given.
    package func paypalSettings() throws -> PayPalSettings? {
        let given = [paypalClientID, paypalSecret, paypalWebhookID].map { $0.flatMap { $0.isEmpty ? nil : $0 } }
        guard given.contains(where: { $0 != nil }) else { return nil }
        guard let id = given[0], let secret = given[1], let hook = given[2] else {
            throw ConfigurationError("PayPal needs --paypal-client-id, --paypal-secret and --paypal-webhook-id")
        }
        guard let u = URL(string: paypalAPIBase), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw ConfigurationError("--paypal-api-base must be an http(s) URL, got \(paypalAPIBase)")
        }
        return PayPalSettings(clientID: id, secret: secret, webhookID: hook, apiBase: paypalAPIBase)
    }

    /// The gateways buyers may choose, the test gateway first when it is on.
    package func paymentGateways() throws -> [any PaymentGateway] {
        var providers: [any PaymentGateway] = []
        if let stripe = try stripeSettings() { providers.append(StripeGateway(settings: stripe)) }
        if let paypal = try paypalSettings() { providers.append(PayPalGateway(settings: paypal)) }
        if let btcpay = try btcpaySettings() { providers.append(BTCPayGateway(settings: btcpay)) }
        let test: Bool
        switch testPayments.lowercased() {
        case "auto": test = providers.isEmpty
        case "on", "true", "1", "yes": test = true
        case "off", "false", "0", "no": test = false
        default: throw ConfigurationError("--test-payments must be on, off or auto, got \(testPayments)")
        }
        return (test ? [TestGateway()] : []) + providers
    }
}
