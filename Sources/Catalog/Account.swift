// An account of the platform: who owns streams now, who signs in later (passwords and
// sessions come with sign-in).
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

    package init(id: String = StreamIdentifiers.randomID(), email: String, displayName: String, role: Role,
                 createdAt: Date = Date()) {
        self.id = id
        self.email = Self.normalized(email: email)
        self.displayName = displayName
        self.role = role
        self.createdAt = createdAt
    }

    package static func normalized(email: String) -> String {
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }
}
