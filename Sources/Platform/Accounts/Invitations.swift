// Invitations to private streams: by mail (one person, the link in the mail) or by link
// (expiring, limited uses, revocable). Whoever opens one joins the stream's invitees — an
// account, or a named guest when the broadcaster allows guests — and may watch it until the
// invitation is revoked: `mayWatch` is the one question playback tokens ask.
import Catalog
import Foundation
import HTTPSupport
import SQLKit

package struct Invitation: Codable, Equatable, Sendable {
    package var id: String
    package var streamID: String
    package var email: String?
    package var maxUses: Int?
    package var uses: Int
    package var expiresAt: Date
    package var revokedAt: Date?
    package var createdAt: Date

    package var isLive: Bool { revokedAt == nil && expiresAt > Date() && (maxUses.map { uses < $0 } ?? true) }
}

package struct Invitee: Codable, Equatable, Sendable {
    package var viewer: String
    package var name: String
    package var joinedAt: Date
    package var invitationID: String
}

package struct InvitationStore: Sendable {
    let database: Database

    package init(database: Database) {
        self.database = database
    }

    static let columns = ["id", "stream_id", "email", "max_uses", "uses", "expires_at", "revoked_at", "created_at"]

    /// A new invitation and its token (in the link only).
    package func create(stream: String, email: String?, maxUses: Int?, lifetime: TimeInterval) async throws -> (Invitation, token: String) {
        let token = RandomToken.make()
        let now = Date()
        let inv = Invitation(id: StreamIdentifiers.randomID(), streamID: stream, email: email, maxUses: maxUses, uses: 0,
                             expiresAt: now.addingTimeInterval(lifetime), revokedAt: nil, createdAt: now)
        try await database.sql.insert(into: "invitations").columns(["token_digest"] + Self.columns)
            .values(SQLBind(RandomToken.digest(token)), SQLBind(inv.id), SQLBind(stream), Migrations.optional(email), Migrations.optional(maxUses),
                    SQLBind(0), SQLBind(inv.expiresAt.timeIntervalSince1970), SQLLiteral.null, SQLBind(now.timeIntervalSince1970))
            .run()
        return (inv, token)
    }

    package func invitation(token: String) async throws -> Invitation? {
        guard RandomToken.isWellFormed(Substring(token)) else { return nil }
        return try await database.sql.select().columns(Self.columns).from("invitations")
            .where("token_digest", .equal, RandomToken.digest(token)).first().flatMap(Self.invitation)
    }

    package func invitations(stream: String) async throws -> [Invitation] {
        try await database.sql.select().columns(Self.columns).from("invitations").where("stream_id", .equal, stream)
            .orderBy("created_at", .descending).all().compactMap(Self.invitation)
    }

    package func revoke(id: String, stream: String) async throws -> Bool {
        let rows = try await database.sql.update("invitations").set("revoked_at", to: SQLBind(Date().timeIntervalSince1970))
            .where("id", .equal, id).where("stream_id", .equal, stream).where("revoked_at", .is, SQLLiteral.null)
            .returning("id").all()
        return !rows.isEmpty
    }

    /// Joins `viewer` (an account id, or `guest:` and a random id) by the invitation `token`;
    /// uses one use. The invitation, or why not.
    package func join(token: String, viewer: String, name: String) async throws -> Invitation {
        guard let inv = try await invitation(token: token) else {
            throw AccountProblem(.notFound, "this invitation is unknown: ask the broadcaster for a new link")
        }
        if try await isInvitee(stream: inv.streamID, viewer: viewer) { return inv }
        guard inv.revokedAt == nil else { throw AccountProblem(.forbidden, "this invitation was withdrawn by the broadcaster") }
        guard inv.expiresAt > Date() else { throw AccountProblem(.forbidden, "this invitation has expired: ask the broadcaster for a new one") }
        // The update that counts the use decides between two joins for the last one.
        var q = database.sql.update("invitations").set("uses", to: SQLRaw("uses + 1")).where("id", .equal, inv.id)
        if let max = inv.maxUses { q = q.where("uses", .lessThan, max) }
        guard try await !q.returning("id").all().isEmpty else {
            throw AccountProblem(.forbidden, "this invitation has been used as many times as it allows")
        }
        try await database.sql.insert(into: "invitees").columns("stream_id", "viewer", "invitation_id", "name", "joined_at")
            .values(SQLBind(inv.streamID), SQLBind(viewer), SQLBind(inv.id), SQLBind(String(name.prefix(80))),
                    SQLBind(Date().timeIntervalSince1970))
            .ignoringConflicts(with: ["stream_id", "viewer"]).run()
        return inv
    }

    /// Whether `viewer` came in by an invitation to `stream` that still stands.
    package func isInvitee(stream: String, viewer: String) async throws -> Bool {
        try await database.sql.select().column(SQLColumn("viewer", table: "invitees")).from("invitees")
            .join("invitations", on: SQLColumn("id", table: "invitations"), .equal, SQLColumn("invitation_id", table: "invitees"))
            .where(SQLColumn("stream_id", table: "invitees"), .equal, SQLBind(stream))
            .where(SQLColumn("viewer", table: "invitees"), .equal, SQLBind(viewer))
            .where(SQLColumn("revoked_at", table: "invitations"), .is, SQLLiteral.null)
            .first() != nil
    }

    package func invitees(stream: String) async throws -> [Invitee] {
        try await database.sql.select().columns("viewer", "name", "joined_at", "invitation_id").from("invitees")
            .where("stream_id", .equal, stream).orderBy("joined_at").all().compactMap { row in
                guard let v = try? row.decode(column: "viewer", as: String.self), let n = try? row.decode(column: "name", as: String.self),
                      let j = try? row.decode(column: "joined_at", as: Double.self),
                      let i = try? row.decode(column: "invitation_id", as: String.self) else { return nil }
                return Invitee(viewer: v, name: n, joinedAt: Date(timeIntervalSince1970: j), invitationID: i)
            }
    }

    static func invitation(_ row: any SQLRow) -> Invitation? {
        guard let id = try? row.decode(column: "id", as: String.self), let stream = try? row.decode(column: "stream_id", as: String.self),
              let uses = try? row.decode(column: "uses", as: Int.self), let expires = try? row.decode(column: "expires_at", as: Double.self),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        return Invitation(id: id, streamID: stream, email: (try? row.decode(column: "email", as: String?.self)) ?? nil,
                          maxUses: (try? row.decode(column: "max_uses", as: Int?.self)) ?? nil, uses: uses,
                          expiresAt: Date(timeIntervalSince1970: expires),
                          revokedAt: ((try? row.decode(column: "revoked_at", as: Double?.self)) ?? nil).map(Date.init(timeIntervalSince1970:)),
                          createdAt: Date(timeIntervalSince1970: created))
    }
}

extension AccountService {
    package var invitations: InvitationStore { InvitationStore(database: sessions.database) }

    /// Whether `viewer` (an account id or a guest id) may watch `stream`: anyone for public and
    /// unlisted streams; for private ones its owner, an admin, or an invitee whose invitation stands.
    package func mayWatch(_ stream: StreamRecord, viewer: String?, isAdmin: Bool = false) async throws -> Bool {
        guard stream.visibility.isPrivate else { return true }
        guard let viewer else { return false }
        if viewer == stream.owner || isAdmin { return true }
        return try await invitations.isInvitee(stream: stream.id, viewer: viewer)
    }
}
