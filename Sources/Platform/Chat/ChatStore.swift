// ChatStore: the chat kept in the platform database (migrations 20, 21): messages with their
// time, so a recording replays them; each room's slow mode, followers-only mode, bans and timeouts, so that the room's
// next node (after a failover) keeps its rules. Written by the room's node only.
import Catalog
import Foundation
import SQLKit

package struct ChatStore: Sendable {
    package let database: Database
    private var sql: any SQLDatabase { database.sql }

    /// Messages a range of a replay asks for at the most.
    package static let pageLimit = 500

    package init(database: Database) {
        self.database = database
    }

    package func save(_ m: ChatMessage) async throws {
        try await sql.insert(into: "chat_messages")
            .columns("id", "stream_id", "account_id", "display_name", "body", "posted_at", "offset_seconds")
            .values(SQLBind(m.id), SQLBind(m.stream), SQLBind(m.user), SQLBind(m.name), SQLBind(m.text), SQLBind(m.at),
                    Migrations.optional(m.offset))
            .run()
    }

    /// Marks a message deleted and blanks its text: gone from every replay.
    package func delete(id: String, stream: String, at time: Double) async throws {
        try await sql.update("chat_messages").set("deleted_at", to: SQLBind(time)).set("body", to: SQLBind(""))
            .where("id", .equal, id).where("stream_id", .equal, stream).run()
    }

    /// A stream's messages posted in [from, to) (seconds since 1970), oldest first, deleted
    /// ones left out, at most `limit`.
    package func messages(stream: String, from: Double, to: Double, limit: Int = pageLimit) async throws -> [ChatMessage] {
        let rows = try await sql.select()
            .columns("id", "stream_id", "account_id", "display_name", "body", "posted_at", "offset_seconds")
            .from("chat_messages")
            .where("stream_id", .equal, stream).where("posted_at", .greaterThanOrEqual, from).where("posted_at", .lessThan, to)
            .where("deleted_at", .is, SQLLiteral.null)
            .orderBy("posted_at").limit(max(0, min(limit, Self.pageLimit)))
            .all()
        return rows.compactMap { row in
            guard let id = try? row.decode(column: "id", as: String.self), let s = try? row.decode(column: "stream_id", as: String.self),
                  let user = try? row.decode(column: "account_id", as: String.self),
                  let name = try? row.decode(column: "display_name", as: String.self),
                  let text = try? row.decode(column: "body", as: String.self),
                  let at = try? row.decode(column: "posted_at", as: Double.self) else { return nil }
            let offset = (try? row.decode(column: "offset_seconds", as: Double?.self)) ?? nil
            return ChatMessage(id: id, stream: s, user: user, name: name, text: text, at: at, offset: offset)
        }
    }

    /// The newest `count` messages of a stream, oldest first: what a room shows people who join.
    package func recent(stream: String, count: Int) async throws -> [ChatMessage] {
        let rows = try await sql.select().column("posted_at").from("chat_messages")
            .where("stream_id", .equal, stream).where("deleted_at", .is, SQLLiteral.null)
            .orderBy("posted_at", .descending).limit(count).all()
        guard let oldest = rows.compactMap({ try? $0.decode(column: "posted_at", as: Double.self) }).min() else { return [] }
        return try await messages(stream: stream, from: oldest, to: .greatestFiniteMagnitude, limit: count)
    }

    /// A room's rules as last set.
    package func rules(stream: String) async throws
        -> (slow: Int, followersOnly: Bool, banned: Set<String>, timedOut: [String: Double]) {
        let room = try await sql.select().columns("slow_seconds", "followers_only").from("chat_rooms")
            .where("stream_id", .equal, stream).first()
        let slow = room.flatMap { try? $0.decode(column: "slow_seconds", as: Int.self) } ?? 0
        let followersOnly = room.flatMap { try? $0.decode(column: "followers_only", as: Int.self) } == 1
        var banned: Set<String> = []
        var timedOut: [String: Double] = [:]
        for row in try await sql.select().columns("account_id", "banned", "timed_out_until").from("chat_sanctions")
            .where("stream_id", .equal, stream).all() {
            guard let account = try? row.decode(column: "account_id", as: String.self) else { continue }
            if (try? row.decode(column: "banned", as: Int.self)) == 1 { banned.insert(account) }
            if let until = (try? row.decode(column: "timed_out_until", as: Double?.self)) ?? nil { timedOut[account] = until }
        }
        return (slow, followersOnly, banned, timedOut)
    }

    /// A room's modes: slow mode's seconds (0: off) and followers-only mode (migration 21).
    package func setRules(stream: String, slowSeconds: Int, followersOnly: Bool) async throws {
        try await sql.delete(from: "chat_rooms").where("stream_id", .equal, stream).run()
        try await sql.insert(into: "chat_rooms").columns("stream_id", "slow_seconds", "followers_only")
            .values(SQLBind(stream), SQLBind(slowSeconds), SQLBind(followersOnly ? 1 : 0)).run()
    }

    /// Sets one person's standing in a room (not banned and not timed out: the row goes).
    package func setSanction(stream: String, account: String, banned: Bool, timedOutUntil: Double?) async throws {
        try await sql.delete(from: "chat_sanctions").where("stream_id", .equal, stream).where("account_id", .equal, account).run()
        guard banned || timedOutUntil != nil else { return }
        try await sql.insert(into: "chat_sanctions").columns("stream_id", "account_id", "banned", "timed_out_until")
            .values(SQLBind(stream), SQLBind(account), SQLBind(banned ? 1 : 0), Migrations.optional(timedOutUntil)).run()
    }
}
