// An account of the platform: who owns streams, who signs in. Its password hash, sessions and
// tokens live beside it in the database (the Accounts target), never in this value.
import Foundation

package struct Account: Codable, Equatable, Sendable {
    /// What an account may do: watch, broadcast its own streams, or run the platform.
    package enum Role: String, Codable, CaseIterable, Sendable {
        case viewer, broadcaster, admin
    }

    package var id: String
    /// Kept trimmed and in lower case: one address, one account.
    package var email: String
    package var displayName: String
    package var role: Role
    package var createdAt: Date
    /// When the owner proved the address theirs (a link by mail, or a provider that vouches for it).
    package var emailVerifiedAt: Date?

    package init(id: String = StreamIdentifiers.randomID(), email: String, displayName: String, role: Role,
                 createdAt: Date = Date(), emailVerifiedAt: Date? = nil) {
        self.id = id
        self.email = Self.normalized(email: email)
        self.displayName = displayName
        self.role = role
        self.createdAt = createdAt
        self.emailVerifiedAt = emailVerifiedAt
    }

    package var emailVerified: Bool { emailVerifiedAt != nil }

    package static func normalized(email: String) -> String {
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }
}
