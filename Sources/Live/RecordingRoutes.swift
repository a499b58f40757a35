// RecordingRoutes: a recording as VOD, on every node — `GET /recordings/{id}/master.m3u8`,
// `/recordings/{id}/{rendition}/index.m3u8`, `init{n}.mp4` and `seg{n}.m4s` — under the same
// playback rules (and tokens) as its stream. A node holding a copy answers from its disk; any
// other asks a holder through the edge (the copies the database lists, then the stream's
// origin and standbys), keeping the media in the edge store: every file of a recording is
// immutable. `download.mp4`: a finished recording as one MP4 (`RecordingDownloads`), with a file
// name from the stream's title and byte ranges; one still being made answers 409 with
// `Retry-After`; a node without a copy asks a holder as for the playlists.
// What people set on a recording is asked on every request, on every node (`RecordingCatalog`,
// in memory): a deleted recording answers 404; its own visibility, when set, stands for its
// stream's (the same rules, and the stream's playback tokens, or a token scoped to this one
// recording: a ticket for it alone); a trim keeps the segments it
// names (`RecordingTrim`) in the playlists, the files served and the MP4.
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore
import Origin

package struct RecordingRoutes: Sendable {
    package let recorder: Recorder?
    package let store: RecordingStore?
    package let catalog: StreamCatalog
    package let edge: EdgeProxy?
    package let playback: any PlaybackPolicy
    package let downloads: RecordingDownloads?
    package let details: RecordingCatalog?
    /// Makes a recording's picture from its first keyframe.
    package let thumbnails: Thumbnails?
    /// Counts the viewer sessions of recordings this node serves, under the recording's id (nil: not counted).
    package var sessions: ViewerSessions?

    package init(recorder: Recorder?, store: RecordingStore?, catalog: StreamCatalog, edge: EdgeProxy?,
                 playback: any PlaybackPolicy = PublicPlayback(), downloads: RecordingDownloads? = nil, details: RecordingCatalog? = nil,
                 thumbnails: Thumbnails? = nil) {
        self.thumbnails = thumbnails
        self.downloads = downloads
        self.details = details
        self.recorder = recorder
        self.store = store
        self.catalog = catalog
        self.edge = edge
        self.playback = playback
    }

    /// The playlists of a recording still being made change; a finished one's never do.
    static let growingCache = 2
    /// A finished recording's playlists and MP4 change when it is trimmed: briefly.
    static let finishedCache = 10
    /// How long a download of a recording still being made is told to wait: about a segment's
    /// worth past a typical broadcaster's reconnection, short enough to see the end soon after.
    static let downloadRetryAfter = 30

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        // One parameter name for the second segment: the router's trie takes one per position.
        routes.get("/recordings/:recording/:name") { request, context in
            try await serve(request, context, rendition: nil, file: try context.parameters.require("name"))
        }
        routes.get("/recordings/:recording/:name/:file") { request, context in
            let rendition = try context.parameters.require("name")
            guard StreamIdentifiers.isWellFormed(Substring(rendition)) else { throw Problem.notFound("no such rendition") }
            return try await serve(request, context, rendition: rendition, file: try context.parameters.require("file"))
        }
        return routes
    }

    /// A file of a recording's folder, as its playlists name it.
    enum FileName: Equatable {
        case master, download, playlist, thumbnail
        case initSegment(Int)
        case segment(Int)

        init?(_ file: String, inRendition: Bool) {
            if !inRendition {
                switch file {
                case "master.m3u8": self = .master
                case "download.mp4": self = .download
                case "thumbnail.jpg": self = .thumbnail
                default: return nil
                }
                return
            }
            if file == "index.m3u8" { self = .playlist; return }
            if file.hasPrefix("init"), file.hasSuffix(".mp4"), let v = MediaName.number(file.dropFirst(4).dropLast(4)) {
                self = .initSegment(v)
            } else if file.hasPrefix("seg"), file.hasSuffix(".m4s"), let n = MediaName.number(file.dropFirst(3).dropLast(4)) {
                self = .segment(n)
            } else {
                return nil
            }
        }

        var isMedia: Bool {
            switch self {
            case .initSegment, .segment: return true
            default: return false
            }
        }
    }

    private func serve(_ request: Request, _ context: NodeRequestContext, rendition: String?, file: String) async throws -> Response {
        let id = try context.parameters.require("recording")
        guard let name = FileName(file, inRendition: rendition != nil) else { throw Problem.notFound("no such file") }
        guard let parts = RecordingManifest.parse(id: id), StreamIdentifiers.isWellFormed(Substring(parts.stream)),
              let record = await catalog.find(id: parts.stream) else {
            throw Problem.notFound("no recording \(id)")
        }
        var set: RecordingDetails?
        do {
            set = try await details?.details(id: id)
            // A picture asked for by a version this node has not heard of yet (just uploaded
            // elsewhere): read the details again rather than answer another picture under its name.
            if name == .thumbnail, let v = request.uri.queryParameters.get("v"), set?.thumbnail != v, let details {
                set = try await details.store.details(id: id)
                details.remember(id, set)
            }
        } catch {
            throw Problem(.serviceUnavailable, "the recording's settings cannot be read now", headers: [.retryAfter: "5"])
        }
        if set?.deletedAt != nil { throw Problem.notFound("recording \(id) was deleted") }
        // The recording's own visibility stands for its stream's; the stream's tokens open it.
        var shown = record
        if let set { shown.visibility = set.visibility(of: record) }
        var access = try LiveRoutes.authorize(request, shown, recording: id, playback: playback)
        switch name {
        case .master, .playlist:
            access.session = LiveRoutes.session(request, sessions: sessions, stream: id, rendition: rendition, assign: name == .master)
        case .initSegment, .segment:
            if sessions != nil, request.headers[.streamTubeEdge] == nil { access.session = ViewerSessions.session(inQuery: request.uri.query) }
        case .download, .thumbnail:
            break
        }
        if name == .thumbnail, let set, set.thumbnail != nil, let uploaded = try? await details?.store.thumbnail(id: id) {
            return Self.picture(uploaded.jpeg, etag: "\"u-\(uploaded.version)\"", access: access)
        }
        let own = recorder?.manifest(id: id)
        let summary = own == nil || request.headers[.streamTubeEdge] != nil ? nil : ((try? await store?.recording(id: id)) ?? nil)
        let fromOwn = { (held: RecordingManifest) async throws -> Response in
            let trim = try? held.trim(start: set?.trimStart, end: set?.trimEnd)
            let manifest = held.trimmed(trim)
            if name == .thumbnail { return try await self.picture(of: manifest, access: access) }
            if name == .download {
                return try await self.download(manifest, trim: trim, title: set?.title ?? record.title, request, context, access: access)
            }
            return LiveRoutes.served(try self.answer(manifest, rendition: rendition, name: name, access: access, path: request.uri.path),
                                     request, sessions: self.sessions, stream: id, access: access)
        }
        if let held = own, Self.servesOwnCopy(held, best: summary?.recording, localID: recorder?.nodeID) { return try await fromOwn(held) }
        // Held elsewhere: a segment the trim leaves out is not served from an edge's store either.
        if case .segment(let n) = name, let kept = set?.trimSegments, !kept.contains(n) { throw Problem.notFound("no such segment") }
        // Ask a holder (never an edge asking us in turn).
        if let edge, request.headers[.streamTubeEdge] == nil {
            var known = summary
            if known == nil { known = (try? await store?.recording(id: id)) ?? nil }
            let holders = known?.nodes.filter { $0 != recorder?.nodeID } ?? []
            if name == .download {
                // One large file, asked for rarely: streamed from a holder, kept by no edge store.
                let upstream = await edge.stream(streamID: record.id, path: request.uri.path, token: access.token,
                                                 range: request.headers[.range], holders: holders)
                if upstream.status != .serviceUnavailable { return upstream }
                throw Problem.notFound("no recording \(id) on the nodes that can be reached")
            }
            let upstream = await edge.serve(streamID: record.id, path: request.uri.path, query: nil, immutable: name.isMedia,
                                            token: access.token, carry: access.carry, holders: holders, carryQuery: access.carryQuery,
                                            observe: LiveRoutes.observer(request, sessions: sessions, access: access, immutable: name.isMedia))
            if upstream.status != .serviceUnavailable { return LiveRoutes.served(upstream, request, sessions: sessions, stream: id, access: access) }
        }
        // The better copies cannot be reached: this node's own, shorter one rather than nothing.
        if let held = own { return try await fromOwn(held) }
        throw Problem.notFound("no recording \(id) on the nodes that can be reached")
    }

    /// Whether this node answers from its own copy of a recording: unless the store's pick is
    /// another node's copy that is whole where this one is incomplete (a late standby's lacks the
    /// start), that has ended where this one is still open (a standby the origin stopped
    /// replicating to when a node joined), or that goes on past where this one ended (the old
    /// origin's copy ends where it handed the stream over). Length alone decides nothing: a copy
    /// made from a new origin's live segments may hold the GOP a relay replayed twice.
    static func servesOwnCopy(_ own: RecordingManifest, best: RecordingCopy?, localID: String?) -> Bool {
        guard let best, best.nodeID != localID else { return true }
        if own.state == .incomplete && best.state != "incomplete" { return false }
        guard let ended = own.endedAt else { return best.state != "ready" }
        return best.endedAt.map { $0 <= ended.addingTimeInterval(2) } ?? (best.state != "recording")
    }

    private func answer(_ m: RecordingManifest, rendition: String?, name: FileName, access: LiveRoutes.Playback, path: String) throws -> Response {
        let maxAge = m.state == .recording ? Self.growingCache : Self.finishedCache
        switch name {
        case .master:
            return Responses.text(LiveRoutes.playlist(m.masterPlaylist(), carrying: access), type: Responses.playlistType,
                                  cache: LiveRoutes.playlistCache(access, maxAge: maxAge))
        case .playlist:
            guard let rendition, let text = m.mediaPlaylist(rendition: rendition) else { throw Problem.notFound("no such rendition") }
            if access.session != nil { LiveRoutes.learn(text, path: path, sessions: sessions) }
            return Responses.text(LiveRoutes.playlist(text, carrying: access), type: Responses.playlistType,
                                  cache: LiveRoutes.playlistCache(access, maxAge: maxAge))
        case .initSegment(let v):
            guard let rendition, m.hasInit(rendition: rendition, version: v),
                  let bytes = recorder?.file(id: m.id, rendition: rendition, name: RecordingManifest.initName(version: v), in: m) else {
                throw Problem.notFound("no such init segment")
            }
            return Responses.media(ByteBuffer(bytes: bytes))
        case .segment(let n):
            guard let rendition, m.hasSegment(rendition: rendition, sequence: n),
                  let bytes = recorder?.file(id: m.id, rendition: rendition, name: RecordingManifest.segmentName(sequence: n), in: m) else {
                throw Problem.notFound("no such segment")
            }
            return Responses.media(ByteBuffer(bytes: bytes))
        case .download, .thumbnail:
            throw Problem.notFound("no such file")
        }
    }

    /// A recording's own picture, made here from its first keyframe (of the trim) once and kept beside it.
    private func picture(of m: RecordingManifest, access: LiveRoutes.Playback) async throws -> Response {
        guard let recorder, let thumbnails, let source = RecordingDownloads.rendition(of: m), let first = source.segments.first else {
            throw Problem.notFound("no picture of this recording")
        }
        let folder = recorder.folder(of: m)
        let path = folder + "/thumbnail-\(first.sequence).jpg"
        let etag = "\"r-\(first.sequence)\""
        if let jpeg = recorder.files.read(path) { return Self.picture(jpeg, etag: etag, access: access) }
        guard let initBytes = recorder.files.read(folder + "/" + source.name + "/" + RecordingManifest.initName(version: first.initVersion)),
              let segment = recorder.files.read(folder + "/" + source.name + "/" + RecordingManifest.segmentName(sequence: first.sequence)),
              let keyframe = CMAFKeyframe.first(initSegment: initBytes, segment: segment) else {
            throw Problem.notFound("no picture of this recording: its first segment holds no H.264 keyframe")
        }
        let jpeg: [UInt8]
        do { jpeg = try await thumbnails.picture(avcC: keyframe.avcC, accessUnit: keyframe.accessUnit) } catch {
            throw Problem.notFound("no picture of this recording: \(error)")
        }
        try? recorder.files.write(jpeg, to: path)
        return Self.picture(jpeg, etag: etag, access: access)
    }

    static func picture(_ jpeg: [UInt8], etag: String, access: LiveRoutes.Playback) -> Response {
        Response(status: .ok, headers: [.contentType: "image/jpeg", .eTag: etag, .accessControlAllowOrigin: "*",
                                        .cacheControl: access.token == nil ? "public, max-age=60" : "private, max-age=60"],
                 body: .init(byteBuffer: ByteBuffer(bytes: jpeg)))
    }

    /// A recording held here as one MP4: made (once) when it has ended, 409 before.
    private func download(_ m: RecordingManifest, trim: RecordingTrim?, title: String, _ request: Request,
                          _ context: NodeRequestContext, access: LiveRoutes.Playback) async throws -> Response {
        guard let downloads else { throw Problem(.notImplemented, "this node cannot make MP4 files") }
        if !RecordingDownloads.isFinished(m) {
            throw Problem(.conflict, "the recording is still being made; it can be downloaded once the broadcast ends "
                          + "(try again in \(Self.downloadRetryAfter) seconds)",
                          headers: [.retryAfter: "\(Self.downloadRetryAfter)", .cacheControl: "no-cache"])
        }
        let path: String
        do { path = try await downloads.file(for: m, trim: trim) } catch let error as RecordingDownloadError {
            throw Problem(.internalServerError, error.description)
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.intValue ?? 0
        var headers: HTTPFields = [
            .contentType: "video/mp4", .acceptRanges: "bytes", .accessControlAllowOrigin: "*",
            .contentDisposition: Self.contentDisposition(title: title, id: m.id),
            .cacheControl: access.token == nil ? "public, max-age=\(Self.finishedCache)" : "private, max-age=\(Self.finishedCache)",
        ]
        let io = FileIO()
        if let value = request.headers[.range] {
            guard let range = Self.byteRange(value, size: size) else {
                throw Problem(.rangeNotSatisfiable, "the file holds \(size) bytes", headers: [.contentRange: "bytes */\(size)"])
            }
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            headers[.contentLength] = "\(range.count)"
            return Response(status: .partialContent, headers: headers, body: try await io.loadFile(path: path, range: range, context: context))
        }
        headers[.contentLength] = "\(size)"
        return Response(status: .ok, headers: headers, body: try await io.loadFile(path: path, context: context))
    }

    /// `attachment` with a file name made of the title's letters and digits (ASCII, for every
    /// client) and the title itself as `filename*` (RFC 6266, percent-encoded UTF-8).
    static func contentDisposition(title: String, id: String) -> String {
        var plain = ""
        for c in title.unicodeScalars {
            if c.isASCII, CharacterSet.alphanumerics.contains(c) || c == "_" { plain.unicodeScalars.append(c) }
            else if !plain.isEmpty, plain.last != "-" { plain += "-" }
        }
        while plain.hasSuffix("-") { plain.removeLast() }
        plain = String(plain.prefix(80))
        let base = plain.isEmpty ? id : plain + "-" + id
        var value = "attachment; filename=\"\(base).mp4\""
        let titled = String(title.prefix(80)).trimmingCharacters(in: .whitespacesAndNewlines)
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        if !titled.isEmpty, let encoded = (titled + ".mp4").addingPercentEncoding(withAllowedCharacters: unreserved) {
            value += "; filename*=UTF-8''\(encoded)"
        }
        return value
    }

    /// One range of `Range: bytes=a-b`, `a-` or `-n` within a file of `size` bytes; nil when it
    /// cannot be satisfied (several ranges are answered as the first alone).
    static func byteRange(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let first = header.dropFirst(6).split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let ends = first.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard ends.count == 2 else { return nil }
        if ends[0].isEmpty {
            guard let n = Int(ends[1]), n > 0 else { return nil }
            return max(0, size - n)...(size - 1)
        }
        guard let start = Int(ends[0]), start < size else { return nil }
        let end = ends[1].isEmpty ? size - 1 : Int(ends[1]).map { min($0, size - 1) }
        guard let end, end >= start else { return nil }
        return start...end
    }
}
