// The rules the media path asks and the platform decides: who may publish (any holder of a
// stream's key), who may play (`PlaybackPolicy`, checked on every node from memory) and who
// may be given a playback token (`PlaybackIssuer`, asked by the pages and the APIs).
import Foundation

/// Whether a request for a stream's media may be answered. Checked on every node, in the
/// fast path too, so an implementation must answer from memory (a signed token), never
/// from the database.
package protocol PlaybackPolicy: Sendable {
    /// `token` is what the request carried (query or cookie), if anything.
    func allowsPlayback(streamID: Substring, token: Substring?) -> Bool
    /// The same question for a stream whose record the caller holds already (the fast path).
    func allowsPlayback(of record: StreamRecord, token: Substring?) -> Bool
    /// The same for a recording of the stream (its own visibility put in the record).
    func allowsPlayback(recording: Substring, of record: StreamRecord, token: Substring?) -> Bool
}

extension PlaybackPolicy {
    package func allowsPlayback(of record: StreamRecord, token: Substring?) -> Bool {
        allowsPlayback(streamID: Substring(record.id), token: token)
    }

    /// A recording of `record` (its own visibility put in the record): by default what opens
    /// its stream. A policy with recording-scoped tokens also takes a token for this recording.
    package func allowsPlayback(recording: Substring, of record: StreamRecord, token: Substring?) -> Bool {
        allowsPlayback(of: record, token: token)
    }
}

/// Every stream is public (tests, and tools with no keyring).
package struct PublicPlayback: PlaybackPolicy {
    package init() {}
    package func allowsPlayback(streamID: Substring, token: Substring?) -> Bool { true }
}

/// Who asks for a playback token.
package enum PlaybackViewer: Sendable, Equatable {
    /// The operator (scripts, tests), naming the viewer the token is for.
    case `operator`(viewer: String)
    /// A signed-in person.
    case account(id: String, isAdmin: Bool)
    /// A guest who joined by an invitation (`guest-` and a digest of their cookie).
    case guest(id: String)

    /// The viewer id a token carries.
    package var id: String {
        switch self {
        case .operator(let viewer): return viewer
        case .account(let id, _): return id
        case .guest(let id): return id
        }
    }
}

/// A playback token and when it expires.
package struct PlaybackPass: Codable, Equatable, Sendable {
    package var token: String
    package var expiresAt: Date

    package init(token: String, expiresAt: Date) {
        self.token = token
        self.expiresAt = expiresAt
    }
}

/// Makes playback tokens. Every token is issued through `issue`, which asks `mayWatch` first:
/// the one place that says who may watch a stream (invitations and purchases extend it, and a
/// revoked invitation gets no new token from then on; tokens already out expire within minutes).
package protocol PlaybackIssuer: Sendable {
    func mayWatch(_ stream: StreamRecord, _ viewer: PlaybackViewer) async -> Bool
    /// A token for `viewer` to play `stream` for `lifetime` seconds (nil: the default), or nil
    /// when the viewer may not watch it.
    func issue(for stream: StreamRecord, to viewer: PlaybackViewer, lifetime: Int?) async -> PlaybackPass?
    /// A token for `viewer` to play the recording `recording` of `stream` (its own visibility put
    /// in the record): the stream's, when they may watch the stream, else one scoped to the
    /// recording alone when they hold what opens it (a ticket for it); nil otherwise.
    func issue(recording: String, of stream: StreamRecord, to viewer: PlaybackViewer, lifetime: Int?) async -> PlaybackPass?
}

extension PlaybackIssuer {
    package func issue(recording: String, of stream: StreamRecord, to viewer: PlaybackViewer, lifetime: Int?) async -> PlaybackPass? {
        await issue(for: stream, to: viewer, lifetime: lifetime)
    }
}
