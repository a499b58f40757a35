// Channels: each account's public face at `/c/{handle}`, and the people who follow it.
// A handle is chosen in the settings; until then the account's id stands in for it.
import Catalog
import Foundation
import SQLKit

package struct ChannelStore: Sendable {
    let database: Database

    package init(database: Database) {
        self.database = database
    }

    /// Words that name pages of the platform, not channels.
    static let reserved: Set<String> = ["admin", "api", "studio", "settings", "signin", "signup", "signout", "watch", "embed",
                                        "upcoming", "live", "assets", "auth", "help", "streamtube", "support", "about"]

    /// Why `raw` cannot be a handle, or nil (3 to 30 of a-z, 0-9 and inner dashes).
    package static func problem(with raw: String) -> String? {
        let h = raw.lowercased()
        guard (3...30).contains(h.count), h.allSatisfy({ ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }),
              !h.hasPrefix("-"), !h.hasSuffix("-") else {
            return "a handle is 3 to 30 letters a-z, digits and dashes (not first or last)"
        }
        if reserved.contains(h) { return "\(h) names a page of the platform: choose another handle" }
        return nil
    }

    package func handle(of account: String) async throws -> String? {
        try await database.sql.select().column("handle").from("accounts").where("id", .equal, account).first()
            .flatMap { try? $0.decode(column: "handle", as: String?.self) } ?? nil
    }

    /// The account a channel path names: by its handle, or by its id (which always works).
    package func account(handle raw: String) async throws -> String? {
        let h = raw.lowercased()
        guard h.count <= 40, h.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return nil }
        if let row = try await database.sql.select().column("id").from("accounts").where("handle", .equal, h).first() {
            return try row.decode(column: "id", as: String.self)
        }
        return try await database.sql.select().column("id").from("accounts").where("id", .equal, raw)
            .first().flatMap { try? $0.decode(column: "id", as: String.self) }
    }

    package func setHandle(_ raw: String, for account: String) async throws {
        if let why = Self.problem(with: raw) { throw AccountProblem(.invalid, why) }
        let h = raw.lowercased()
        if let owner = try await self.account(handle: h), owner != account {
            throw AccountProblem(.conflict, "the handle \(h) is taken: choose another")
        }
        do {
            try await database.sql.update("accounts").set("handle", to: SQLBind(h)).where("id", .equal, account).run()
        } catch {
            throw AccountProblem(.conflict, "the handle \(h) is taken: choose another")
        }
    }

    /// A channel's recording settings (the defaults when it never set them).
    package func recording(of account: String) async throws -> ChannelRecording {
        let row = try await database.sql.select().column("recording").from("accounts").where("id", .equal, account).first()
        return ChannelRecording(column: row.flatMap { try? $0.decode(column: "recording", as: String?.self) } ?? nil)
    }

    /// Keeps a channel's recording settings on its account; its streams' records get them from
    /// `StreamCatalog.setChannelRecording`.
    package func setRecording(_ settings: ChannelRecording, for account: String) async throws {
        try await database.sql.update("accounts").set("recording", to: Migrations.optional(settings.column))
            .where("id", .equal, account).run()
    }

    /// The path of an account's channel.
    package func path(of account: String) async throws -> String {
        "/c/" + (try await handle(of: account) ?? account)
    }

    // MARK: Followers

    package func follow(channel: String, by follower: String) async throws {
        guard channel != follower else { throw AccountProblem(.invalid, "you cannot follow your own channel") }
        guard try await !isFollowing(channel: channel, follower: follower) else { return }
        do {
            try await database.sql.insert(into: "follows").columns("follower_id", "channel_id", "created_at")
                .values(SQLBind(follower), SQLBind(channel), SQLBind(Date().timeIntervalSince1970)).run()
        } catch {
            // Two clicks at once: the unique index keeps one.
            guard try await isFollowing(channel: channel, follower: follower) else { throw error }
        }
    }

    package func unfollow(channel: String, by follower: String) async throws {
        try await database.sql.delete(from: "follows").where("follower_id", .equal, follower).where("channel_id", .equal, channel).run()
    }

    package func isFollowing(channel: String, follower: String) async throws -> Bool {
        try await database.sql.select().column("channel_id").from("follows").where("follower_id", .equal, follower)
            .where("channel_id", .equal, channel).first() != nil
    }

    package func followers(of channel: String) async throws -> Int {
        try await database.sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("follows")
            .where("channel_id", .equal, channel).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// The channels `follower` follows (account ids).
    package func followed(by follower: String) async throws -> Set<String> {
        Set(try await database.sql.select().column("channel_id").from("follows").where("follower_id", .equal, follower).all()
            .compactMap { try? $0.decode(column: "channel_id", as: String.self) })
    }

    /// Everyone following `channel`, with their email (for reminders).
    package func followerAccounts(of channel: String) async throws -> [String] {
        try await database.sql.select().column("follower_id").from("follows").where("channel_id", .equal, channel).all()
            .compactMap { try? $0.decode(column: "follower_id", as: String.self) }
    }
}

extension AccountService {
    package var channels: ChannelStore { ChannelStore(database: sessions.database) }
}
