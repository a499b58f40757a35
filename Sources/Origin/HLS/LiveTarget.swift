// LiveTarget: what a blocking playlist request (LL-HLS `_HLS_msn`, `_HLS_part`) waits for.

/// What a blocking request waits for.
public enum LiveTarget: Sendable, Equatable {
    /// Part `index` of segment `sequence`, or anything later.
    case part(sequence: Int, index: Int)
    /// Segment `sequence` complete, or anything later.
    case segment(sequence: Int)
}
