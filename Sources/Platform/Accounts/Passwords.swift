// Passwords: what one may be, and its bcrypt hash (hummingbird-auth), worked out on a thread
// pool so a sign-in never holds an event loop or the task pool for the quarter second it takes.
import Foundation
import HummingbirdBcrypt
import NIOPosix

package struct PasswordPolicy: Sendable {
    /// bcrypt's work factor: 2^cost rounds; at least 12.
    package let cost: Int
    package static let minimumLength = 10
    /// bcrypt reads 72 bytes; a longer password would be cut without a word.
    package static let maximumBytes = 72

    package init(cost: Int) throws {
        guard (12...16).contains(cost) else {
            throw AccountsError.configuration("--password-cost must be from 12 to 16 (each step doubles the work), got \(cost)")
        }
        self.cost = cost
    }

    /// Tests only (`@testable import Accounts`): any cost bcrypt takes, so a suite that signs in
    /// many times stays fast. Configuration never reaches it: `init(cost:)` keeps the minimum of 12.
    init(testingCost cost: Int) {
        precondition((4...31).contains(cost), "bcrypt's cost is from 4 to 31")
        self.cost = cost
    }

    /// Why `password` cannot be one, or nil.
    package func problem(with password: String, email: String) -> String? {
        if password.count < Self.minimumLength { return "a password needs at least \(Self.minimumLength) characters" }
        if password.utf8.count > Self.maximumBytes { return "a password can be at most \(Self.maximumBytes) bytes long" }
        if password.lowercased() == email.lowercased() { return "a password cannot be your email address" }
        if Set(password).count < 4 { return "a password needs more than a few different characters" }
        return nil
    }

    package func hash(_ password: String) async throws -> String {
        let cost = UInt8(self.cost)
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    package func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}

package enum AccountsError: Error, CustomStringConvertible {
    case configuration(String)
    package var description: String {
        switch self {
        case .configuration(let s): return s
        }
    }
}
