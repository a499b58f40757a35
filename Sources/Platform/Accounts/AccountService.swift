// AccountService: what a person does with an account — sign up, sign in, verify their
// address, reset or change a password, sign out (here or everywhere), make API tokens, link a
// sign-in provider — with the audit log written and the throttle consulted on the way.
import Catalog
import Foundation
import HTTPSupport
import Logging

/// Sends one plain-text mail; the app hands in the node's mailer (SMTP, or the outbox folder).
package typealias SendMail = @Sendable (_ to: String, _ subject: String, _ text: String) async throws -> Void

package struct AccountsSettings: Sendable {
    package enum Signup: String, Sendable {
        case open, closed
    }

    package var passwordCost = 12
    package var signup = Signup.open
    /// The first account signed up while no admin exists becomes admin.
    package var firstSignupAdmin = false
    /// Where people reach the platform, for links in mail: `https://stream.example.com`.
    package var publicURL = "http://127.0.0.1:8080"
    package var sessionLifetime: TimeInterval = 30 * 86400
    package var throttle = SignInThrottle.Limits()
    /// Tests only (`@testable import Accounts`): a bcrypt cost below the minimum, to keep a suite
    /// fast (`PasswordPolicy(testingCost:)`); nil in every configured node.
    var testingPasswordCost: Int?
    package init() {}

    /// Cookies marked Secure when people reach the platform over HTTPS.
    package var secureCookies: Bool { publicURL.lowercased().hasPrefix("https://") }
}

/// An answer a person can act on; `status` for the API.
package struct AccountProblem: Error, CustomStringConvertible, Equatable {
    package enum Kind: Sendable, Equatable {
        case invalid, unauthorized, forbidden, notFound, conflict
        case tooManyAttempts(retryAfter: Int)
    }

    package var kind: Kind
    package var description: String

    package init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    package static let badCredentials = AccountProblem(.unauthorized, "that email and password do not match an account")
}

package final class AccountService: Sendable {
    package let accounts: AccountStore
    package let sessions: SessionStore
    package let tokens: APITokenStore
    package let links: EmailLinks
    package let audit: AuditLog
    package let throttle: SignInThrottle
    package let passwords: PasswordPolicy
    package let settings: AccountsSettings
    let sendMail: SendMail
    let logger: Logger
    /// Accounts by id, briefly: every signed-in request needs its role.
    let accountCache: TTLCache<String, Account>
    /// A hash checked when no account matches, so an unknown email takes as long as a wrong password.
    private let decoy: String

    package init(database: Database, settings: AccountsSettings, sendMail: @escaping SendMail, logger: Logger) async throws {
        self.accounts = AccountStore(database: database)
        self.sessions = SessionStore(database: database, lifetime: settings.sessionLifetime)
        self.tokens = APITokenStore(database: database)
        self.links = EmailLinks(database: database)
        self.audit = AuditLog(database: database, logger: logger)
        self.throttle = SignInThrottle(database: database, limits: settings.throttle)
        self.passwords = try settings.testingPasswordCost.map(PasswordPolicy.init(testingCost:)) ?? PasswordPolicy(cost: settings.passwordCost)
        self.settings = settings
        self.sendMail = sendMail
        self.logger = logger
        self.accountCache = TTLCache(ttl: 5)
        self.decoy = try await passwords.hash(RandomToken.make())
    }

    // MARK: Accounts

    package func account(id: String) async throws -> Account? {
        if let a = accountCache.get(id) { return a }
        guard let a = try await accounts.account(id: id) else { return nil }
        accountCache.put(id, a, account: id)
        return a
    }

    /// Drops what this node remembers of an account (another node changed it).
    package func forget(account: String) {
        accountCache.remove(account)
        sessions.cache.removeAll(account: account)
        tokens.cache.removeAll(account: account)
    }

    package func forgetAll() {
        accountCache.removeAll()
        sessions.cache.removeAll()
        tokens.cache.removeAll()
    }

    func changed(_ account: String) async {
        forget(account: account)
        await sessions.database.announce(account, on: SessionStore.changes)
    }

    /// An address as accounts take it (trimmed, lower case), or a problem naming it.
    package static func checkedEmailAddress(_ raw: String) throws -> String { try checkedEmail(raw) }

    static func checkedEmail(_ raw: String) throws -> String {
        let email = Account.normalized(email: raw)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
              !parts[1].hasSuffix("."), !email.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," }),
              !email.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw AccountProblem(.invalid, "\(raw.prefix(100)) is not an email address like name@example.com")
        }
        return email
    }

    static func checkedName(_ raw: String, email: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.isEmpty { return String(email.split(separator: "@").first ?? "") }
        guard name.count <= 80, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw AccountProblem(.invalid, "a name has at most 80 characters and no control characters")
        }
        return name
    }

    /// Makes an account with a password, and mails a link to verify its address. `role` nil:
    /// broadcaster, or admin for the first account when the operator allows it.
    package func signUp(email raw: String, password: String, displayName: String, address: String,
                        role: Account.Role? = nil, byAdmin: Bool = false) async throws -> Account {
        if settings.signup == .closed && !byAdmin {
            throw AccountProblem(.forbidden, "sign-up is closed on this platform: ask an administrator for an account")
        }
        let email = try Self.checkedEmail(raw)
        let name = try Self.checkedName(displayName, email: email)
        if let why = passwords.problem(with: password, email: email) { throw AccountProblem(.invalid, why) }
        var chosen = role ?? .broadcaster
        if role == nil, settings.firstSignupAdmin, try await accounts.count(role: .admin) == 0 { chosen = .admin }
        let account = Account(email: email, displayName: name, role: chosen)
        let hash = try await passwords.hash(password)
        do { try await accounts.insert(account, passwordHash: hash) } catch let e as AccountError {
            throw AccountProblem(.conflict, e.description)
        }
        await audit.record("signup", account: account.id, address: address, detail: "role \(chosen.rawValue)")
        await giveHandle(account)
        await sendVerification(account)
        return account
    }

    /// A first channel handle from the account's name (changed in the settings); none when
    /// every try is taken (the id stands in for it).
    func giveHandle(_ account: Account) async {
        var base = String(account.displayName.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" })
        while base.contains("--") { base = base.replacingOccurrences(of: "--", with: "-") }
        base = String(base.trimmingCharacters(in: CharacterSet(charactersIn: "-")).prefix(24))
        if base.count < 3 { base = "channel" }
        for candidate in [base] + (2...6).map({ "\(base)-\($0)" }) + [base + "-" + account.id.prefix(5)] {
            if (try? await channels.setHandle(candidate, for: account.id)) != nil { return }
        }
    }

    /// Mails a link that proves the address; a mail that cannot go is logged, not thrown (the
    /// account is made; the owner can ask again from the settings).
    package func sendVerification(_ account: Account) async {
        do {
            let token = try await links.issue(.verify, account: account.id, email: account.email)
            try await sendMail(account.email, "Verify your email address for StreamTube", """
                Hello \(account.displayName),

                To verify that \(account.email) is yours, open this link within 2 days:

                \(settings.publicURL)/verify?token=\(token)

                If you did not sign up for StreamTube, ignore this mail.
                """)
        } catch {
            logger.warning("verification mail not sent", metadata: ["account": "\(account.id)", "error": "\(error)"])
        }
    }

    package func verifyEmail(token: String, address: String) async throws -> Account {
        guard let (id, email) = try await links.use(.verify, token: token) else {
            throw AccountProblem(.invalid, "this verification link is unknown, used or expired: sign in and ask for a new one")
        }
        // A link proves the address it was sent to, and only while the account still has it.
        guard let current = try await accounts.account(id: id), current.email == email else {
            throw AccountProblem(.invalid, "this verification link was for an address the account no longer has: sign in and ask for a new one")
        }
        try await accounts.setEmailVerified(id: id, email: email, at: Date())
        await changed(id)
        await audit.record("email verified", account: id, address: address, detail: email)
        guard let a = try await accounts.account(id: id), a.emailVerified else {
            throw AccountProblem(.invalid, "this verification link was for an address the account no longer has: sign in and ask for a new one")
        }
        return a
    }

    /// Checks an email and password; the same answer, in about the same time, whether or not
    /// the email has an account. Throttled per account and per address.
    package func authenticate(email raw: String, password: String, address: String) async throws -> Account {
        let email = Account.normalized(email: raw)
        if case .wait(let seconds) = try await throttle.check(email: email, address: address) {
            await audit.record("sign-in throttled", account: nil, address: address)
            throw AccountProblem(.tooManyAttempts(retryAfter: Int(seconds)),
                                 "too many failed sign-ins: wait \(Int(seconds)) s and try again, or reset your password")
        }
        let found = try await accounts.credentials(email: email)
        let hash = found?.1 ?? decoy
        let ok = try await passwords.verify(String(password.utf8.prefix(PasswordPolicy.maximumBytes)) ?? password, hash: hash)
        guard ok, let (account, stored) = found, stored != nil else {
            let locked = try await throttle.failed(email: email, address: address)
            await audit.record("sign-in failed", account: found?.0.id, address: address)
            if locked, let account = found?.0 {
                await audit.record("account locked", account: account.id, address: address)
                try? await sendMail(account.email, "Your StreamTube account was locked for an hour", """
                    Hello \(account.displayName),

                    Someone failed to sign in to your account many times, from \(address) among others,
                    so it is locked for an hour. If this was not you, your password held; you may want to
                    change it anyway: \(settings.publicURL)/reset
                    """)
            }
            throw AccountProblem.badCredentials
        }
        try await throttle.succeeded(email: email)
        return account
    }

    package func signIn(email: String, password: String, address: String, userAgent: String) async throws -> (Account, token: String) {
        let account = try await authenticate(email: email, password: password, address: address)
        let (_, token) = try await sessions.create(account: account.id, userAgent: userAgent, address: address, method: "password")
        await audit.record("sign-in", account: account.id, address: address, detail: "password")
        return (account, token)
    }

    /// A session for an account a provider vouched for.
    package func openSession(account: Account, method: String, address: String, userAgent: String) async throws -> String {
        let (_, token) = try await sessions.create(account: account.id, userAgent: userAgent, address: address, method: method)
        await audit.record("sign-in", account: account.id, address: address, detail: method)
        return token
    }

    package func signOut(session: String, account: String, address: String) async throws {
        try await sessions.revoke(id: session, account: account)
        await audit.record("sign-out", account: account, address: address)
    }

    package func signOutEverywhere(account: String, keeping: String?, address: String) async throws {
        try await sessions.revokeAll(account: account, keeping: keeping)
        await audit.record("signed out everywhere", account: account, address: address)
    }

    /// Mails a reset link if `email` has an account; says the same either way.
    package func requestReset(email raw: String, address: String) async throws {
        let email = Account.normalized(email: raw)
        guard let account = try await accounts.account(email: email) else {
            await audit.record("reset asked for unknown email", account: nil, address: address)
            return
        }
        let token = try await links.issue(.reset, account: account.id, email: account.email)
        await audit.record("password reset asked", account: account.id, address: address)
        // Sent after the answer: how long a mail server takes must not tell which emails have accounts.
        let (sendMail, logger, publicURL) = (self.sendMail, self.logger, settings.publicURL)
        Task {
            do {
                try await sendMail(account.email, "Reset your StreamTube password", """
                    Hello \(account.displayName),

                    To choose a new password, open this link within an hour:

                    \(publicURL)/reset/\(token)

                    If you did not ask for this, ignore this mail: your password stays as it is.
                    """)
            } catch {
                logger.warning("reset mail not sent", metadata: ["account": "\(account.id)", "error": "\(error)"])
            }
        }
    }

    /// Sets a new password from a reset link; every session of the account ends.
    package func reset(token: String, password: String, address: String) async throws -> Account {
        guard let (id, _) = try await links.peek(.reset, token: token), let account = try await accounts.account(id: id) else {
            throw AccountProblem(.invalid, "this reset link is unknown, used or expired: ask for a new one")
        }
        if let why = passwords.problem(with: password, email: account.email) { throw AccountProblem(.invalid, why) }
        guard try await links.use(.reset, token: token) != nil else {
            throw AccountProblem(.invalid, "this reset link is unknown, used or expired: ask for a new one")
        }
        try await accounts.setPasswordHash(id: id, try await passwords.hash(password))
        // Following the link proved the address too.
        if !account.emailVerified { try await accounts.setEmailVerified(id: id, email: account.email, at: Date()) }
        try await sessions.revokeAll(account: id)
        try await throttle.succeeded(email: account.email)
        await changed(id)
        await audit.record("password reset", account: id, address: address)
        return account
    }

    /// Changes a password (the current one proves it is the owner); other sessions end.
    package func changePassword(account id: String, current: String, new: String, keepingSession: String?, address: String) async throws {
        guard let account = try await accounts.account(id: id) else { throw AccountProblem(.notFound, "no such account") }
        if let hash = try await accounts.passwordHash(id: id) {
            guard try await passwords.verify(current, hash: hash) else {
                await audit.record("password change refused", account: id, address: address, detail: "wrong current password")
                throw AccountProblem(.unauthorized, "the current password is not right")
            }
        }
        if let why = passwords.problem(with: new, email: account.email) { throw AccountProblem(.invalid, why) }
        try await accounts.setPasswordHash(id: id, try await passwords.hash(new))
        try await sessions.revokeAll(account: id, keeping: keepingSession)
        await changed(id)
        await audit.record("password changed", account: id, address: address)
    }

    package func update(account id: String, displayName: String?, address: String) async throws -> Account {
        guard let account = try await accounts.account(id: id) else { throw AccountProblem(.notFound, "no such account") }
        let name = try displayName.map { try Self.checkedName($0, email: account.email) }
        try await accounts.update(id: id, displayName: name)
        await changed(id)
        await audit.record("profile changed", account: id, address: address)
        return try await accounts.account(id: id) ?? account
    }

    /// Changes the address (proved by the password); the new one must be verified again.
    package func changeEmail(account id: String, password: String, newEmail raw: String, address: String) async throws -> Account {
        guard let account = try await accounts.account(id: id) else { throw AccountProblem(.notFound, "no such account") }
        let email = try Self.checkedEmail(raw)
        if try await accounts.passwordHash(id: id) != nil {
            // Checked as a sign-in is: throttled, so a borrowed session cannot guess it.
            do { _ = try await authenticate(email: account.email, password: password, address: address) } catch let p as AccountProblem {
                if p == .badCredentials { throw AccountProblem(.unauthorized, "the password is not right") }
                throw p
            }
        }
        if try await accounts.account(email: email) != nil {
            throw AccountProblem(.conflict, "another account uses \(email)")
        }
        try await accounts.update(id: id, email: email)
        await changed(id)
        await audit.record("email changed", account: id, address: address, detail: "\(account.email) → \(email)")
        let updated = try await accounts.account(id: id) ?? account
        await sendVerification(updated)
        return updated
    }

    package func setRole(account id: String, role: Account.Role, by admin: String, address: String) async throws -> Account {
        guard try await accounts.account(id: id) != nil else { throw AccountProblem(.notFound, "no account \(id)") }
        try await accounts.update(id: id, role: role)
        await changed(id)
        await audit.record("role changed", account: id, address: address, detail: "to \(role.rawValue) by \(admin)")
        return try await accounts.account(id: id)!
    }

    // MARK: API tokens

    package func createToken(account: String, name raw: String, scopes: [String], expiresInDays: Int?, address: String) async throws -> (APIToken, String) {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 80 else { throw AccountProblem(.invalid, "a token needs a name of 1 to 80 characters") }
        let unknown = scopes.filter { !Scope.all.contains($0) }
        guard unknown.isEmpty, !scopes.isEmpty else {
            throw AccountProblem(.invalid, "scopes must be some of \(Scope.all.joined(separator: ", "))"
                                 + (unknown.isEmpty ? "" : "; unknown: \(unknown.joined(separator: ", "))"))
        }
        if let days = expiresInDays, !(1...3650).contains(days) {
            throw AccountProblem(.invalid, "expiresInDays must be from 1 to 3650 (or left out: no expiry)")
        }
        guard try await tokens.tokens(account: account).count < 100 else {
            throw AccountProblem(.conflict, "an account can have at most 100 tokens: revoke some first")
        }
        let made = try await tokens.create(account: account, name: name, scopes: Array(Set(scopes)),
                                           expiresAt: expiresInDays.map { Date().addingTimeInterval(Double($0) * 86400) })
        await audit.record("token created", account: account, address: address, detail: "\(name) (\(made.0.scopes.joined(separator: " ")))")
        return made
    }

    package func revokeToken(id: String, account: String, address: String) async throws -> Bool {
        let done = try await tokens.revoke(id: id, account: account)
        if done { await audit.record("token revoked", account: account, address: address, detail: id) }
        return done
    }

    // MARK: Who is calling

    /// The caller a session cookie's token makes, or nil.
    package func caller(sessionToken: String) async throws -> (AccountCaller, Account)? {
        guard let s = try await sessions.session(token: sessionToken), let a = try await account(id: s.accountID) else { return nil }
        return (AccountCaller(accountID: a.id, role: a.role.rawValue, credential: .session(id: s.id)), a)
    }

    /// The caller an API token makes, or nil.
    package func caller(apiToken: String) async throws -> (AccountCaller, Account)? {
        guard let t = try await tokens.token(apiToken), let a = try await account(id: t.accountID) else { return nil }
        return (AccountCaller(accountID: a.id, role: a.role.rawValue, credential: .token(id: t.id, scopes: Set(t.scopes))), a)
    }
}
