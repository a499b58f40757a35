import Catalog
import Cluster
import Foundation
import HTTPSupport
import Logging
import SQLKit
import Synchronization
import XCTest
@testable import Accounts

/// Mail the service sends, kept instead of sent.
final class Outbox: Sendable {
    struct Mail: Sendable {
        var to: String
        var subject: String
        var text: String
    }

    private let mails = Mutex<[Mail]>([])
    var all: [Mail] { mails.withLock { $0 } }
    func to(_ address: String) -> [Mail] { all.filter { $0.to == address } }

    var send: SendMail {
        { to, subject, text in self.mails.withLock { $0.append(Mail(to: to, subject: subject, text: text)) } }
    }

    /// Waits (up to 5 s) until `address` has had `count` mails with `subject`: some are sent after the answer.
    func wait(for count: Int, subject: String, to address: String) async throws {
        for _ in 0..<500 where to(address).filter({ $0.subject == subject }).count < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(to(address).filter { $0.subject == subject }.count, count, "mail to \(address): \(subject)")
    }

    /// The token of the last link `prefix` (`http://.../verify?token=`) in mail to `address`.
    func token(after prefix: String, to address: String) -> String? {
        for mail in to(address).reversed() {
            guard let r = mail.text.range(of: prefix) else { continue }
            return String(mail.text[r.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        }
        return nil
    }
}

/// Accounts on a real database: SQLite always, PostgreSQL when the suite has one
/// (`STREAMTUBE_TEST_POSTGRES`). Most tests hash at bcrypt's cost 4 (`testingPasswordCost`);
/// the ones about hashing and timing use the production cost of 12.
final class AccountTests: XCTestCase {
    static let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])
    static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .warning
        return l
    }()
    static let password = "correct horse battery"

    struct Harness {
        var location: DatabaseLocation
        var engine: String
        var database: Database
        var service: AccountService
        var outbox: Outbox
        var settings: AccountsSettings

        func signUp(_ email: String = "ada@example.com", password: String = AccountTests.password) async throws -> Account {
            try await service.signUp(email: email, password: password, displayName: "", address: "10.0.0.1")
        }
    }

    static func settings(_ configure: (inout AccountsSettings) -> Void = { _ in }) -> AccountsSettings {
        var s = AccountsSettings()
        s.testingPasswordCost = 4
        s.publicURL = "https://stream.example.com"
        configure(&s)
        return s
    }

    /// Runs `body` once per engine, on a new database each time.
    func eachEngine(_ settings: AccountsSettings = AccountTests.settings(), _ body: (Harness) async throws -> Void) async throws {
        for location in try await TestDatabases.fresh() {
            let db = try await Database.open(location, logger: Self.logger, migrations: Migrations.all(sealer: Self.sealer))
            let outbox = Outbox()
            do {
                let service = try await AccountService(database: db, settings: settings, sendMail: outbox.send, logger: Self.logger)
                try await body(Harness(location: location, engine: TestDatabases.engine(location), database: db, service: service,
                                       outbox: outbox, settings: settings))
            } catch {
                await db.close()
                throw error
            }
            await db.close()
        }
    }

    /// A second node on the same database: its own handle and service, and its `AccountChanges`
    /// running, listening already when this returns.
    struct Node {
        var database: Database
        var service: AccountService
        var changes: Task<Void, Never>

        func stop() async {
            changes.cancel()
            _ = await changes.value
            await database.close()
        }
    }

    func secondNode(_ h: Harness) async throws -> Node {
        let db = try await Database.open(h.location, logger: Self.logger, migrations: Migrations.all(sealer: Self.sealer))
        let service = try await AccountService(database: db, settings: h.settings, sendMail: h.outbox.send, logger: Self.logger)
        let changes = AccountChanges(service: service, database: db)
        let node = Node(database: db, service: service, changes: Task { try? await changes.run() })
        // Listening once a change made on the first node empties a probe entry in the second's cache.
        let probe = Account(id: "probe", email: "probe@example.com", displayName: "probe", role: .viewer)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            service.accountCache.put("probe", probe, account: "probe")
            await h.service.audit.record("probe", account: nil, address: "probe")
            await h.database.announce("probe", on: SessionStore.changes)
            try await Task.sleep(for: .milliseconds(300))
            if service.accountCache.get("probe") == nil { return node }
        }
        await node.stop()
        XCTFail("the second node never heard of a change (\(h.engine))")
        throw CancellationError()
    }

    /// Polls `check` until true, for at most `seconds`; how long it took, or nil.
    func within(_ seconds: TimeInterval, _ check: () async throws -> Bool) async throws -> TimeInterval? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if try await check() { return Date().timeIntervalSince(start) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await check() ? Date().timeIntervalSince(start) : nil
    }

    func problem(_ body: () async throws -> Any) async -> AccountProblem? {
        do {
            _ = try await body()
            return nil
        } catch let p as AccountProblem {
            return p
        } catch {
            XCTFail("not an AccountProblem: \(error)")
            return nil
        }
    }

    // MARK: Passwords

    func testThePasswordCostIsAtLeast12() async throws {
        for cost in [0, 4, 10, 11, 17] {
            XCTAssertThrowsError(try PasswordPolicy(cost: cost), "cost \(cost)")
        }
        for cost in 12...16 { XCTAssertEqual(try PasswordPolicy(cost: cost).cost, cost) }
        var s = AccountsSettings()
        XCTAssertEqual(s.passwordCost, 12, "the default")
        XCTAssertNil(s.testingPasswordCost, "configured nodes never use the test cost")
        s.passwordCost = 11
        let db = try await Database.open(path: TestDatabases.tempFile(), logger: Self.logger, migrations: Migrations.all(sealer: Self.sealer))
        do {
            _ = try await AccountService(database: db, settings: s, sendMail: { _, _, _ in }, logger: Self.logger)
            XCTFail("a service with cost 11")
        } catch {
            XCTAssertTrue("\(error)".contains("from 12"), "\(error)")
        }
        await db.close()
    }

    func testPasswordsAreHashedWithBcryptAtTheConfiguredCost() async throws {
        var s = Self.settings()
        s.testingPasswordCost = nil
        s.passwordCost = 12
        try await eachEngine(s) { h in
            let a = try await h.signUp()
            let hash = try await h.service.accounts.passwordHash(id: a.id)
            let prefix = hash.map { String($0.prefix(7)) }
            XCTAssertTrue(["$2b$12$", "$2a$12$", "$2y$12$"].contains(prefix ?? ""), "\(h.engine): \(hash ?? "none")")
            XCTAssertFalse(hash?.contains(Self.password) ?? true)
            let signedIn = try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "10.0.0.2")
            XCTAssertEqual(signedIn.id, a.id)
        }
    }

    func testPasswordRules() throws {
        let p = PasswordPolicy(testingCost: 4)
        XCTAssertNotNil(p.problem(with: "short1", email: "a@example.com"))
        XCTAssertNotNil(p.problem(with: "aaaaaaaaaaaa", email: "a@example.com"), "too few different characters")
        XCTAssertNotNil(p.problem(with: "A@Example.com", email: "a@example.com"), "the email")
        XCTAssertNotNil(p.problem(with: String(repeating: "abcdefgh", count: 10), email: "a@example.com"), "over 72 bytes")
        XCTAssertNil(p.problem(with: Self.password, email: "a@example.com"))
    }

    // MARK: Sign-up and verification

    func testSignUpNormalizesAndRefusesDuplicatesAndBadInput() async throws {
        try await eachEngine { h in
            let a = try await h.service.signUp(email: "  Ada@Example.COM ", password: Self.password, displayName: " Ada ", address: "10.0.0.1")
            XCTAssertEqual(a.email, "ada@example.com", h.engine)
            XCTAssertEqual(a.displayName, "Ada")
            XCTAssertEqual(a.role, .broadcaster)
            XCTAssertFalse(a.emailVerified)
            let stored = try await h.service.accounts.account(email: "ada@example.com")
            XCTAssertEqual(stored?.id, a.id)

            for email in ["ada@example.com", "ADA@EXAMPLE.COM", " ada@example.com"] {
                let p = await problem { try await h.signUp(email) }
                XCTAssertEqual(p?.kind, .conflict, "\(h.engine): \(email)")
            }
            let count = try await h.service.accounts.count()
            XCTAssertEqual(count, 1)

            for email in ["ada", "ada@", "@example.com", "ada@example", "ada@.com", "a da@example.com", "a@b@example.com", "<a@example.com>"] {
                let p = await problem { try await h.signUp(email) }
                XCTAssertEqual(p?.kind, .invalid, "\(h.engine): \(email)")
                XCTAssertTrue(p?.description.contains("not an email address") ?? false, p?.description ?? "")
            }
            var p = await problem { try await h.signUp("bob@example.com", password: "short") }
            XCTAssertEqual(p?.kind, .invalid)
            XCTAssertTrue(p?.description.contains("at least 10 characters") ?? false, p?.description ?? "")
            p = await problem { try await h.signUp("bob.builder@example.com", password: "Bob.Builder@Example.com") }
            XCTAssertEqual(p?.kind, .invalid)
            XCTAssertTrue(p?.description.contains("cannot be your email") ?? false, p?.description ?? "")
            let after = try await h.service.accounts.count()
            XCTAssertEqual(after, 1, "nothing made by refused sign-ups")
        }
    }

    func testVerificationLinkWorksOnceAndNotWhenExpired() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let mails = h.outbox.to("ada@example.com")
            XCTAssertEqual(mails.count, 1, h.engine)
            XCTAssertTrue(mails.first?.text.contains("https://stream.example.com/verify?token=") ?? false, mails.first?.text ?? "")
            let token = try XCTUnwrap(h.outbox.token(after: "https://stream.example.com/verify?token=", to: "ada@example.com"))
            XCTAssertGreaterThanOrEqual(token.count, 40)
            let verified = try await h.service.verifyEmail(token: token, address: "10.0.0.1")
            XCTAssertEqual(verified.id, a.id)
            XCTAssertTrue(verified.emailVerified)
            let again = await problem { try await h.service.verifyEmail(token: token, address: "10.0.0.1") }
            XCTAssertEqual(again?.kind, .invalid, "\(h.engine): a second use")
            let bogus = await problem { try await h.service.verifyEmail(token: "nonsense", address: "10.0.0.1") }
            XCTAssertEqual(bogus?.kind, .invalid)

            // An expired one.
            let b = try await h.signUp("bob@example.com")
            let bToken = try XCTUnwrap(h.outbox.token(after: "/verify?token=", to: "bob@example.com"))
            try await h.database.sql.raw("UPDATE email_links SET expires_at = \(bind: Date().timeIntervalSince1970 - 1) WHERE account_id = \(bind: b.id)").run()
            let expired = await problem { try await h.service.verifyEmail(token: bToken, address: "10.0.0.1") }
            XCTAssertEqual(expired?.kind, .invalid, "\(h.engine): expired")
            let bob = try await h.service.accounts.account(id: b.id)
            XCTAssertEqual(bob?.emailVerified, false)
        }
    }

    func testALinkForAnOldEmailDoesNotVerifyTheNewOne() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let old = try XCTUnwrap(h.outbox.token(after: "/verify?token=", to: "ada@example.com"))
            let changed = try await h.service.changeEmail(account: a.id, password: Self.password, newEmail: "Ada.New@Example.com", address: "10.0.0.1")
            XCTAssertEqual(changed.email, "ada.new@example.com")
            XCTAssertFalse(changed.emailVerified)
            let p = await problem { try await h.service.verifyEmail(token: old, address: "10.0.0.1") }
            XCTAssertEqual(p?.kind, .invalid, h.engine)
            var now = try await h.service.accounts.account(id: a.id)
            XCTAssertEqual(now?.emailVerified, false, "\(h.engine): the old address's link verified the new one")
            let new = try XCTUnwrap(h.outbox.token(after: "/verify?token=", to: "ada.new@example.com"))
            _ = try await h.service.verifyEmail(token: new, address: "10.0.0.1")
            now = try await h.service.accounts.account(id: a.id)
            XCTAssertEqual(now?.emailVerified, true)
        }
    }

    /// A link issued for an address the account no longer has (changed by other means than
    /// `changeEmail`, say by an admin) verifies nothing, and says so.
    func testALinkWhoseAddressIsNoLongerTheAccountsIsRefused() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let old = try XCTUnwrap(h.outbox.token(after: "/verify?token=", to: "ada@example.com"))
            try await h.service.accounts.update(id: a.id, email: "other@example.com")
            let p = await problem { try await h.service.verifyEmail(token: old, address: "10.0.0.1") }
            XCTAssertEqual(p?.kind, .invalid, "\(h.engine): says verified when nothing was")
            let now = try await h.service.accounts.account(id: a.id)
            XCTAssertEqual(now?.emailVerified, false)
        }
    }

    func testFirstSignupAdminAndClosedSignup() async throws {
        try await eachEngine(Self.settings { $0.firstSignupAdmin = true }) { h in
            let first = try await h.signUp("first@example.com")
            XCTAssertEqual(first.role, .admin, h.engine)
            let second = try await h.signUp("second@example.com")
            XCTAssertEqual(second.role, .broadcaster)
        }
        try await eachEngine(Self.settings { $0.firstSignupAdmin = false }) { h in
            let first = try await h.signUp("first@example.com")
            XCTAssertEqual(first.role, .broadcaster, "\(h.engine): not unless enabled")
        }
        try await eachEngine(Self.settings { $0.firstSignupAdmin = true }) { h in
            // An admin made by another admin's hand already: no one else becomes admin.
            _ = try await h.service.signUp(email: "boss@example.com", password: Self.password, displayName: "", address: "x",
                                           role: .admin, byAdmin: true)
            let next = try await h.signUp("next@example.com")
            XCTAssertEqual(next.role, .broadcaster, h.engine)
        }
        try await eachEngine(Self.settings { $0.signup = .closed }) { h in
            let p = await problem { try await h.signUp() }
            XCTAssertEqual(p?.kind, .forbidden, h.engine)
            let count = try await h.service.accounts.count()
            XCTAssertEqual(count, 0)
            let made = try await h.service.signUp(email: "ada@example.com", password: Self.password, displayName: "", address: "x",
                                                  byAdmin: true)
            XCTAssertEqual(made.role, .broadcaster)
        }
    }

    // MARK: Sign-in and throttling

    func testSignInGivesOneAnswerForWrongPasswordAndUnknownEmail() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (account, token) = try await h.service.signIn(email: " ADA@example.com", password: Self.password, address: "10.0.0.1",
                                                              userAgent: "test")
            XCTAssertEqual(account.id, a.id, h.engine)
            let session = try await h.service.sessions.session(token: token)
            XCTAssertEqual(session?.accountID, a.id)
            XCTAssertEqual(session?.method, "password")
            let wrong = await problem { try await h.service.signIn(email: "ada@example.com", password: "not the password", address: "10.0.0.1", userAgent: "") }
            let unknown = await problem { try await h.service.signIn(email: "nobody@example.com", password: "not the password", address: "10.0.0.1", userAgent: "") }
            XCTAssertEqual(wrong, AccountProblem.badCredentials, h.engine)
            XCTAssertEqual(unknown, AccountProblem.badCredentials, h.engine)
            XCTAssertEqual(wrong, unknown)
        }
    }

    static func throttleSettings(free: Int, lockAfter: Int) -> AccountsSettings {
        settings {
            $0.throttle.free = free
            $0.throttle.lockAfter = lockAfter
            $0.throttle.addressLockAfter = 1000
        }
    }

    /// Moves every failure back by `seconds`, as if that much time had passed.
    func age(_ h: Harness, by seconds: Double) async throws {
        try await h.database.sql.raw("UPDATE signin_failures SET last_at = last_at - \(bind: seconds)").run()
    }

    func failureRow(_ h: Harness, email: String) async throws -> Int? {
        try await h.database.sql.select().column("failures").from("signin_failures")
            .where("key", .equal, SignInThrottle.accountKey(email)).first()?.decode(column: "failures", as: Int.self)
    }

    func testFailuresDelayTheNextTryEvenWithTheRightPassword() async throws {
        try await eachEngine(Self.throttleSettings(free: 2, lockAfter: 100)) { h in
            _ = try await h.signUp()
            for address in ["10.0.1.1", "10.0.1.2"] {
                let p = await problem { try await h.service.authenticate(email: "ada@example.com", password: "wrong password!", address: address) }
                XCTAssertEqual(p, .badCredentials, h.engine)
            }
            let failures = try await failureRow(h, email: "ada@example.com")
            XCTAssertEqual(failures, 2)
            let throttled = await problem { try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "10.0.1.3") }
            XCTAssertEqual(throttled?.kind, .tooManyAttempts(retryAfter: 1), "\(h.engine): within the delay, even the right password")
            XCTAssertEqual(throttled?.problem.headers[.retryAfter], "1")
            // The throttle's own clock: ready after the delay.
            let verdict = try await h.service.throttle.check(email: "ada@example.com", address: "10.0.1.3")
            XCTAssertEqual(verdict, .wait(1))
            let later = try await h.service.throttle.check(email: "ada@example.com", address: "10.0.1.3", now: Date().addingTimeInterval(1.5))
            XCTAssertEqual(later, .allowed)

            try await age(h, by: 1.5)
            let ok = try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "10.0.1.3")
            XCTAssertEqual(ok.email, "ada@example.com")
            let cleared = try await failureRow(h, email: "ada@example.com")
            XCTAssertNil(cleared, "\(h.engine): a good sign-in clears the account's failures")
            // And the next wrong one is counted from zero: not throttled at once.
            let p = await problem { try await h.service.authenticate(email: "ada@example.com", password: "wrong password!", address: "10.0.1.4") }
            XCTAssertEqual(p, .badCredentials)
        }
    }

    func testUnknownEmailsAreThrottledTheSameWay() async throws {
        try await eachEngine(Self.throttleSettings(free: 2, lockAfter: 4)) { h in
            _ = try await h.signUp()
            var answers: [String: [AccountProblem?]] = [:]
            for email in ["ada@example.com", "nobody@example.com"] {
                var seen: [AccountProblem?] = []
                for i in 0..<8 {
                    // Each try from its own address: only the account's count matters here.
                    let address = "10.\(email.count).0.\(i)"
                    seen.append(await problem { try await h.service.authenticate(email: email, password: "wrong password!", address: address) })
                    if i == 2 || i == 5 { try await age(h, by: 10) }
                }
                answers[email] = seen
            }
            XCTAssertEqual(answers["ada@example.com"]!, answers["nobody@example.com"]!, h.engine)
            XCTAssertTrue(answers["ada@example.com"]!.contains { if case .tooManyAttempts = $0?.kind { return true } else { return false } },
                          "\(answers)")
            XCTAssertEqual(h.outbox.all.filter { $0.subject.contains("locked") }.count, 1, "the owner of the real account only")
        }
    }

    func testLockAfterManyFailuresMailsTheOwnerOnce() async throws {
        try await eachEngine(Self.throttleSettings(free: 100, lockAfter: 3)) { h in
            _ = try await h.signUp()
            for i in 0..<3 {
                let p = await problem { try await h.service.authenticate(email: "ada@example.com", password: "wrong password!", address: "10.0.2.\(i)") }
                XCTAssertEqual(p, .badCredentials, "\(h.engine): try \(i)")
            }
            var locks = h.outbox.to("ada@example.com").filter { $0.subject.contains("locked") }
            XCTAssertEqual(locks.count, 1, h.engine)
            XCTAssertTrue(locks.first?.text.contains("https://stream.example.com/reset") ?? false)
            XCTAssertFalse(locks.first?.text.contains("wrong password!") ?? true)
            for i in 0..<3 {
                let p = await problem { try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "10.0.3.\(i)") }
                guard case .tooManyAttempts(let after) = p?.kind else { return XCTFail("\(h.engine): not locked: \(String(describing: p))") }
                XCTAssertGreaterThan(after, 3000)
            }
            locks = h.outbox.to("ada@example.com").filter { $0.subject.contains("locked") }
            XCTAssertEqual(locks.count, 1, "one mail per lock")
            let audit = try await h.service.audit.entries(account: try await h.service.accounts.account(email: "ada@example.com")!.id)
            XCTAssertTrue(audit.contains { $0.event == "account locked" })
        }
    }

    /// Failures at the same moment (a script guessing in parallel) are each counted, and each
    /// answered as a failure: none is lost, none is a database error.
    func testParallelFailuresAreAllCounted() async throws {
        try await eachEngine(Self.throttleSettings(free: 1000, lockAfter: 1000)) { h in
            _ = try await h.signUp()
            let service = h.service
            let answers = await withTaskGroup(of: String.self) { group in
                for i in 0..<12 {
                    group.addTask {
                        do {
                            _ = try await service.authenticate(email: "ada@example.com", password: "wrong password!", address: "10.0.5.\(i % 3)")
                            return "signed in"
                        } catch let p as AccountProblem {
                            return p == .badCredentials ? "bad credentials" : "\(p)"
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                var all: [String] = []
                for await a in group { all.append(a) }
                return all
            }
            XCTAssertEqual(answers, Array(repeating: "bad credentials", count: 12), h.engine)
            let failures = try await failureRow(h, email: "ada@example.com")
            XCTAssertEqual(failures, 12, "\(h.engine): every failure counted")
        }
    }

    /// An unknown email costs one bcrypt, as a wrong password does: the time does not tell
    /// whether an account exists. A comparison within one run, at the production cost.
    func testUnknownEmailTakesAboutAsLongAsAWrongPassword() async throws {
        var s = Self.throttleSettings(free: 1000, lockAfter: 1000)
        s.testingPasswordCost = nil
        s.passwordCost = 12
        try await eachEngine(s) { h in
            _ = try await h.signUp()
            var known: [TimeInterval] = [], unknown: [TimeInterval] = []
            for i in 0..<3 {
                for (email, into) in [("ada@example.com", 0), ("nobody@example.com", 1)] {
                    let start = Date()
                    _ = await problem { try await h.service.authenticate(email: email, password: "wrong password!", address: "10.0.4.\(i)") }
                    let took = Date().timeIntervalSince(start)
                    if into == 0 { known.append(took) } else { unknown.append(took) }
                }
            }
            let ratio = known.sorted()[1] / unknown.sorted()[1]
            XCTAssertTrue((0.5...2.0).contains(ratio), "\(h.engine): wrong password \(known), unknown email \(unknown)")
            XCTAssertGreaterThan(unknown.sorted()[1], 0.02, "a bcrypt at cost 12 for an unknown email too: \(unknown)")
        }
    }

    // MARK: Sessions

    func testSessionsAreFoundRevokedAndExpire() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (s1, t1) = try await h.service.sessions.create(account: a.id, userAgent: "one", address: "10.0.0.1", method: "password")
            let (s2, t2) = try await h.service.sessions.create(account: a.id, userAgent: "two", address: "10.0.0.1", method: "password")
            let (_, t3) = try await h.service.sessions.create(account: a.id, userAgent: "three", address: "10.0.0.1", method: "password")
            for t in [t1, t2, t3] {
                let found = try await h.service.sessions.session(token: t)
                XCTAssertEqual(found?.accountID, a.id, h.engine)
            }
            let caller = try await h.service.caller(sessionToken: t1)
            XCTAssertEqual(caller?.0, AccountCaller(accountID: a.id, role: "broadcaster", credential: .session(id: s1.id)))
            XCTAssertTrue(caller?.0.allows(Scope.streamsWrite) ?? false, "a session may do all its account may")

            try await h.service.signOut(session: s2.id, account: a.id, address: "10.0.0.1")
            let gone = try await h.service.sessions.session(token: t2)
            XCTAssertNil(gone, "\(h.engine): revoked (it was cached)")
            let wrongOwner = try await h.service.sessions.revoke(id: s1.id, account: "someone-else")
            XCTAssertFalse(wrongOwner, "only the account's own sessions")

            try await h.service.signOutEverywhere(account: a.id, keeping: s1.id, address: "10.0.0.1")
            let kept = try await h.service.sessions.session(token: t1)
            let other = try await h.service.sessions.session(token: t3)
            XCTAssertEqual(kept?.id, s1.id, "\(h.engine): this browser's kept")
            XCTAssertNil(other)
            let listed = try await h.service.sessions.sessions(account: a.id)
            XCTAssertEqual(listed.map(\.id), [s1.id])

            // Expired: found by no one.
            let (_, t4) = try await h.service.sessions.create(account: a.id, userAgent: "old", address: "10.0.0.1", method: "password")
            try await h.database.sql.raw("UPDATE sessions SET expires_at = \(bind: Date().timeIntervalSince1970 - 1) WHERE token_digest = \(bind: RandomToken.digest(t4))").run()
            let expired = try await h.service.sessions.session(token: t4)
            XCTAssertNil(expired, "\(h.engine): expired")
            let malformed = try await h.service.sessions.session(token: "x")
            XCTAssertNil(malformed)
        }
    }

    func testARevokedSessionEndsOnAnotherNodeWithinASecond() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (_, token) = try await h.service.signIn(email: "ada@example.com", password: Self.password, address: "10.0.0.1", userAgent: "")
            let b = try await secondNode(h)
            do {
                let s = try await b.service.sessions.session(token: token)
                XCTAssertEqual(s?.accountID, a.id, h.engine)
                XCTAssertNotNil(b.service.sessions.cache.get(RandomToken.digest(token)), "the other node has it cached")
                let onB = try await b.service.caller(sessionToken: token)
                XCTAssertNotNil(onB)
                try await h.service.signOut(session: s!.id, account: a.id, address: "10.0.0.1")
                let took = try await within(1) { try await b.service.sessions.session(token: token) == nil }
                XCTAssertNotNil(took, "\(h.engine): the other node still lets the revoked session in after 1 s")
                let callerOnB = try await b.service.caller(sessionToken: token)
                XCTAssertNil(callerOnB)
            } catch {
                await b.stop()
                throw error
            }
            await b.stop()
        }
    }

    func testAPasswordChangeEndsOtherSessions() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (s1, t1) = try await h.service.sessions.create(account: a.id, userAgent: "", address: "", method: "password")
            let (_, t2) = try await h.service.sessions.create(account: a.id, userAgent: "", address: "", method: "password")
            _ = try await h.service.sessions.session(token: t2)
            let wrong = await problem {
                try await h.service.changePassword(account: a.id, current: "not the password", new: "a new password 1", keepingSession: s1.id, address: "")
            }
            XCTAssertEqual(wrong?.kind, .unauthorized, h.engine)
            let still = try await h.service.sessions.session(token: t2)
            XCTAssertNotNil(still, "a refused change ends nothing")
            let weak = await problem {
                try await h.service.changePassword(account: a.id, current: Self.password, new: "short", keepingSession: s1.id, address: "")
            }
            XCTAssertEqual(weak?.kind, .invalid)

            try await h.service.changePassword(account: a.id, current: Self.password, new: "a new password 1", keepingSession: s1.id, address: "")
            let kept = try await h.service.sessions.session(token: t1)
            let ended = try await h.service.sessions.session(token: t2)
            XCTAssertNotNil(kept, "\(h.engine): the current session is kept")
            XCTAssertNil(ended, "\(h.engine): other sessions end")
            let old = await problem { try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "") }
            XCTAssertEqual(old, .badCredentials)
            let new = try await h.service.authenticate(email: "ada@example.com", password: "a new password 1", address: "")
            XCTAssertEqual(new.id, a.id)
        }
    }

    func testPasswordResetByMail() async throws {
        try await eachEngine { h in
            try await h.service.requestReset(email: "nobody@example.com", address: "10.0.0.1")
            try await Task.sleep(for: .milliseconds(200))
            XCTAssertTrue(h.outbox.all.isEmpty, "\(h.engine): nothing sent for an unknown email")

            let a = try await h.signUp()
            let (_, t1) = try await h.service.sessions.create(account: a.id, userAgent: "", address: "", method: "password")
            _ = try await h.service.sessions.session(token: t1)
            try await h.service.requestReset(email: " ADA@example.com", address: "10.0.0.1")
            try await h.outbox.wait(for: 1, subject: "Reset your StreamTube password", to: "ada@example.com")
            let mail = try XCTUnwrap(h.outbox.to("ada@example.com").last)
            XCTAssertTrue(mail.text.contains("https://stream.example.com/reset/"), mail.text)
            let token = try XCTUnwrap(h.outbox.token(after: "https://stream.example.com/reset/", to: "ada@example.com"))

            let weak = await problem { try await h.service.reset(token: token, password: "short", address: "") }
            XCTAssertEqual(weak?.kind, .invalid)
            let notUsedUp = try await h.service.links.peek(.reset, token: token)
            XCTAssertNotNil(notUsedUp, "a refused password does not use the link")

            let done = try await h.service.reset(token: token, password: "a new password 2", address: "10.0.0.1")
            XCTAssertEqual(done.id, a.id, h.engine)
            let again = await problem { try await h.service.reset(token: token, password: "a new password 3", address: "") }
            XCTAssertEqual(again?.kind, .invalid, "\(h.engine): single use")
            let session = try await h.service.sessions.session(token: t1)
            XCTAssertNil(session, "\(h.engine): every session ends")
            let now = try await h.service.accounts.account(id: a.id)
            XCTAssertEqual(now?.emailVerified, true, "following the link proved the address")
            let signedIn = try await h.service.authenticate(email: "ada@example.com", password: "a new password 2", address: "")
            XCTAssertEqual(signedIn.id, a.id)
            let old = await problem { try await h.service.authenticate(email: "ada@example.com", password: Self.password, address: "") }
            XCTAssertEqual(old, .badCredentials)

            // An expired one.
            try await h.service.requestReset(email: "ada@example.com", address: "")
            try await h.outbox.wait(for: 2, subject: "Reset your StreamTube password", to: "ada@example.com")
            let expiring = try XCTUnwrap(h.outbox.token(after: "/reset/", to: "ada@example.com"))
            XCTAssertNotEqual(expiring, token)
            try await h.database.sql.raw("UPDATE email_links SET expires_at = \(bind: Date().timeIntervalSince1970 - 1) WHERE purpose = 'reset' AND used_at IS NULL").run()
            let expired = await problem { try await h.service.reset(token: expiring, password: "a new password 4", address: "") }
            XCTAssertEqual(expired?.kind, .invalid, h.engine)
        }
    }

    // MARK: API tokens

    func testAPITokensAreShownOnceKeptAsADigestAndScoped() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (info, token) = try await h.service.createToken(account: a.id, name: " CI ", scopes: [Scope.streamsRead, Scope.streamsRead],
                                                                expiresInDays: 30, address: "")
            XCTAssertTrue(token.hasPrefix("stp_"), token)
            XCTAssertEqual(info.name, "CI")
            XCTAssertEqual(info.scopes, [Scope.streamsRead])
            XCTAssertEqual(info.expiresAt?.timeIntervalSinceNow ?? 0, 30 * 86400, accuracy: 60)

            let rows = try await h.database.sql.select().columns("token_digest", "id", "account_id", "name", "scopes").from("api_tokens").all()
            XCTAssertEqual(rows.count, 1)
            for column in ["token_digest", "id", "account_id", "name", "scopes"] {
                let value = try rows[0].decode(column: column, as: String.self)
                XCTAssertFalse(value.contains(token.dropFirst(4)), "\(h.engine): \(column) holds the token")
            }
            XCTAssertEqual(try rows[0].decode(column: "token_digest", as: String.self), RandomToken.digest(token))

            let found = try await h.service.caller(apiToken: token)
            let caller = try XCTUnwrap(found).0
            XCTAssertEqual(caller.accountID, a.id)
            XCTAssertTrue(caller.allows(Scope.streamsRead))
            XCTAssertFalse(caller.allows(Scope.streamsWrite), "\(h.engine): only its scopes")
            XCTAssertFalse(caller.allows(Scope.accountWrite))
            XCTAssertNil(caller.sessionID)
            let noPrefix = try await h.service.caller(apiToken: String(token.dropFirst(4)))
            XCTAssertNil(noPrefix, "the prefix is part of the token")
            let forged = try await h.service.caller(apiToken: "stp_" + RandomToken.make())
            XCTAssertNil(forged)

            for (scopes, days) in [([String](), 1), (["streams:read", "admin"], 1), (["streams:read"], 0), (["streams:read"], 4000)] {
                let p = await problem { try await h.service.createToken(account: a.id, name: "x", scopes: scopes, expiresInDays: days, address: "") }
                XCTAssertEqual(p?.kind, .invalid, "\(h.engine): \(scopes) \(days)")
            }
            let unnamed = await problem { try await h.service.createToken(account: a.id, name: "  ", scopes: Scope.all, expiresInDays: nil, address: "") }
            XCTAssertEqual(unnamed?.kind, .invalid)

            // Expired.
            let (old, oldToken) = try await h.service.createToken(account: a.id, name: "old", scopes: Scope.all, expiresInDays: 1, address: "")
            try await h.database.sql.raw("UPDATE api_tokens SET expires_at = \(bind: Date().timeIntervalSince1970 - 1) WHERE id = \(bind: old.id)").run()
            let expired = try await h.service.caller(apiToken: oldToken)
            XCTAssertNil(expired, "\(h.engine): expired")

            // Revoked: only by its account.
            let notMine = try await h.service.revokeToken(id: info.id, account: "someone-else", address: "")
            XCTAssertFalse(notMine)
            let revoked = try await h.service.revokeToken(id: info.id, account: a.id, address: "")
            XCTAssertTrue(revoked)
            let afterRevoke = try await h.service.caller(apiToken: token)
            XCTAssertNil(afterRevoke, "\(h.engine): revoked (it was cached)")
        }
    }

    func testARevokedTokenIsRefusedOnAnotherNodeWithinASecond() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (info, token) = try await h.service.createToken(account: a.id, name: "CI", scopes: Scope.all, expiresInDays: nil, address: "")
            let b = try await secondNode(h)
            do {
                let onB = try await b.service.caller(apiToken: token)
                XCTAssertEqual(onB?.0.accountID, a.id, h.engine)
                XCTAssertNotNil(b.service.tokens.cache.get(RandomToken.digest(token)), "the other node has it cached")
                _ = try await h.service.revokeToken(id: info.id, account: a.id, address: "")
                let took = try await within(1) { try await b.service.caller(apiToken: token) == nil }
                XCTAssertNotNil(took, "\(h.engine): the other node still takes the revoked token after 1 s")
            } catch {
                await b.stop()
                throw error
            }
            await b.stop()
        }
    }

    /// A role changed on one node holds on the other at once (the account is cached too).
    func testARoleChangeReachesAnotherNode() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            let (_, token) = try await h.service.signIn(email: "ada@example.com", password: Self.password, address: "", userAgent: "")
            let b = try await secondNode(h)
            do {
                let before = try await b.service.caller(sessionToken: token)
                XCTAssertEqual(before?.0.role, "broadcaster", h.engine)
                _ = try await h.service.setRole(account: a.id, role: .viewer, by: "admin", address: "")
                let took = try await within(1) { try await b.service.caller(sessionToken: token)?.0.role == "viewer" }
                XCTAssertNotNil(took, "\(h.engine): the other node keeps the old role")
            } catch {
                await b.stop()
                throw error
            }
            await b.stop()
        }
    }

    // MARK: Audit

    func testTheAuditLogRecordsWithoutSecrets() async throws {
        try await eachEngine { h in
            let a = try await h.signUp()
            _ = try await h.service.signIn(email: "ada@example.com", password: Self.password, address: "10.9.9.9", userAgent: "")
            _ = await problem { try await h.service.signIn(email: "ada@example.com", password: "a wrong password", address: "10.9.9.9", userAgent: "") }
            try await h.service.changePassword(account: a.id, current: Self.password, new: "a new password 5", keepingSession: nil, address: "10.9.9.9")
            let (info, token) = try await h.service.createToken(account: a.id, name: "CI", scopes: Scope.all, expiresInDays: nil, address: "10.9.9.9")
            _ = try await h.service.revokeToken(id: info.id, account: a.id, address: "10.9.9.9")
            let entries = try await h.service.audit.entries(account: a.id)
            let events = Set(entries.map(\.event))
            for event in ["signup", "sign-in", "sign-in failed", "password changed", "token created", "token revoked"] {
                XCTAssertTrue(events.contains(event), "\(h.engine): no \(event) in \(events)")
            }
            XCTAssertTrue(entries.contains { $0.event == "sign-in" && $0.address == "10.9.9.9" })
            let secrets = [Self.password, "a wrong password", "a new password 5", token, String(token.dropFirst(4))]
            let verifyToken = h.outbox.token(after: "/verify?token=", to: "ada@example.com")
            let rows = try await h.database.sql.select().columns("event", "detail", "address").from("audit_log").all()
            for row in rows {
                let text = try ["event", "detail", "address"].map { try row.decode(column: $0, as: String.self) }.joined(separator: " ")
                for secret in secrets + (verifyToken.map { [$0] } ?? []) {
                    XCTAssertFalse(text.contains(secret), "\(h.engine): the audit log holds a secret: \(text)")
                }
            }
            let others = try await h.service.audit.entries(account: "someone-else")
            XCTAssertTrue(others.isEmpty)
        }
    }
}
