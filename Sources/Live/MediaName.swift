// MediaName: the name of an object in a rendition (`index.m3u8`, init segments, segments,
// parts), parsed strictly; the media routes and the edge's fast path read names with it.
import Origin

/// The name of an object in a rendition, parsed strictly: numbers are canonical (no sign, no
/// leading zero) and the stream's epoch is 8 lowercase hex digits, so each object has one
/// name — the one its playlist gives — and a viewer cannot make an edge fetch or cache one
/// object under many names (`MediaPlaylist.segmentURI` and its siblings write them).
package enum MediaName: Equatable, Sendable {
    case playlist
    /// `init{version}-{epoch}.mp4`
    case initSegment(Int, StreamEpoch)
    /// `seg{sequence}-{epoch}.m4s`
    case segment(Int, StreamEpoch)
    /// `part{sequence}.{index}-{epoch}.m4s`
    case part(Int, Int, StreamEpoch)

    package init?(_ file: String) {
        if file == "index.m3u8" { self = .playlist; return }
        let ext = file.suffix(4)
        guard ext == ".mp4" || ext == ".m4s", let dash = file.lastIndex(of: "-"),
              let epoch = StreamEpoch(file[file.index(after: dash)...].dropLast(4)) else { return nil }
        let stem = file[..<dash]
        if ext == ".mp4", stem.hasPrefix("init"), let v = Self.number(stem.dropFirst(4)) {
            self = .initSegment(v, epoch)
        } else if ext == ".m4s", stem.hasPrefix("seg"), let n = Self.number(stem.dropFirst(3)) {
            self = .segment(n, epoch)
        } else if ext == ".m4s", stem.hasPrefix("part") {
            let numbers = stem.dropFirst(4).split(separator: ".", omittingEmptySubsequences: false)
            guard numbers.count == 2, let n = Self.number(numbers[0]), let i = Self.number(numbers[1]) else { return nil }
            self = .part(n, i, epoch)
        } else {
            return nil
        }
    }

    package var isImmutable: Bool { self != .playlist }

    /// Whether `name` is an init segment, segment or part, spelled canonically — the same
    /// answer as `MediaName(name)?.isImmutable`, read off the bytes without allocating (the
    /// fast path asks it for every request).
    package static func isImmutableObject(_ name: Substring.UTF8View) -> Bool {
        var rest = name[...]
        func take(_ prefix: StaticString) -> Bool {
            let p = UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
            guard rest.starts(with: p) else { return false }
            rest = rest.dropFirst(p.count)
            return true
        }
        /// A canonical number: 1 to 9 digits, no leading zero but "0" itself.
        func number() -> Bool {
            let digits = rest.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            guard (1...9).contains(digits.count), digits.count == 1 || digits.first != UInt8(ascii: "0") else { return false }
            rest = rest.dropFirst(digits.count)
            return true
        }
        /// `-` and an epoch: exactly 8 lowercase hex digits.
        func epoch() -> Bool {
            guard take("-") else { return false }
            let digits = rest.prefix(8)
            guard digits.count == 8, digits.allSatisfy(StreamEpoch.isLowerHex) else { return false }
            rest = rest.dropFirst(8)
            return true
        }
        if take("init") { return number() && epoch() && take(".mp4") && rest.isEmpty }
        if take("seg") { return number() && epoch() && take(".m4s") && rest.isEmpty }
        if take("part") { return number() && take(".") && number() && epoch() && take(".m4s") && rest.isEmpty }
        return false
    }

    /// A whole number written the one way: digits only, no leading zero (but "0"), at most 9 digits.
    static func number(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }), s == "0" || s.first != "0" else { return nil }
        return Int(s)
    }
}
