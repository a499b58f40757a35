// LiveStreamState: where a stream stands on this node, as one closed set of cases.

/// Where a stream stands on this node. The status and health answers carry it, and code that
/// acts only on live streams switches over it instead of comparing strings.
///
/// It encodes as its raw value (`"offline"`, `"live"`, `"ended"`, `"standby"`): HTTP clients,
/// the command-line client and the integration tests read those exact strings, so a case's
/// raw value must never change.
public enum LiveStreamState: String, Sendable, Equatable, Codable, CaseIterable {
    /// Never published on this node, and not held as a replica.
    case offline
    /// A publisher is sending it to this node now.
    case live
    /// Published here before; its publisher is gone and its playlists have ended.
    case ended
    /// Held as a standby's replica of the stream another node is the origin of.
    case standby
}
