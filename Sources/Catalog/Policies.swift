// The rules the media path asks and the platform decides. Today every stream is public and
// any holder of its key may publish; accounts, private playback and payments implement these.

/// Whether a request for a stream's media may be answered. Checked on every node, in the
/// fast path too, so an implementation must answer from memory (a signed token), never
/// from the database.
package protocol PlaybackPolicy: Sendable {
    /// `token` is what the request carried (query or cookie), if anything.
    func allowsPlayback(streamID: Substring, token: Substring?) -> Bool
}

/// Every stream is public.
package struct PublicPlayback: PlaybackPolicy {
    package init() {}
    package func allowsPlayback(streamID: Substring, token: Substring?) -> Bool { true }
}
