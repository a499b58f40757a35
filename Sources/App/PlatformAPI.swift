// PlatformAPI: the public API under `/api/v1`, for people (a session cookie, with the
// anti-forgery header) and their scripts (a personal API token). Every route is described in
// the OpenAPI document served at `/api/v1/openapi.json` (`openapi.json`, kept beside this file).
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import Live
import Logging
import NIOCore
import Origin
import Web

/// `GET /api/v1/me` and what account routes answer.
package struct AccountResponse: Codable, Equatable, Sendable {
    package var id: String
    package var email: String
    package var emailVerified: Bool
    package var displayName: String
    package var role: String
    package var createdAt: Date

    init(_ a: Account) {
        id = a.id
        email = a.email
        emailVerified = a.emailVerified
        displayName = a.displayName
        role = a.role.rawValue
        createdAt = a.createdAt
    }
}

/// `POST /api/v1/tokens`: the token itself is in this answer only.
package struct CreatedTokenResponse: Codable, Equatable, Sendable {
    package var token: String
    package var info: APIToken
}

package struct CreateTokenRequest: Codable, Sendable {
    package var name: String
    package var scopes: [String]?
    package var expiresInDays: Int?
}

/// `POST /api/v1/auth/token`: a token for the CLI from an email and password.
package struct LoginRequest: Codable, Sendable {
    package var email: String
    package var password: String
    package var name: String?

    package init(email: String, password: String, name: String?) {
        self.email = email
        self.password = password
        self.name = name
    }
}

package struct SessionResponse: Codable, Equatable, Sendable {
    package var id: String
    package var createdAt: Date
    package var lastSeenAt: Date
    package var expiresAt: Date
    package var userAgent: String
    package var address: String
    package var method: String
    package var current: Bool
}

/// `GET|POST /api/v1/streams/{id}/cohosts`, `POST .../on-air`: a stream's co-hosts and who is on the air.
package struct CoHostsResponse: Codable, Equatable, Sendable {
    /// The co-host's account id the stream is handed to; nil: its host.
    package var onAir: String?
    package var cohosts: [CoHostEntry]
}

/// `POST /api/v1/streams/{id}/cohosts`: `account` is an email address or a channel handle.
struct AddCoHostRequest: Codable, Sendable {
    var account: String
}

/// `POST /api/v1/streams/{id}/on-air`: a co-host's account id, or null for the host.
struct OnAirRequest: Decodable, Sendable {
    var account: String?
}

/// `GET /api/v1/cohosting`: a stream the caller co-hosts, with their own key.
package struct CohostingResponse: Codable, Equatable, Sendable {
    package var id: String
    package var title: String
    /// The caller's key for it (nil when it was made on a node that keeps it).
    package var key: String?
    package var rtmpURL: String?
    package var watchURL: String
    /// Handed to the caller: their broadcast goes out.
    package var onAir: Bool
    package var live: Bool
}

/// `GET|PATCH /api/v1/channel/settings`: the channel's recording settings and sizes.
package struct ChannelSettingsResponse: Codable, Equatable, Sendable {
    package var recordedByDefault: Bool
    package var keepRecordingsDays: Int?
    package var keepRecordingsBytes: Int?
    package var recordingsBytes: Int
    package var nodeRecordingsBytes: Int?
    package var nodeRecordingsMaxBytes: Int?

    init(_ f: ChannelRecordingFigures) {
        recordedByDefault = f.settings.records
        keepRecordingsDays = f.settings.keepDays
        keepRecordingsBytes = f.settings.keepBytes
        recordingsBytes = f.channelBytes
        nodeRecordingsBytes = f.nodeBytes
        nodeRecordingsMaxBytes = f.nodeMaxBytes
    }
}

/// `PATCH /api/v1/channel/settings`: absent fields stay; a keep field null keeps everything.
struct UpdateChannelSettingsRequest: Decodable, Sendable {
    var recordedByDefault: Bool?
    var keepRecordingsDays: Int??
    var keepRecordingsBytes: Int??

    private enum CodingKeys: String, CodingKey { case recordedByDefault, keepRecordingsDays, keepRecordingsBytes }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        recordedByDefault = try c.decodeIfPresent(Bool.self, forKey: .recordedByDefault)
        if c.contains(.keepRecordingsDays) {
            keepRecordingsDays = .some(try c.decodeNil(forKey: .keepRecordingsDays) ? nil : try c.decode(Int.self, forKey: .keepRecordingsDays))
        }
        if c.contains(.keepRecordingsBytes) {
            keepRecordingsBytes = .some(try c.decodeNil(forKey: .keepRecordingsBytes) ? nil : try c.decode(Int.self, forKey: .keepRecordingsBytes))
        }
    }
}

struct UpdateAccountRequest: Codable, Sendable {
    var displayName: String?
    var role: String?
}

package struct PlatformAPI: Sendable {
    let service: AccountService
    let operatorRoutes: OperatorRoutes
    let streams: LiveStreams
    let thumbnails: Thumbnails
    let playback: any PlaybackIssuer
    let channelRecordings: ChannelRecordings
    let recordings: RecordingService
    let logger: Logger
    /// The viewer figures every node reports (nil: the node counts none).
    var viewerFigures: ViewerFigureStore? = nil

    var catalog: StreamCatalog { streams.catalog }

    /// The OpenAPI 3.1 document, kept in the repository beside this file.
    package static let document: [UInt8] = PackageResources.openapi_json

    package var collection: RouteCollection<NodeRequestContext> {
        let api = RouteCollection(context: NodeRequestContext.self)
        api.get("openapi.json") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache", .accessControlAllowOrigin: "*"],
                     body: .init(byteBuffer: ByteBuffer(bytes: Self.document)))
        }

        // MARK: Tokens for scripts and the CLI
        api.post("auth/token") { request, context -> Response in
            let body = try await Self.decode(LoginRequest.self, request, context,
                                             example: #"{"email": "you@example.com", "password": "...", "name": "my laptop"}"#)
            do {
                let account = try await service.authenticate(email: body.email, password: body.password, address: Self.address(context))
                let (info, token) = try await service.createToken(account: account.id, name: body.name ?? "streamtube login",
                                                                  scopes: Scope.all, expiresInDays: 365, address: Self.address(context))
                await service.audit.record("sign-in", account: account.id, address: Self.address(context), detail: "API token for \(info.name)")
                return try Responses.json(CreatedTokenResponse(token: token, info: info), status: .created, cache: "no-store")
            } catch let p as AccountProblem { throw p.problem }
        }

        // MARK: The account
        api.get("me") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            return try Responses.json(AccountResponse(try await account(caller)))
        }
        api.patch("me") { request, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            let body = try await Self.decode(UpdateAccountRequest.self, request, context, example: #"{"displayName": "New name"}"#)
            guard body.role == nil else { throw Problem(.forbidden, "an account cannot change its own role: an admin can") }
            do {
                return try Responses.json(AccountResponse(try await service.update(account: caller.accountID, displayName: body.displayName,
                                                                                   address: Self.address(context))))
            } catch let p as AccountProblem { throw p.problem }
        }
        api.get("tokens") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            return try Responses.json(try await service.tokens.tokens(account: caller.accountID))
        }
        api.post("tokens") { request, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            let body = try await Self.decode(CreateTokenRequest.self, request, context,
                                             example: #"{"name": "CI", "scopes": ["streams:read"], "expiresInDays": 30}"#)
            do {
                let (info, token) = try await service.createToken(account: caller.accountID, name: body.name, scopes: body.scopes ?? Scope.all,
                                                                  expiresInDays: body.expiresInDays, address: Self.address(context))
                return try Responses.json(CreatedTokenResponse(token: token, info: info), status: .created, cache: "no-store")
            } catch let p as AccountProblem { throw p.problem }
        }
        api.delete("tokens/:id") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            let id = try context.parameters.require("id")
            guard try await service.revokeToken(id: id, account: caller.accountID, address: Self.address(context)) else {
                throw Problem.notFound("you have no token \(id)")
            }
            return Response(status: .noContent)
        }
        api.get("sessions") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            return try Responses.json(try await service.sessions.sessions(account: caller.accountID).map { s in
                SessionResponse(id: s.id, createdAt: s.createdAt, lastSeenAt: s.lastSeenAt, expiresAt: s.expiresAt, userAgent: s.userAgent,
                                address: s.address, method: s.method, current: s.id == caller.sessionID)
            })
        }
        api.delete("sessions/:id") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            let id = try context.parameters.require("id")
            guard try await service.sessions.revoke(id: id, account: caller.accountID) else { throw Problem.notFound("you have no session \(id)") }
            await service.audit.record("sign-out", account: caller.accountID, address: Self.address(context), detail: "session \(id)")
            return Response(status: .noContent)
        }
        api.get("audit") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            return try Responses.json(try await service.audit.entries(account: caller.accountID))
        }

        // MARK: Accounts (admins)
        api.get("accounts") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            guard caller.isAdmin else { throw Problem(.forbidden, "only an admin can list accounts") }
            return try Responses.json(try await service.accounts.all().map(AccountResponse.init))
        }
        api.patch("accounts/:id") { request, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            guard caller.isAdmin else { throw Problem(.forbidden, "only an admin can change another account") }
            let id = try context.parameters.require("id")
            let body = try await Self.decode(UpdateAccountRequest.self, request, context, example: #"{"role": "broadcaster"}"#)
            do {
                var updated: Account?
                if let raw = body.role {
                    guard let role = Account.Role(rawValue: raw) else {
                        throw Problem.badRequest("role must be one of \(Account.Role.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    if id == caller.accountID, role != .admin, try await service.accounts.count(role: .admin) <= 1 {
                        throw Problem(.conflict, "you are the only admin: make another admin first")
                    }
                    updated = try await service.setRole(account: id, role: role, by: caller.accountID, address: Self.address(context))
                }
                if let name = body.displayName {
                    updated = try await service.update(account: id, displayName: name, address: Self.address(context))
                }
                if updated == nil { updated = try await service.accounts.account(id: id) }
                guard let result = updated else {
                    throw Problem.notFound("no account \(id)")
                }
                return try Responses.json(AccountResponse(result))
            } catch let p as AccountProblem { throw p.problem }
        }

        // MARK: The channel's settings
        api.get("channel/settings") { _, context -> Response in
            let caller = try context.requireAccount(Scope.accountRead)
            return try Responses.json(ChannelSettingsResponse(try await channelRecordings.figures(owner: caller.accountID)))
        }
        api.patch("channel/settings") { request, context -> Response in
            let caller = try context.requireAccount(Scope.accountWrite)
            let body = try await Self.decode(UpdateChannelSettingsRequest.self, request, context,
                                             example: #"{"recordedByDefault": false, "keepRecordingsDays": 30, "keepRecordingsBytes": null}"#)
            var settings = try await channelRecordings.channels.recording(of: caller.accountID)
            if let on = body.recordedByDefault { settings.records = on }
            if let days = body.keepRecordingsDays { settings.keepDays = days }
            if let bytes = body.keepRecordingsBytes { settings.keepBytes = bytes }
            do {
                return try Responses.json(ChannelSettingsResponse(try await channelRecordings.set(owner: caller.accountID, settings)))
            } catch let e as StreamError { throw Problem.badRequest(e.description) }
        }

        // MARK: Streams
        api.get("streams") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let mine = catalog.all.filter { $0.owner == caller.accountID }.sorted { $0.createdAt < $1.createdAt }
            return try Responses.json(mine.map { operatorRoutes.describe($0, request: request) })
        }
        api.post("streams") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            guard caller.role != Account.Role.viewer.rawValue else {
                throw Problem(.forbidden, "a viewer account cannot broadcast: ask an administrator to make you a broadcaster")
            }
            let body = try await Self.decode(CreateStreamRequest.self, request, context,
                                             example: #"{"title": "My event"} (optional: "ladder", "x264Preset", "keepSource")"#)
            let details: StreamDetails
            do { details = try body.details() } catch let e as StreamError { throw Problem.badRequest(e.description) }
            let record = try await create(title: body.title, owner: caller.accountID, ladder: body.ladder, x264Preset: body.x264Preset,
                                          keepSource: body.keepSource ?? false, details: details)
            return try Responses.json(operatorRoutes.describe(record, request: request), status: .created)
        }
        api.get("streams/:id") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            return try Responses.json(operatorRoutes.describe(try await owned(context, by: caller), request: request))
        }
        api.patch("streams/:id") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            let body = try await Self.decode(UpdateStreamRequest.self, request, context,
                                             example: #"{"title": "New title"} (or "description", "tags", "visibility", "startsAt", "timeZone")"#)
            do {
                guard let changed = try await catalog.update(id: record.id, try body.details()) else { throw Problem.notFound("no stream \(record.id)") }
                return try Responses.json(operatorRoutes.describe(changed, request: request))
            } catch let e as StreamError { throw Problem.badRequest(e.description) }
        }
        api.delete("streams/:id") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            _ = try await catalog.delete(id: record.id)
            logger.info("stream deleted", metadata: ["stream": "\(record.id)", "by": "\(caller.accountID)"])
            return Response(status: .noContent)
        }
        api.post("streams/:id/key") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            guard let rotated = try await catalog.rotateKey(id: record.id) else { throw Problem.notFound("no stream \(record.id)") }
            logger.info("stream key replaced", metadata: ["stream": "\(record.id)", "by": "\(caller.accountID)"])
            return try Responses.json(operatorRoutes.describe(rotated, request: request), cache: "no-store")
        }
        api.get("streams/:id/playback-token") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let record = try await owned(context, by: caller)
            let lifetime = try OperatorRoutes.lifetime(request.uri.queryParameters.get("ttl"))
            guard let pass = await playback.issue(for: record, to: .account(id: caller.accountID, isAdmin: caller.isAdmin), lifetime: lifetime) else {
                throw Problem(.forbidden, "you may not watch this stream")
            }
            return try Responses.json(operatorRoutes.playbackToken(pass, record, request: request), cache: "no-store")
        }
        api.get("streams/:id/health") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let record = try await owned(context, by: caller)
            return try Responses.json(streams.existing(id: record.id)?.health ?? LiveStream(id: record.id).health)
        }
        api.get("streams/:id/analytics") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let record = try await owned(context, by: caller)
            guard let viewerFigures else { throw Problem.notFound("this node keeps no viewer figures") }
            return try Responses.json(try await viewerFigures.figures(stream: record.id, now: Date().timeIntervalSince1970))
        }
        api.put("streams/:id/thumbnail") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            let response = try await ThumbnailUpload.put(request, id: record.id, thumbnails: thumbnails)
            await service.audit.record("thumbnail", account: caller.accountID, address: Self.address(context), detail: "uploaded for stream \(record.id)")
            return response
        }
        api.delete("streams/:id/thumbnail") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            return try await ThumbnailUpload.delete(id: record.id, thumbnails: thumbnails)
        }

        // MARK: Co-hosts
        api.get("streams/:id/cohosts") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            return try Responses.json(try await cohostsResponse(try await owned(context, by: caller)))
        }
        api.post("streams/:id/cohosts") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            let body = try await Self.decode(AddCoHostRequest.self, request, context, example: #"{"account": "them@example.com"} (or a channel handle)"#)
            do {
                let changed = try await cohosts.add(body.account, to: record, by: caller.accountID, address: Self.address(context))
                return try Responses.json(try await cohostsResponse(changed), status: .created)
            } catch let p as AccountProblem { throw p.problem }
        }
        api.delete("streams/:id/cohosts/:account") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            let account = try context.parameters.require("account")
            do {
                _ = try await cohosts.remove(account, from: record, by: caller.accountID, address: Self.address(context))
                return Response(status: .noContent)
            } catch let p as AccountProblem { throw p.problem }
        }
        api.post("streams/:id/on-air") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let record = try await owned(context, by: caller)
            let body = try await Self.decode(OnAirRequest.self, request, context,
                                             example: #"{"account": "<a co-host's account id>"} (or null: the host)"#)
            do {
                let changed = try await cohosts.handOver(record, to: body.account, by: caller.accountID, address: Self.address(context))
                return try Responses.json(try await cohostsResponse(changed))
            } catch let p as AccountProblem { throw p.problem }
        }
        api.get("cohosting") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            return try Responses.json(cohosts.streams(cohostedBy: caller.accountID).map { cohosting($0, for: caller.accountID, request: request) },
                                      cache: "no-store")
        }
        api.post("cohosting/:id/key") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let id = try context.parameters.require("id")
            do {
                let changed = try await cohosts.rotateKey(stream: id, account: caller.accountID, address: Self.address(context))
                return try Responses.json(cohosting(changed, for: caller.accountID, request: request), cache: "no-store")
            } catch let p as AccountProblem { throw p.problem }
        }

        // MARK: Recordings (what each does is `RecordingService`'s; the studio's pages call the same)
        api.get("streams/:id/recordings") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id),
                  RecordingService.may(caller, record, write: false) else {
                throw Problem.notFound("you have no stream \(id.prefix(64))")
            }
            let base = operatorRoutes.baseURL(request).base
            return try Responses.json(try await recordings.items(of: [record]).map { recordings.describe($0, base: base) }, cache: "no-store")
        }
        api.get("recordings") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let mine = catalog.all.filter { $0.owner == caller.accountID }
            let base = operatorRoutes.baseURL(request).base
            return try Responses.json(try await recordings.items(of: mine).map { recordings.describe($0, base: base) }, cache: "no-store")
        }
        api.get("recordings/:id") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsRead)
            let item = try await recordings.item(id: try context.parameters.require("id"), for: caller, write: false)
            return try Responses.json(recordings.describe(item, base: operatorRoutes.baseURL(request).base), cache: "no-store")
        }
        api.patch("recordings/:id") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let item = try await recordings.item(id: try context.parameters.require("id"), for: caller, write: true)
            let body = try await Self.decode(RecordingChange.self, request, context,
                                             example: #"{"title": "Day 1", "visibility": "unlisted", "trimStart": 12.5, "trimEnd": 600}"#)
            let changed = try await recordings.update(item, body, by: caller.accountID)
            return try Responses.json(recordings.describe(changed, base: operatorRoutes.baseURL(request).base), cache: "no-store")
        }
        api.delete("recordings/:id") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let item = try await recordings.item(id: try context.parameters.require("id"), for: caller, write: true)
            try await recordings.delete(item, by: caller.accountID)
            return Response(status: .noContent)
        }
        api.put("recordings/:id/thumbnail") { request, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let item = try await recordings.item(id: try context.parameters.require("id"), for: caller, write: true)
            return try await ThumbnailUpload.put(request) { image in try await recordings.setThumbnail(item, image: image) }
        }
        api.delete("recordings/:id/thumbnail") { _, context -> Response in
            let caller = try context.requireAccount(Scope.streamsWrite)
            let item = try await recordings.item(id: try context.parameters.require("id"), for: caller, write: true)
            try await recordings.setThumbnail(item, image: nil)
            return Response(status: .noContent)
        }
        return api
    }

    var cohosts: CoHosts { CoHosts(service: service, catalog: catalog) }

    func cohostsResponse(_ record: StreamRecord) async throws -> CoHostsResponse {
        CoHostsResponse(onAir: record.onAirPublisher.cohostAccount, cohosts: try await cohosts.entries(record))
    }

    /// A stream as its co-host `account` sees it: their own key, in the URL OBS and ffmpeg take.
    func cohosting(_ record: StreamRecord, for account: String, request: Request) -> CohostingResponse {
        var theirs = record
        theirs.key = record.cohost(account: account)?.key
        let d = operatorRoutes.describe(theirs, request: request)
        return CohostingResponse(id: record.id, title: record.title, key: theirs.key, rtmpURL: d.rtmpURL, watchURL: d.watchURL,
                                 onAir: record.onAirPublisher == .cohost(account: account), live: d.live?.publishing ?? false)
    }

    /// Makes a stream for `owner` (the studio's form and the API).
    func create(title: String, owner: String, ladder: String? = nil, x264Preset: String? = nil, keepSource: Bool = false,
                details: StreamDetails = StreamDetails()) async throws -> StreamRecord {
        do {
            // A new stream takes its channel's recording settings as they are.
            var details = details
            details.channelRecording = try await channelRecordings.channels.recording(of: owner)
            let record = try await catalog.create(title: title, ladder: ladder, x264Preset: x264Preset, keepSource: keepSource, owner: owner,
                                                  details: details) { r in
                _ = try streams.transcodeSettings(for: r)
            }
            logger.info("stream created", metadata: ["stream": "\(record.id)", "owner": "\(owner)"])
            return record
        } catch let e as StreamError {
            throw Problem.badRequest(e.description)
        }
    }

    func account(_ caller: AccountCaller) async throws -> Account {
        guard let a = try await service.account(id: caller.accountID) else {
            throw Problem(.unauthorized, "this account is gone", headers: [.wwwAuthenticate: "Bearer realm=\"streamtube\""])
        }
        return a
    }

    /// The stream the path names, if the caller owns it (or is an admin); otherwise 404, so
    /// others' streams are not even confirmed to exist.
    func owned(_ context: NodeRequestContext, by caller: AccountCaller) async throws -> StreamRecord {
        let id = try context.parameters.require("id")
        guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id),
              record.owner == caller.accountID || caller.isAdmin else {
            throw Problem.notFound("you have no stream \(id)")
        }
        return record
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: NodeRequestContext, example: String) async throws -> T {
        // A small bound before anything is decoded: the token route is open to anyone.
        let body = try await request.body.collect(upTo: 64 * 1024)
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .custom(Self.strictDate)
            return try decoder.decode(type, from: body)
        } catch {
            throw Problem.badRequest("expected a JSON body like \(example)")
        }
    }

    /// Times in request bodies: RFC 3339 and nothing else (`StreamDetailsParser.parseTime`).
    static func strictDate(_ decoder: any Decoder) throws -> Date {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let date = StreamDetailsParser.parseTime(text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(text.prefix(40))")
        }
        return date
    }

    static func address(_ context: NodeRequestContext) -> String { context.clientAddress }
}
