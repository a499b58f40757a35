// ChannelPages: a broadcaster's channel (`/c/{handle}`): what is live now, what is coming up
// and their other streams (public ones only), each with its picture; how many follow it, a
// follow button, its calendar feed; its share card (Open Graph and Twitter tags: the channel's
// name, what is live, the picture of its live or latest stream) and share bar; its past
// broadcasts (public recordings, newest first, each linking to its page `/recordings/{id}`).
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird

package struct ChannelPages: Sendable {
    let service: AccountService
    let catalog: StreamCatalog
    let renderer: PageRenderer
    let publicURL: String
    /// The ids of the streams live now, as this node knows them.
    let live: @Sendable () -> [String]
    /// Whether this node took a picture of a stream's live broadcast (see `StreamPicture`).
    let hasThumbnail: @Sendable (String) -> Bool
    /// A channel's public recordings that ended, newest first (by its owner's account id).
    let pastBroadcasts: @Sendable (String) async -> [StudioRecording]

    package init(service: AccountService, catalog: StreamCatalog, renderer: PageRenderer, publicURL: String,
                 live: @escaping @Sendable () -> [String], hasThumbnail: @escaping @Sendable (String) -> Bool = { _ in false },
                 pastBroadcasts: @escaping @Sendable (String) async -> [StudioRecording] = { _ in [] }) {
        self.pastBroadcasts = pastBroadcasts
        self.service = service
        self.catalog = catalog
        self.renderer = renderer
        self.publicURL = publicURL
        self.live = live
        self.hasThumbnail = hasThumbnail
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/c/:handle") { request, context -> Response in
            guard let (account, path) = try await channel(context) else { return try await notFound(request, context) }
            let streams = catalog.all.filter { $0.owner == account.id && $0.visibility == .public }
            let liveNow = Set(live())
            let now = Date()
            let onAir = streams.filter { liveNow.contains($0.id) }
            let upcoming = streams.filter { !liveNow.contains($0.id) && ($0.startsAt.map { $0 > now.addingTimeInterval(-3600) } ?? false) }
                .sorted { $0.startsAt! < $1.startsAt! }
            let others = streams.filter { s in !liveNow.contains(s.id) && !upcoming.contains { $0.id == s.id } }
                .sorted { $0.createdAt > $1.createdAt }
            let viewer = context.account.flatMap { $0.sessionID != nil ? $0.accountID : nil }
            var following = false
            if let viewer { following = try await service.channels.isFollowing(channel: account.id, follower: viewer) }
            let picture = { (r: StreamRecord) -> String? in StreamPicture.path(r, live: liveNow.contains(r.id) || hasThumbnail(r.id)) }
            let item = { (r: StreamRecord) -> [String: Any] in
                let p = picture(r)
                return ["id": r.id, "title": r.title, "thumbnail": p != nil, "thumbnailSrc": p ?? ""]
            }
            let past = await pastBroadcasts(account.id).prefix(Self.maxPastBroadcasts).map { r -> [String: Any] in
                ["id": r.id, "title": r.title, "date": AccountPages.date(r.startedAt), "duration": RecordingPages.clock(r.trimmedSeconds),
                 "thumbnailSrc": r.thumbnailURL]
            }
            let card = Self.card(name: account.displayName, url: publicURL + path, live: onAir.first,
                                 picture: (onAir + streams.sorted { $0.createdAt > $1.createdAt }).lazy.compactMap(picture).first
                                     .map { publicURL + $0 })
            return try await renderer.render("channel", [
                "card": card.html, "shareBar": card.shareBar(),
                "name": account.displayName, "path": path, "followers": try await service.channels.followers(of: account.id),
                "live": onAir.map(item), "anyLive": !onAir.isEmpty,
                "upcoming": upcoming.map(WebRoutes.scheduled), "anyUpcoming": !upcoming.isEmpty,
                "others": others.map(item), "anyOthers": !others.isEmpty,
                "past": past, "anyPast": !past.isEmpty,
                "signedIn": viewer != nil, "own": viewer == account.id, "following": following,
            ], request, context)
        }
        routes.get("/c/:handle/calendar.ics") { _, context -> Response in
            guard let (account, _) = try await channel(context) else { throw Problem.notFound("no such channel") }
            let scheduled = catalog.all.filter { $0.owner == account.id && $0.visibility == .public && $0.startsAt != nil }
                .sorted { $0.startsAt! < $1.startsAt! }
            return WebRoutes.ics(ICalendar.feed(name: "\(account.displayName) on StreamTube", streams: scheduled, base: publicURL,
                                                host: WebRoutes.host(publicURL)))
        }
        for (action, follow) in [("follow", true), ("unfollow", false)] {
            routes.post("/c/:handle/\(action)") { request, context -> Response in
                guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
                guard let (account, path) = try await channel(context) else { return try await notFound(request, context) }
                do {
                    if follow {
                        try await service.channels.follow(channel: account.id, by: caller.accountID)
                    } else {
                        try await service.channels.unfollow(channel: account.id, by: caller.accountID)
                    }
                } catch let p as AccountProblem {
                    return try await renderer.render("message", ["heading": "Not done", "message": p.description,
                                                                 "link": ["href": path, "text": "Back to the channel"]],
                                                     request, context, status: p.problem.status)
                }
                return AccountPages.redirect(path)
            }
        }
        return routes
    }

    /// The most past broadcasts a channel page lists.
    static let maxPastBroadcasts = 50

    /// A channel's share card: its name, what is live on it (if anything), the picture of its
    /// live or latest stream (absolute; nil: none).
    static func card(name: String, url: String, live: StreamRecord?, picture: String?) -> ShareCard {
        let description = live.map { "Live now on \(name)'s channel: \($0.title)" }
            ?? "\(name)'s channel on StreamTube: live streams, what is coming up and past broadcasts."
        return ShareCard(title: "\(name) on StreamTube", description: description, url: url, image: picture, type: "profile")
    }

    /// The account a channel path names, and its canonical path.
    func channel(_ context: NodeRequestContext) async throws -> (Account, String)? {
        let handle = try context.parameters.require("handle")
        guard let id = try await service.channels.account(handle: handle), let account = try await service.account(id: id) else { return nil }
        return (account, try await service.channels.path(of: id))
    }

    func notFound(_ request: Request, _ context: NodeRequestContext) async throws -> Response {
        try await renderer.render("message", ["heading": "No such channel", "message": "Check the link you were given."], request, context,
                                  status: .notFound)
    }
}
