// Signing in with a provider, once the provider has vouched for who someone is (the OIDC
// target checks that): the linked account's session; a new account; or, when the email is
// an existing account's, a question: link after that account's password, never a takeover.
import Catalog
import Foundation
import HTTPSupport
import OIDC

/// Who a provider says someone is, as the OIDC library found it.
package typealias ProviderIdentity = ExternalIdentity

package enum ProviderOutcome: Sendable, Equatable {
    /// Signed in to this account (found by the link, or made now).
    case signedIn(Account, created: Bool)
    /// An account has this email and no link to this provider: its owner must prove it with the
    /// password before the provider is linked (`linkWithPassword`).
    case needsLink(email: String)
}

extension AccountService {
    package var identities: IdentityStore { IdentityStore(database: sessions.database) }
    package var flows: SignInFlows { SignInFlows(database: sessions.database) }

    /// What a provider's identity leads to.
    package func signIn(with identity: ProviderIdentity, address: String) async throws -> ProviderOutcome {
        if let linked = try await identities.find(provider: identity.provider, subject: identity.subject) {
            guard let account = try await accounts.account(id: linked.accountID) else {
                throw AccountProblem(.notFound, "the account linked to this \(identity.provider) account is gone")
            }
            return .signedIn(account, created: false)
        }
        if let email = identity.email, try await accounts.account(email: email) != nil {
            await audit.record("provider sign-in needs a link", account: nil, address: address, detail: identity.provider)
            return .needsLink(email: Account.normalized(email: email))
        }
        if settings.signup == .closed {
            throw AccountProblem(.forbidden, "sign-up is closed on this platform: ask an administrator for an account")
        }
        // A provider that shares no email (X): a placeholder address the owner can change in the settings.
        let email = try identity.email.map { try Self.checkedEmail($0) }
            ?? "\(identity.provider)-\(identity.subject.filter { $0.isLetter || $0.isNumber }.prefix(40))@accounts.invalid"
        let name = (try? Self.checkedName(identity.name ?? "", email: email)) ?? String(email.prefix { $0 != "@" })
        var role = Account.Role.broadcaster
        if settings.firstSignupAdmin, try await accounts.count(role: .admin) == 0 { role = .admin }
        let account = Account(email: email, displayName: name, role: role,
                              emailVerifiedAt: identity.emailVerified && identity.email != nil ? Date() : nil)
        do { try await accounts.insert(account) } catch let e as AccountError { throw AccountProblem(.conflict, e.description) }
        try await identities.link(provider: identity.provider, subject: identity.subject, account: account.id, email: identity.email)
        await audit.record("signup", account: account.id, address: address, detail: "with \(identity.provider)")
        await giveHandle(account)
        return .signedIn(account, created: true)
    }

    /// Links a provider to the account with `email`, once its password is given (throttled as a sign-in).
    package func linkWithPassword(_ identity: ProviderIdentity, email: String, password: String, address: String) async throws -> Account {
        let account = try await authenticate(email: email, password: password, address: address)
        try await identities.link(provider: identity.provider, subject: identity.subject, account: account.id, email: identity.email)
        await audit.record("provider linked", account: account.id, address: address, detail: identity.provider)
        return account
    }

    /// Links a provider to the signed-in account (from the settings).
    package func link(_ identity: ProviderIdentity, to account: String, address: String) async throws {
        try await identities.link(provider: identity.provider, subject: identity.subject, account: account, email: identity.email)
        await audit.record("provider linked", account: account, address: address, detail: identity.provider)
    }
}
