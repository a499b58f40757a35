// Notices about scheduled streams, each sent exactly once however many nodes run: a reminder
// to followers some minutes before the start, a "live now" when the broadcast starts, and a
// "missed" to the broadcaster when a scheduled stream has not started long after its time.
// The stream's owner node (the ring's) does the sending, and the database decides between
// nodes that both think so for a moment: a notice is sent by whoever records it first.
import Accounts
import Catalog
import Foundation
import Logging
import SQLKit
import ServiceLifecycle

package struct NoticeSettings: Sendable {
    /// How long before a start followers are reminded.
    package var reminderLead: TimeInterval = 15 * 60
    /// How long after its time a stream that has not started is marked missed.
    package var missedAfter: TimeInterval = 30 * 60
    /// How often the schedule is looked at.
    package var interval: Duration = .seconds(10)
    package var publicURL = "http://127.0.0.1:8080"
    package init() {}
}

package final class StreamNotices: Service, Sendable {
    package enum Kind: String, Sendable {
        case reminder, live, missed
    }

    let catalog: StreamCatalog
    let accounts: AccountService
    let settings: NoticeSettings
    let nodeID: String
    /// Whether this node is the stream's owner (its origin on the ring).
    let owns: @Sendable (String) -> Bool
    /// Whether the stream is being broadcast now (on this node, its origin).
    let isLive: @Sendable (String) -> Bool
    let send: SendMail
    let logger: Logger

    package init(catalog: StreamCatalog, accounts: AccountService, settings: NoticeSettings, nodeID: String,
                 owns: @escaping @Sendable (String) -> Bool, isLive: @escaping @Sendable (String) -> Bool, send: @escaping SendMail,
                 logger: Logger) {
        self.catalog = catalog
        self.accounts = accounts
        self.settings = settings
        self.nodeID = nodeID
        self.owns = owns
        self.isLive = isLive
        self.send = send
        self.logger = logger
    }

    var database: Database { catalog.store.database }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.tick()
                try? await Task.sleep(for: self.settings.interval)
            }
        }
    }

    /// One look at the schedule: what is due is claimed and sent.
    package func tick(now: Date = Date()) async {
        for stream in catalog.all where stream.owner != nil && owns(stream.id) {
            do { try await look(at: stream, now: now) } catch {
                logger.warning("stream notice not sent", metadata: ["stream": "\(stream.id)", "error": "\(Database.explain(error))"])
            }
        }
    }

    func look(at stream: StreamRecord, now: Date) async throws {
        let live = isLive(stream.id)
        if let start = stream.startsAt {
            let occasion = String(Int(start.timeIntervalSince1970))
            if !live, start > now, start.timeIntervalSince(now) <= settings.reminderLead,
               try await claim(.reminder, stream: stream.id, occasion: occasion, now: now) {
                try await tellFollowers(of: stream, subject: "Starting soon: \(stream.title)",
                                        text: "\(stream.title) starts at \(Self.time(start, zone: stream.timeZone)).")
            }
            if !live, now.timeIntervalSince(start) >= settings.missedAfter, now.timeIntervalSince(start) < 7 * 86400,
               try await !claimed(.live, stream: stream.id, occasion: occasion),
               try await claim(.missed, stream: stream.id, occasion: occasion, now: now), let owner = stream.owner,
               let account = try await accounts.account(id: owner) {
                try await send(account.email, "Your stream did not start: \(stream.title)", """
                    Hello \(account.displayName),

                    \(stream.title) was scheduled for \(Self.time(start, zone: stream.timeZone)) and has not started, so it is
                    marked missed. Give it a new time in the studio: \(settings.publicURL)/studio
                    """)
            }
        }
        // Live now: once per scheduled start, or once a day for streams without one.
        if live {
            let occasion = stream.startsAt.map { String(Int($0.timeIntervalSince1970)) } ?? "day-" + String(Int(now.timeIntervalSince1970 / 86400))
            if try await claim(.live, stream: stream.id, occasion: occasion, now: now) {
                try await tellFollowers(of: stream, subject: "Live now: \(stream.title)", text: "\(stream.title) is live now.")
            }
        }
    }

    /// Records the notice; true when this node recorded it (and so sends it).
    func claim(_ kind: Kind, stream: String, occasion: String, now: Date) async throws -> Bool {
        do {
            let rows = try await database.sql.insert(into: "stream_notices").columns("stream_id", "kind", "occasion", "sent_at", "node")
                .values(SQLBind(stream), SQLBind(kind.rawValue), SQLBind(occasion), SQLBind(now.timeIntervalSince1970), SQLBind(nodeID))
                .ignoringConflicts(with: ["stream_id", "kind", "occasion"])
                .returning("stream_id").all()
            return !rows.isEmpty
        }
    }

    func claimed(_ kind: Kind, stream: String, occasion: String) async throws -> Bool {
        try await database.sql.select().column("stream_id").from("stream_notices").where("stream_id", .equal, stream)
            .where("kind", .equal, kind.rawValue).where("occasion", .equal, occasion).first() != nil
    }

    /// Mails every follower of the stream's channel (public and unlisted streams: private ones
    /// tell their invitees, once invitations exist).
    func tellFollowers(of stream: StreamRecord, subject: String, text: String) async throws {
        guard !stream.visibility.isPrivate, let owner = stream.owner else { return }
        let followers = try await accounts.channels.followerAccounts(of: owner)
        var sent = 0
        for id in followers {
            guard let a = try await accounts.account(id: id) else { continue }
            do {
                try await send(a.email, subject, """
                    Hello \(a.displayName),

                    \(text)

                    Watch: \(settings.publicURL)/watch/\(stream.id)

                    You get this because you follow this channel; stop following it on its page to get no more.
                    """)
                sent += 1
            } catch {
                logger.warning("notice mail not sent", metadata: ["stream": "\(stream.id)", "to": "\(id)", "error": "\(error)"])
            }
        }
        logger.info("stream notice sent", metadata: ["stream": "\(stream.id)", "subject": "\(subject)", "followers": "\(sent)"])
    }

    static func time(_ date: Date, zone: String?) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_GB")
        f.timeZone = zone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")
        f.dateFormat = "EEEE d MMMM yyyy, HH:mm"
        return f.string(from: date) + " (" + (zone ?? "UTC") + ")"
    }
}
