// NodeMediaSource: what the fast path may answer on this node — a media object of a stream
// this node knows, the caller allowed by the playback policy, held in the edge's memory tier.
import Catalog
import HTTPSupport
import NIOCore

package struct NodeMediaSource: MediaFastPathSource {
    let catalog: StreamCatalog
    let edge: EdgeProxy
    let playback: any PlaybackPolicy
    /// Where the objects answered here count for their viewer session.
    let sessions: ViewerSessions?

    package init(catalog: StreamCatalog, edge: EdgeProxy, playback: any PlaybackPolicy, sessions: ViewerSessions? = nil) {
        self.catalog = catalog
        self.edge = edge
        self.playback = playback
        self.sessions = sessions
    }

    package func object(for request: MediaObjectRequest) -> ByteBuffer? {
        // A stream not known here goes to the router, which looks it up first.
        guard let record = catalog.record(id: request.streamID),
              playback.allowsPlayback(of: record, token: request.token) else { return nil }
        guard let bytes = edge.cachedMedia(request) else { return nil }
        if let sessions, let session = request.session {
            sessions.noteObject(stream: request.streamID, session: session, path: request.path, bytes: bytes.readableBytes)
        }
        return bytes
    }
}
