// PlaylistRequest: what a media playlist request asks beyond the playlist itself (LL-HLS): a
// blocking reload up to a segment or a part (`_HLS_msn`, `_HLS_part`) and a delta update
// (`_HLS_skip`). Read from the query alone; whether the target is within reach of the live edge
// is the route's to decide, with the stream at hand.
import HTTPSupport
import Hummingbird
import Origin

package struct PlaylistRequest: Equatable, Sendable {
    /// The segment or part to wait for; nil: answer at once.
    package var target: LiveTarget?
    /// A delta update: `_HLS_skip=YES` (or `v2`).
    package var skip: Bool

    /// The request a query makes, or a 400 that says what is wrong with it.
    package init(_ query: Parameters) throws(Problem) {
        let msn = query.get("_HLS_msn").map { Int($0) }
        let part = query.get("_HLS_part").map { Int($0) }
        skip = query.get("_HLS_skip").map { $0 == "YES" || $0 == "v2" } ?? false
        if case .some(nil) = msn { throw Problem.badRequest("_HLS_msn must be a whole number") }
        if case .some(nil) = part { throw Problem.badRequest("_HLS_part must be a whole number") }
        if part != nil && msn == nil { throw Problem.badRequest("_HLS_part needs _HLS_msn") }
        guard let m = msn ?? nil else {
            target = nil
            return
        }
        if m < 0 || (part ?? nil).map({ $0 < 0 }) == true { throw Problem.badRequest("_HLS_msn and _HLS_part cannot be negative") }
        target = (part ?? nil).map { .part(sequence: m, index: $0) } ?? .segment(sequence: m)
    }
}
