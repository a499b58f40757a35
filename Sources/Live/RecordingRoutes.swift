// RecordingRoutes: a recording as VOD, on every node — `GET /recordings/{id}/master.m3u8`,
// `/recordings/{id}/{rendition}/index.m3u8`, `init{n}.mp4` and `seg{n}.m4s` — under the same
// playback rules (and tokens) as its stream. A node holding a copy answers from its disk; any
// other asks a holder through the edge (the copies the database lists, then the stream's
// origin and standbys), keeping the media in the edge store: every file of a recording is
// immutable. `download.mp4` (one MP4) is not made yet: 501.
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

    package init(recorder: Recorder?, store: RecordingStore?, catalog: StreamCatalog, edge: EdgeProxy?,
                 playback: any PlaybackPolicy = PublicPlayback()) {
        self.recorder = recorder
        self.store = store
        self.catalog = catalog
        self.edge = edge
        self.playback = playback
    }

    /// The playlists of a recording still being made change; a finished one's never do.
    static let growingCache = 2
    static let finishedCache = 3600

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
        case master, download, playlist
        case initSegment(Int)
        case segment(Int)

        init?(_ file: String, inRendition: Bool) {
            if !inRendition {
                switch file {
                case "master.m3u8": self = .master
                case "download.mp4": self = .download
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
        let access = try LiveRoutes.authorize(request, record, playback: playback)
        if name == .download {
            throw Problem(.notImplemented, "a recording cannot be downloaded as one MP4 yet; play its playlist (master.m3u8), "
                          + "or remux it: ffmpeg -i master.m3u8 -c copy -movflags +faststart out.mp4")
        }
        if let manifest = recorder?.manifest(id: id) {
            return try answer(manifest, rendition: rendition, name: name, access: access)
        }
        // Held elsewhere: ask a holder (never an edge asking us in turn).
        if let edge, request.headers[.streamTubeEdge] == nil {
            let holders = ((try? await store?.recording(id: id)) ?? nil)?.nodes ?? []
            let upstream = await edge.serve(streamID: record.id, path: request.uri.path, query: nil, immutable: name.isMedia,
                                            token: access.token, carry: access.carry, holders: holders)
            if upstream.status != .serviceUnavailable { return upstream }
        }
        throw Problem.notFound("no recording \(id) on the nodes that can be reached")
    }

    private func answer(_ m: RecordingManifest, rendition: String?, name: FileName, access: LiveRoutes.Playback) throws -> Response {
        let maxAge = m.state == .recording ? Self.growingCache : Self.finishedCache
        switch name {
        case .master:
            return Responses.text(LiveRoutes.playlist(m.masterPlaylist(), carrying: access.carry), type: Responses.playlistType,
                                  cache: LiveRoutes.playlistCache(access, maxAge: maxAge))
        case .playlist:
            guard let rendition, let text = m.mediaPlaylist(rendition: rendition) else { throw Problem.notFound("no such rendition") }
            return Responses.text(LiveRoutes.playlist(text, carrying: access.carry), type: Responses.playlistType,
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
        case .download:
            throw Problem(.notImplemented, "not yet")
        }
    }
}
