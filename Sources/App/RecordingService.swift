// RecordingService: managing recordings — list, look at, rename, describe, set the visibility,
// trim, set the picture, delete — for the public API (`RecordingAPI`), the studio's pages and the
// operator's listing alike. Who may: a recording is its stream's, so the stream's owner and
// admins change it; its co-hosts see it. A trim is checked against the recording's segments
// (from a copy here, or asked of a holder) and kept as the effective one: segment boundaries.
import Accounts
import AsyncHTTPClient
import Catalog
import Cluster
import Foundation
import HTTPSupport
import Hummingbird
import Live
import Logging
import Origin
import Transcode
import Web

package struct RecordingService: Sendable {
    let store: RecordingStore
    let details: RecordingCatalog
    let deletions: RecordingDeletions
    let catalog: StreamCatalog
    let thumbnails: Thumbnails
    /// A recording's manifest from a copy here, or asked of a holder.
    let manifest: @Sendable (_ id: String, _ holders: [String]) async -> RecordingManifest?
    let logger: Logger
    /// Tells the other nodes of a change (those with databases of their own need it), without waiting for them.
    var tell: @Sendable (RecordingDetails) async -> Void = { _ in }

    /// A recording with what was set on it and its stream.
    package struct Item: Sendable {
        package var summary: RecordingSummary
        package var details: RecordingDetails?
        package var stream: StreamRecord

        package var id: String { summary.recording.id }
        package var title: String {
            details?.title ?? RecordingDetails.defaultTitle(streamTitle: stream.title, startedAt: summary.recording.startedAt)
        }
        package var visibility: StreamRecord.Visibility { details?.visibility(of: stream) ?? stream.visibility }
        package var trimmedDuration: Double {
            guard let d = details, d.trimStart != nil || d.trimEnd != nil else { return summary.recording.durationSeconds }
            return max(0, (d.trimEnd ?? summary.recording.durationSeconds) - (d.trimStart ?? 0))
        }
    }

    // MARK: Reading

    /// The recordings of `streams` (deleted ones left out), newest first. `holders`: the copies
    /// a stream's holders' databases know, merged with this one's (nodes with databases of their
    /// own each know only their own copies).
    package func items(of streams: [StreamRecord], holders: (@Sendable (String) async -> [RecordingCopy])? = nil) async throws -> [Item] {
        let byID = Dictionary(streams.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var summaries = try await store.recordings(streams: Array(byID.keys))
        if let holders {
            var copies: [RecordingCopy] = []
            for id in byID.keys.sorted() { copies += PeerRecordings.merged(try await store.copies(stream: id), await holders(id)) }
            summaries = RecordingStore.summaries(copies)
        }
        let set = try await details.store.details(streams: Array(byID.keys))
        return summaries.compactMap { s -> Item? in
            guard let stream = byID[s.recording.streamID], set[s.recording.id]?.deletedAt == nil else { return nil }
            return Item(summary: s, details: set[s.recording.id], stream: stream)
        }.sorted { $0.summary.recording.startedAt > $1.summary.recording.startedAt }
    }

    /// One recording, unless it was deleted or no node reported it.
    package func item(id: String) async throws -> Item? {
        guard let parts = RecordingManifest.parse(id: id), StreamIdentifiers.isWellFormed(Substring(parts.stream)),
              let stream = await catalog.find(id: parts.stream), let summary = try await store.recording(id: id),
              summary.recording.streamID == stream.id else { return nil }
        let set = try await details.store.details(id: id)
        guard set?.deletedAt == nil else { return nil }
        return Item(summary: summary, details: set, stream: stream)
    }

    /// The recording if `caller` may see it (its stream's owner or co-host, an admin; `write`:
    /// owner or admin); 404 otherwise, so others' recordings are not even confirmed to exist.
    package func item(id: String, for caller: AccountCaller, write: Bool) async throws -> Item {
        guard let item = try await item(id: id), Self.may(caller, item.stream, write: write) else {
            throw Problem.notFound("you have no recording \(id.prefix(100))")
        }
        return item
    }

    static func may(_ caller: AccountCaller, _ stream: StreamRecord, write: Bool) -> Bool {
        caller.isAdmin || stream.owner == caller.accountID || (!write && stream.cohost(account: caller.accountID) != nil)
    }

    /// What the API answers for a recording.
    package func describe(_ item: Item, base: String) -> RecordingResponse {
        let r = item.summary.recording
        let url = base + "/recordings/" + r.id
        return RecordingResponse(
            id: r.id, state: r.state, reason: r.reason, durationSeconds: Self.rounded(r.durationSeconds), playlistURL: url + "/master.m3u8",
            downloadURL: url + "/download.mp4", startedAt: r.startedAt, endedAt: r.endedAt, bytes: r.bytes, renditions: r.renditions,
            nodes: item.summary.nodes, streamId: item.stream.id, title: item.title, description: item.details?.description ?? "",
            visibility: item.visibility.rawValue, inheritsVisibility: item.details?.visibility == nil,
            trimStart: item.details?.trimStart.map(Self.rounded), trimEnd: item.details?.trimEnd.map(Self.rounded),
            trimmedDurationSeconds: Self.rounded(item.trimmedDuration),
            thumbnailURL: url + "/thumbnail.jpg" + (item.details?.thumbnail.map { "?v=" + $0 } ?? ""), pageURL: url)
    }

    static func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    // MARK: Changing

    /// Applies a change (checked whole before anything is kept); the recording as it is now.
    package func update(_ item: Item, _ change: RecordingChange, by account: String) async throws -> Item {
        var d = item.details ?? RecordingDetails(id: item.id, streamID: item.stream.id)
        do {
            if let title = change.title { d.title = try RecordingDetails.checked(title: title) }
            if let text = change.description { d.description = try RecordingDetails.checked(description: text) }
        } catch { throw Problem.badRequest(error.description) }
        if let visibility = change.visibility {
            if let raw = visibility {
                guard let v = StreamRecord.Visibility(rawValue: raw) else {
                    let names = StreamRecord.Visibility.allCases.map(\.rawValue).joined(separator: ", ")
                    throw Problem.badRequest("visibility must be one of \(names), or null for the stream's")
                }
                d.visibility = v
            } else {
                d.visibility = nil
            }
        }
        return try await save(d, item, by: account, trim: change)
    }

    private func save(_ details: RecordingDetails, _ item: Item, by account: String, trim change: RecordingChange) async throws -> Item {
        var d = details
        if change.trimStart != nil || change.trimEnd != nil {
            guard item.summary.recording.state != "recording" else {
                throw Problem(.conflict, "the recording is still being made: trim it once the broadcast ends")
            }
            let start = change.trimStart ?? d.trimStart
            let end = change.trimEnd ?? d.trimEnd
            if start == nil, end == nil {
                (d.trimStart, d.trimEnd, d.trimSegments) = (nil, nil, nil)
            } else {
                try await trim(&d, start: start, end: end, item)
            }
        }
        d.updatedAt = Date()
        guard try await self.details.store.save(d) else { throw Problem.notFound("recording \(item.id) was deleted") }
        self.details.remember(d.id, d)
        let saved = d
        Task { [tell] in await tell(saved) }
        logger.info("recording changed", metadata: ["recording": "\(item.id)", "by": "\(account)"])
        var changed = item
        changed.details = d
        return changed
    }

    /// Sets the effective trim (segment boundaries) of `start` to `end`, checked against the recording's segments.
    private func trim(_ d: inout RecordingDetails, start: Double?, end: Double?, _ item: Item) async throws {
        guard let manifest = await manifest(item.id, item.summary.nodes) else {
            throw Problem(.serviceUnavailable, "no node holding a copy of this recording can be reached: try again later",
                          headers: [.retryAfter: "10"])
        }
        do {
            let trim = try manifest.trim(start: start, end: end)
            (d.trimStart, d.trimEnd) = (trim?.start, trim?.end)
            d.trimSegments = trim.map { $0.firstSequence...$0.lastSequence }
        } catch { throw Problem.badRequest(error.description) }
    }

    /// Deletes a recording and every copy of it. One still being made cannot be (409).
    package func delete(_ item: Item, by account: String) async throws {
        guard item.summary.recording.state != "recording" else {
            throw Problem(.conflict, "the recording is still being made: delete it once the broadcast ends")
        }
        do { try await deletions.delete(id: item.id, stream: item.stream.id) } catch let p as Problem { throw p } catch {
            throw Problem(.internalServerError, "the recording was marked deleted, but this node's copy could not be removed yet: "
                          + "it is tried again (\(Recorder.describe(error)))")
        }
        logger.info("recording deleted", metadata: ["recording": "\(item.id)", "stream": "\(item.stream.id)", "by": "\(account)"])
    }

    /// Keeps an uploaded picture for the recording (made as a stream's is), or (nil) goes back to a frame of it.
    package func setThumbnail(_ item: Item, image: [UInt8]?) async throws {
        var d = item.details ?? RecordingDetails(id: item.id, streamID: item.stream.id)
        d.updatedAt = Date()
        guard let image else {
            d.thumbnail = nil
            guard try await details.store.save(d) else { throw Problem.notFound("recording \(item.id) was deleted") }
            details.remember(d.id, d)
            return
        }
        let jpeg: [UInt8]
        do { jpeg = try await thumbnails.picture(fromUpload: image) } catch let e as ThumbnailError { throw Problem.badRequest(e.description) }
        d.thumbnail = StreamCatalog.thumbnailVersion(jpeg)
        guard try await details.store.setThumbnail(d, jpeg: jpeg) else { throw Problem.notFound("recording \(item.id) was deleted") }
        details.remember(d.id, d)
    }
}

extension RecordingService {
    /// What the studio's and the channel's pages are given. `token` makes a playback token for a
    /// private recording's picture (the viewer's own, as for a stream's).
    package func pages(token: @escaping @Sendable (_ stream: String, _ viewer: String) -> String?) -> RecordingsSource {
        let studio = { @Sendable (item: Item, viewer: String?) -> StudioRecording in
            let r = item.summary.recording
            var picture = "/recordings/\(r.id)/thumbnail.jpg" + (item.details?.thumbnail.map { "?v=" + $0 } ?? "")
            if item.visibility.isPrivate, let viewer, let t = token(item.stream.id, viewer) {
                picture += (picture.contains("?") ? "&" : "?") + "token=" + t
            }
            return StudioRecording(id: r.id, streamID: item.stream.id, streamTitle: item.stream.title, title: item.title,
                                   description: item.details?.description ?? "", visibility: item.visibility.rawValue,
                                   inheritsVisibility: item.details?.visibility == nil, streamVisibility: item.stream.visibility.rawValue,
                                   state: r.state, reason: r.reason, startedAt: r.startedAt, durationSeconds: r.durationSeconds,
                                   trimStart: item.details?.trimStart, trimEnd: item.details?.trimEnd, trimmedSeconds: item.trimmedDuration,
                                   bytes: r.bytes, thumbnailURL: picture, thumbnailUploaded: item.details?.thumbnail != nil)
        }
        return RecordingsSource(list: { account in
            try await items(of: catalog.all.filter { $0.owner == account }).map { studio($0, account) }
        }, find: { caller, id in
            guard let item = try await item(id: id), Self.may(caller, item.stream, write: true) else { return nil }
            return studio(item, caller.accountID)
        }, update: { caller, id, change in
            let item = try await item(id: id, for: caller, write: true)
            _ = try await update(item, change, by: caller.accountID)
        }, delete: { caller, id in
            try await delete(try await item(id: id, for: caller, write: true), by: caller.accountID)
        }, published: { owner in
            let items = (try? await items(of: catalog.all.filter { $0.owner == owner })) ?? []
            return items.filter { $0.visibility == .public && $0.summary.recording.state != "recording" }.map { studio($0, nil) }
        })
    }
}
