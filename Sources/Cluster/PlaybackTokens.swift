// PlaybackTokens: what lets a viewer play a private stream. A token names one stream and one
// viewer and expires (minutes, not hours); any node of the cluster checks it from memory with a
// key derived from the cluster keyring, so the edge's fast path can check one for every part
// it answers without a database round trip. Unlike a cluster token it has no nonce: a player
// presents the same token for every request until it fetches a fresh one.
//
// Format (version 2): base64url (no padding) of
//   version (1 byte, 2) | key id (2) | expiry (4, big-endian Unix seconds)
//   | viewer id length (1) | viewer id | MAC (16)
// The MAC is HMAC-SHA256 cut to its first 128 bits, under the key whose id the token names
// (HKDF-SHA256 of a cluster key, info "streamtube playback v2"), over the bytes before it with
// the stream id put in after the expiry (its length byte, then its bytes): the token is bound
// to its stream without carrying it, since every request names the stream in its path. The
// first key of the keyring signs; every key verifies (rotation). Ids are [A-Za-z0-9_-], 1 to
// 64 bytes; a token is at most 118 characters (48 for an account's).
//
// A recording-scoped token (version 3, the same layout) is bound the same way to one recording's
// id (up to 100 bytes) instead of a stream's: it opens that recording's files and nothing else — not the live
// stream, not the stream's other recordings. The version byte is signed, so neither kind passes
// for the other even where a recording's id and a stream's were spelled alike. It is what a
// ticket for a recording alone gets (`TokenIssuer.issue(recording:)`).
//
// Short because it rides on every request a player makes: a version 1 token (the stream id in
// it, a 4-byte key id, the whole 32-byte MAC) was twice as long, and the edge's fast path paid
// for every byte of the longer request line.
import Catalog
import Crypto
import Foundation
import NIOPosix

package final class PlaybackTokens: Sendable {
    /// How long a token is good for unless asked otherwise.
    package static let defaultLifetime = 600
    /// The shortest and longest lifetimes an issuer may ask for.
    package static let lifetimes = 1...3600
    /// Characters of a token at the most (64-byte viewer id); longer input is refused before
    /// it is decoded.
    package static let maxLength = (headerLength + 64 + macLength) * 4 / 3 + 1
    /// Another node's clock may run a little ahead: a token may expire this much later than
    /// the longest lifetime from now.
    package static let clockSkew = 30
    static let version: UInt8 = 2
    /// A token bound to one recording, not a stream.
    static let recordingVersion: UInt8 = 3
    /// Version, key id, expiry, viewer id length.
    static let headerLength = 8
    /// 128 bits of HMAC-SHA256: a forgery is one guess in 2^128, checked online only.
    static let macLength = 16

    private struct Key: Sendable {
        var id: UInt16
        var key: SymmetricKey
    }
    /// Derived from the cluster keys, in the keyring's order: the first signs.
    private let keys: [Key]
    private let now: @Sendable () -> Int
    /// Tokens this thread verified lately: a player presents the same token for every part, so
    /// the fast path computes its MAC once, not for every request.
    private let verified = ThreadSpecificVariable<VerifiedTokens>()

    package init(clusterKeys: [[UInt8]], now: @escaping @Sendable () -> Int = PlaybackTokens.wallClock) {
        precondition(!clusterKeys.isEmpty, "a keyring has at least one key")
        keys = clusterKeys.map { clusterKey in
            let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: clusterKey), salt: Array("streamtube".utf8),
                                             info: Array("streamtube playback v2".utf8), outputByteCount: 32)
            // The id names the key without saying anything of it: the first 2 bytes of a MAC.
            // Two keys of a keyring may share one: then both are tried.
            let tag = Array(HMAC<SHA256>.authenticationCode(for: Array("key id".utf8), using: key))
            return Key(id: UInt16(tag[0]) << 8 | UInt16(tag[1]), key: key)
        }
        self.now = now
    }

    /// Unix seconds from the coarse real-time clock: the same second as `Date()`, read for
    /// every request of the fast path at a fraction of its cost.
    package static let wallClock: @Sendable () -> Int = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        return ts.tv_sec
    }

    /// A token for `viewer` to play `stream` for `lifetime` seconds (clamped to `lifetimes`),
    /// and when it expires. Nil when an id is not well formed. Whether the viewer may have one
    /// is the issuer's to decide (`PlaybackIssuer.mayWatch`), not this type's.
    package func token(stream: String, viewer: String, lifetime: Int = defaultLifetime) -> (token: String, expiresAt: Int)? {
        make(Self.version, bound: stream, viewer: viewer, lifetime: lifetime)
    }

    /// A token for `viewer` to play the one recording `recording` (its playlists, files, picture
    /// and MP4), and nothing else; nil when an id is not well formed.
    package func token(recording: String, viewer: String, lifetime: Int = defaultLifetime) -> (token: String, expiresAt: Int)? {
        make(Self.recordingVersion, bound: recording, viewer: viewer, lifetime: lifetime)
    }

    private func make(_ version: UInt8, bound stream: String, viewer: String, lifetime: Int) -> (token: String, expiresAt: Int)? {
        guard Self.isID(stream.utf8, max: Self.boundLimit(version)), Self.isID(viewer.utf8) else { return nil }
        let expiry = now() + min(max(lifetime, Self.lifetimes.lowerBound), Self.lifetimes.upperBound)
        let key = keys[0]
        var bytes: [UInt8] = [version, UInt8(truncatingIfNeeded: key.id >> 8), UInt8(truncatingIfNeeded: key.id)]
        bytes.reserveCapacity(Self.headerLength + viewer.utf8.count + Self.macLength)
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: UInt32(expiry) >> UInt32(shift))) }
        bytes.append(UInt8(viewer.utf8.count))
        bytes.append(contentsOf: viewer.utf8)
        let mac = bytes.withUnsafeBytes { Self.mac(UnsafeRawBufferPointer(rebasing: $0[...]), stream: stream.utf8, key: key.key) }
        bytes.append(contentsOf: mac.prefix(Self.macLength))
        return (Self.base64URL(bytes), expiry)
    }

    /// The full HMAC of a token's bytes before its MAC, the stream put in after the expiry.
    private static func mac<S: Collection>(_ body: UnsafeRawBufferPointer, stream: S, key: SymmetricKey) -> HMAC<SHA256>.MAC
    where S.Element == UInt8 {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: UnsafeRawBufferPointer(rebasing: body[..<7]))
        withUnsafeTemporaryAllocation(byteCount: 101, alignment: 1) { s in
            s[0] = UInt8(truncatingIfNeeded: stream.count)
            var i = 1
            for c in stream.prefix(100) {
                s[i] = c
                i += 1
            }
            hmac.update(data: UnsafeRawBufferPointer(rebasing: s[..<i]))
        }
        hmac.update(data: UnsafeRawBufferPointer(rebasing: body[7...]))
        return hmac.finalize()
    }

    /// What a valid token says.
    package struct Grant: Sendable, Equatable {
        package var stream: String
        package var viewer: String
        package var expiresAt: Int

        package init(stream: String, viewer: String, expiresAt: Int) {
            self.stream = stream
            self.viewer = viewer
            self.expiresAt = expiresAt
        }
    }

    /// The grant of a token for `stream` that is unexpired and signed by a key of the keyring;
    /// nil for anything else (garbage, another stream, expired, tampered, unknown key).
    package func verify(_ token: Substring, stream: Substring) -> Grant? {
        var grant: Grant?
        _ = check(token, stream: stream) { bytes, vid, expiry in
            grant = Grant(stream: String(stream),
                          viewer: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[vid]), as: UTF8.self), expiresAt: expiry)
        }
        return grant
    }

    /// Whether `token` is a recording-scoped token for `recording`, unexpired and ours. Asked by
    /// the recording routes only (never the live fast path), so it keeps no cache: each check
    /// computes the MAC.
    package func isValid(_ token: Substring, recording: Substring) -> Bool {
        check(token, stream: recording, version: Self.recordingVersion) { _, _, _ in }
    }

    /// Whether `token` lets its holder play `stream` now: the fast path asks this for every
    /// request. A token verified lately on this thread for this stream is recognized by its
    /// bytes (compared in constant time) and its expiry checked again; any other is decoded on
    /// the stack and its MAC checked. Allocates nothing after a thread's first call.
    package func isValid(_ token: Substring, stream: Substring) -> Bool {
        // On the bytes themselves (both are slices of native strings: no copy), not through
        // the UTF-8 views' indices.
        var text = token
        var id = stream
        return text.withUTF8 { t in
            id.withUTF8 { s -> Bool in
                guard t.count <= Self.maxLength, t.count > 3 else { return false }
                let cache: VerifiedTokens
                if let c = verified.currentValue {
                    cache = c
                } else {
                    cache = VerifiedTokens()
                    verified.currentValue = cache
                }
                let time = now()
                let slot = VerifiedTokens.slot(t)
                if cache.admits(slot: slot, token: t, stream: s, now: time) { return true }
                var expiry = 0
                guard check(token, stream: stream, { _, _, e in expiry = e }) else { return false }
                cache.remember(slot: slot, token: t, stream: s, expiry: expiry)
                return true
            }
        }
    }

    /// Valid tokens seen on one thread, a slot each (chosen by bits of their MAC), kept in one
    /// block of memory: the token's text, the stream it was checked for, its expiry. A slot
    /// admits a request only for the same text and the same stream before that expiry; a
    /// token of another stream, or one that expired, is checked in full (and refused).
    package final class VerifiedTokens: @unchecked Sendable {
        static let count = 1024
        /// expiry (8) | token length (1) | stream length (1) | token | stream.
        static let tokenOffset = 10
        static let streamOffset = tokenOffset + PlaybackTokens.maxLength
        static let stride = (streamOffset + 64 + 7) & ~7
        private let storage: UnsafeMutableRawPointer

        init() {
            storage = .allocate(byteCount: Self.count * Self.stride, alignment: 8)
            storage.initializeMemory(as: UInt8.self, repeating: 0, count: Self.count * Self.stride)
        }

        deinit { storage.deallocate() }

        /// Two characters of the MAC's end: uniform for tokens we signed. `text` has more than 3.
        static func slot(_ text: UnsafeBufferPointer<UInt8>) -> Int {
            let v1 = Int(PlaybackTokens.alphabetValue[Int(text[text.count - 3])] & 63)
            let v2 = Int(PlaybackTokens.alphabetValue[Int(text[text.count - 2])] & 63)
            return (v1 << 6 | v2) & (count - 1)
        }

        /// The slot of a token's text (tests).
        package static func slot(of token: String) -> Int {
            var text = token
            return text.withUTF8 { slot($0) }
        }

        /// Whether the slot holds this token, for this stream, unexpired at `now`. Time spent
        /// depends on the lengths only, not on where the bytes differ.
        func admits(slot: Int, token: UnsafeBufferPointer<UInt8>, stream: UnsafeBufferPointer<UInt8>, now: Int) -> Bool {
            let p = storage + slot * Self.stride
            let expiry = p.load(as: Int.self)
            guard expiry >= now, Int(p.load(fromByteOffset: 8, as: UInt8.self)) == token.count,
                  Int(p.load(fromByteOffset: 9, as: UInt8.self)) == stream.count else { return false }
            let sameToken = Self.equal(p + Self.tokenOffset, token)
            let sameStream = Self.equal(p + Self.streamOffset, stream)
            return sameToken && sameStream
        }

        func remember(slot: Int, token: UnsafeBufferPointer<UInt8>, stream: UnsafeBufferPointer<UInt8>, expiry: Int) {
            guard token.count <= PlaybackTokens.maxLength, stream.count <= 64 else { return }
            let p = storage + slot * Self.stride
            p.storeBytes(of: expiry, as: Int.self)
            p.storeBytes(of: UInt8(token.count), toByteOffset: 8, as: UInt8.self)
            p.storeBytes(of: UInt8(stream.count), toByteOffset: 9, as: UInt8.self)
            (p + Self.tokenOffset).copyMemory(from: token.baseAddress!, byteCount: token.count)
            if stream.count > 0 { (p + Self.streamOffset).copyMemory(from: stream.baseAddress!, byteCount: stream.count) }
        }

        /// Equal bytes (`bytes.count` of them at `known`), in time that depends on the length only.
        static func equal(_ known: UnsafeMutableRawPointer, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            var diff: UInt8 = 0
            for i in 0..<bytes.count { diff |= known.load(fromByteOffset: i, as: UInt8.self) ^ bytes[i] }
            return diff == 0
        }
    }

    private func check(_ token: Substring, stream: Substring, version: UInt8 = PlaybackTokens.version,
                       _ found: (UnsafeMutableRawBufferPointer, Range<Int>, Int) -> Void) -> Bool {
        let text = token.utf8
        let count = text.count
        // The shortest token: header, a one-byte viewer id, the MAC.
        guard count <= Self.maxLength, count >= (Self.headerLength + 1 + Self.macLength) * 4 / 3,
              Self.isID(stream.utf8, max: Self.boundLimit(version)) else { return false }
        return withUnsafeTemporaryAllocation(byteCount: Self.maxLength, alignment: 1) { buffer -> Bool in
            guard let n = Self.decodeBase64URL(text, into: buffer) else { return false }
            let b = UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])
            guard n > Self.headerLength + Self.macLength, b[0] == version else { return false }
            let keyID = UInt16(b[1]) << 8 | UInt16(b[2])
            let expiry = Int(UInt32(b[3]) << 24 | UInt32(b[4]) << 16 | UInt32(b[5]) << 8 | UInt32(b[6]))
            let viewerLength = Int(b[7])
            let viewerRange = Self.headerLength..<(Self.headerLength + viewerLength)
            guard viewerLength > 0, viewerRange.upperBound == n - Self.macLength else { return false }
            let t = now()
            guard expiry >= t, expiry <= t + Self.lifetimes.upperBound + Self.clockSkew else { return false }
            let body = UnsafeRawBufferPointer(rebasing: b[..<(n - Self.macLength)])
            let presented = UnsafeRawBufferPointer(rebasing: b[(n - Self.macLength)...])
            for key in keys where key.id == keyID {
                let full = Self.mac(body, stream: stream.utf8, key: key.key)
                let ok = full.withUnsafeBytes { computed in
                    // Constant time: every byte compared whatever the first difference.
                    var diff: UInt8 = 0
                    for i in 0..<Self.macLength { diff |= computed[i] ^ presented[i] }
                    return diff == 0
                }
                if ok {
                    // Ids are checked once the bytes are known to be ours: a signer never makes others.
                    guard Self.isID(b[viewerRange]) else { return false }
                    found(b, viewerRange, expiry)
                    return true
                }
            }
            return false
        }
    }

    /// The longest id a token of `version` is bound to: a stream's is at most 64 bytes, a
    /// recording's (its stream's, an epoch and a number) at most 100.
    static func boundLimit(_ version: UInt8) -> Int { version == recordingVersion ? 100 : 64 }

    /// An id a token may carry: 1 to `max` (64) of [A-Za-z0-9_-].
    static func isID<C: Collection>(_ bytes: C, max: Int = 64) -> Bool where C.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= max else { return false }
        return bytes.allSatisfy { alphabetValue[Int($0)] != 0xFF }
    }

    // MARK: base64url, no padding

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// The value of each byte in the alphabet, 0xFF for none.
    fileprivate static let alphabetValue: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    package static func base64URL(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 2 < bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)]]
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes unpadded base64url into `out`; nil for a character outside the alphabet, a
    /// length no encoding has, non-zero trailing bits (one token has one spelling), or too much.
    package static func decodeBase64URL(_ text: Substring.UTF8View, into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard text.count % 4 != 1, text.count * 3 / 4 <= out.count else { return nil }
        var n = 0
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            let v = alphabetValue[Int(c)]
            guard v != 0xFF else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out[n] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                n += 1
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        guard acc == 0 else { return nil }
        return n
    }
}

/// The playback policy of a node: public and unlisted streams play for anyone; an invite-only
/// or paid stream needs a valid token for it. Answered from memory (the catalog's records and
/// the token's MAC), so the fast path asks it for every request.
///
/// A stream this node has no record of is treated as private: only a valid token for it plays.
/// Failing closed costs nothing in practice: the router looks a stream up (database, then the
/// ring's holders) before it asks, and the fast path answers only streams it knows, so an
/// unknown stream's public media are served once its record is here.
package struct TokenPlayback: PlaybackPolicy {
    let catalog: StreamCatalog
    let tokens: PlaybackTokens

    package init(catalog: StreamCatalog, tokens: PlaybackTokens) {
        self.catalog = catalog
        self.tokens = tokens
    }

    package func allowsPlayback(streamID: Substring, token: Substring?) -> Bool {
        if let record = catalog.record(id: String(streamID)) { return allowsPlayback(of: record, token: token) }
        guard let token else { return false }
        return tokens.isValid(token, stream: streamID)
    }

    package func allowsPlayback(of record: StreamRecord, token: Substring?) -> Bool {
        guard record.visibility.isPrivate else { return true }
        guard let token else { return false }
        return tokens.isValid(token, stream: Substring(record.id))
    }

    /// A recording under `record`'s rules (its own visibility put in): its stream's token, or a
    /// token scoped to this recording.
    package func allowsPlayback(recording: Substring, of record: StreamRecord, token: Substring?) -> Bool {
        if allowsPlayback(of: record, token: token) { return true }
        guard let token else { return false }
        return tokens.isValid(token, recording: recording)
    }
}

/// The node's token issuer: `mayWatch` is the one question asked before any token is made.
package struct TokenIssuer: PlaybackIssuer {
    let tokens: PlaybackTokens
    /// Whether a viewer (an account or a guest) holds a standing invitation to the stream;
    /// asked at every issue, so a withdrawn invitation gets no new token from that moment.
    let invited: @Sendable (StreamRecord, String) async -> Bool
    /// Whether an account holds a ticket or subscription that opens the (paid) stream; asked
    /// at every issue, so a refund gets no new token from that moment.
    let entitled: @Sendable (StreamRecord, String) async -> Bool
    /// Whether an account holds a ticket for one recording (by its id); asked at every issue of
    /// a recording-scoped token, so a refund gets no new one from that moment.
    let entitledToRecording: @Sendable (String, String) async -> Bool

    package init(tokens: PlaybackTokens, invited: @escaping @Sendable (StreamRecord, String) async -> Bool = { _, _ in false },
                 entitled: @escaping @Sendable (StreamRecord, String) async -> Bool = { _, _ in false },
                 entitledToRecording: @escaping @Sendable (String, String) async -> Bool = { _, _ in false }) {
        self.tokens = tokens
        self.invited = invited
        self.entitled = entitled
        self.entitledToRecording = entitledToRecording
    }

    /// The operator, the stream's owner, admins and invitees; for a paid stream, whoever holds
    /// a ticket or the channel's subscription; anyone for a stream that is not private.
    package func mayWatch(_ stream: StreamRecord, _ viewer: PlaybackViewer) async -> Bool {
        guard stream.visibility.isPrivate else { return true }
        switch viewer {
        case .operator: return true
        case .account(let id, let isAdmin):
            if isAdmin || stream.owner == id { return true }
            if await invited(stream, id) { return true }
            return stream.visibility == .paid ? await entitled(stream, id) : false
        case .guest(let id): return stream.allowGuests ? await invited(stream, id) : false
        }
    }

    package func issue(for stream: StreamRecord, to viewer: PlaybackViewer, lifetime: Int?) async -> PlaybackPass? {
        guard await mayWatch(stream, viewer),
              let made = tokens.token(stream: stream.id, viewer: viewer.id, lifetime: lifetime ?? PlaybackTokens.defaultLifetime) else {
            return nil
        }
        return PlaybackPass(token: made.token, expiresAt: Date(timeIntervalSince1970: TimeInterval(made.expiresAt)))
    }

    /// Whoever may watch the stream (under the recording's visibility) gets the stream's token,
    /// which opens its recordings too; a signed-in holder of a ticket for this recording alone,
    /// when it is paid, gets a token that opens this recording and nothing else.
    package func issue(recording: String, of stream: StreamRecord, to viewer: PlaybackViewer, lifetime: Int?) async -> PlaybackPass? {
        if let pass = await issue(for: stream, to: viewer, lifetime: lifetime) { return pass }
        guard stream.visibility == .paid, case .account(let id, _) = viewer, await entitledToRecording(recording, id),
              let made = tokens.token(recording: recording, viewer: id, lifetime: lifetime ?? PlaybackTokens.defaultLifetime) else {
            return nil
        }
        return PlaybackPass(token: made.token, expiresAt: Date(timeIntervalSince1970: TimeInterval(made.expiresAt)))
    }
}
