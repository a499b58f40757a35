// LiveStreamEvent: what a stream tells the node about its ladder, for logs and counters.

/// Something an operator wants to know: the node logs it and counts it.
public enum LiveStreamEvent: Sendable, Equatable {
    case transcodeStarted(rungs: [String])
    case renditionShed(rendition: String, reason: String)
    case transcodeFailed(reason: String)
}
