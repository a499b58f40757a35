import Catalog
import Cluster
import Foundation
import HTTPSupport
import Live
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization
import XCTest

/// Playback tokens: made and checked from the cluster keyring, bound to a stream and a viewer,
/// short-lived, refused when anything about them is wrong; the policy and issuer built on them;
/// the playlist rewriting that carries them to native players.
final class PlaybackTokenTests: XCTestCase {
    static let keyA = [UInt8](repeating: 1, count: 32)
    static let keyB = [UInt8](repeating: 2, count: 32)
    /// A clock the tests move.
    final class Clock: Sendable {
        let seconds = Mutex_(1_800_000_000)
        var now: @Sendable () -> Int { { self.seconds.get() } }
    }

    func testARoundTripNamesTheStreamTheViewerAndTheExpiry() throws {
        let clock = Clock()
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "acct_42", lifetime: 600))
        XCTAssertEqual(made.expiresAt, 1_800_000_600)
        XCTAssertLessThanOrEqual(made.token.utf8.count, PlaybackTokens.maxLength)
        XCTAssertTrue(PlaybackQuery.isPlain(Substring(made.token)), "URL-safe as it is: \(made.token)")
        XCTAssertEqual(tokens.verify(Substring(made.token), stream: "s1"),
                       PlaybackTokens.Grant(stream: "s1", viewer: "acct_42", expiresAt: 1_800_000_600))
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"))
        // Another node of the cluster (same keyring) takes it.
        XCTAssertTrue(PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now).isValid(Substring(made.token), stream: "s1"))
        // Ids that could not be carried are refused at issue.
        XCTAssertNil(tokens.token(stream: "s 1", viewer: "v"))
        XCTAssertNil(tokens.token(stream: "s1", viewer: String(repeating: "v", count: 65)))
        // The longest ids still make a token within the bound.
        let longest = try XCTUnwrap(tokens.token(stream: String(repeating: "s", count: 64), viewer: String(repeating: "v", count: 64)))
        XCTAssertLessThanOrEqual(longest.token.utf8.count, PlaybackTokens.maxLength)
        XCTAssertTrue(tokens.isValid(Substring(longest.token), stream: Substring(String(repeating: "s", count: 64))))
    }

    func testATokenExpires() throws {
        let clock = Clock()
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "v", lifetime: 10))
        clock.seconds.set(1_800_000_010)
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"), "good through its last second")
        clock.seconds.set(1_800_000_011)
        XCTAssertFalse(tokens.isValid(Substring(made.token), stream: "s1"))
        // Lifetimes are clamped: never more than the longest.
        clock.seconds.set(1_800_000_000)
        XCTAssertEqual(tokens.token(stream: "s1", viewer: "v", lifetime: 10_000_000)?.expiresAt, 1_800_000_000 + PlaybackTokens.lifetimes.upperBound)
        XCTAssertEqual(tokens.token(stream: "s1", viewer: "v", lifetime: -5)?.expiresAt, 1_800_000_000 + PlaybackTokens.lifetimes.lowerBound)
    }

    func testATokenMadeToOutliveTheLongestLifetimeIsRefused() throws {
        // A signer whose clock runs a day ahead makes a token that looks valid for a day here.
        let ahead = Clock()
        ahead.seconds.set(1_800_000_000 + 86_400)
        let made = try XCTUnwrap(PlaybackTokens(clusterKeys: [Self.keyA], now: ahead.now).token(stream: "s1", viewer: "v"))
        XCTAssertFalse(PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now).isValid(Substring(made.token), stream: "s1"))
    }

    func testEveryFlippedBitIsRefused() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "viewer1"))
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"), "remembered: every change below must still be refused")
        let bytes = try XCTUnwrap(Self.decode(made.token))
        for i in bytes.indices {
            for bit in 0..<8 {
                var tampered = bytes
                tampered[i] ^= 1 << bit
                let text = PlaybackTokens.base64URL(tampered)
                XCTAssertFalse(tokens.isValid(Substring(text), stream: "s1"), "byte \(i) bit \(bit)")
            }
        }
        // Every character of the text changed too.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in made.token.indices {
            for c in alphabet where c != made.token[i] {
                var text = made.token
                text.replaceSubrange(i...i, with: String(c))
                XCTAssertFalse(tokens.isValid(Substring(text), stream: "s1"), "\(text)")
            }
        }
        // Cut short, or with something after it.
        XCTAssertFalse(tokens.isValid(Substring(made.token.dropLast()), stream: "s1"))
        XCTAssertFalse(tokens.isValid(Substring(made.token + "A"), stream: "s1"))
        XCTAssertFalse(tokens.isValid(Substring(made.token + "AA"), stream: "s1"))
    }

    func testATokenOpensOnlyItsOwnStream() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "v"))
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"), "verified (and remembered) for its stream first")
        for other in ["s2", "s", "s11", "S1", ""] {
            XCTAssertFalse(tokens.isValid(Substring(made.token), stream: Substring(other)), other)
        }
    }

    func testAnotherClustersTokenIsRefused() throws {
        let made = try XCTUnwrap(PlaybackTokens(clusterKeys: [Self.keyB], now: Clock().now).token(stream: "s1", viewer: "v"))
        XCTAssertFalse(PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now).isValid(Substring(made.token), stream: "s1"))
    }

    func testRotationKeepsTokensOfEveryKeyInTheKeyring() throws {
        let clock = Clock()
        let old = try XCTUnwrap(PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now).token(stream: "s1", viewer: "v"))
        // Step one: the new key second everywhere; step two: first (it signs); old tokens still verify.
        let rotating = PlaybackTokens(clusterKeys: [Self.keyB, Self.keyA], now: clock.now)
        XCTAssertTrue(rotating.isValid(Substring(old.token), stream: "s1"))
        let new = try XCTUnwrap(rotating.token(stream: "s1", viewer: "v"))
        XCTAssertTrue(PlaybackTokens(clusterKeys: [Self.keyA, Self.keyB], now: clock.now).isValid(Substring(new.token), stream: "s1"),
                      "a node not yet at step two takes tokens of the new key")
        // Step three: the old key removed: its tokens open nothing (what another instance
        // remembered is its own).
        XCTAssertTrue(PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now).isValid(Substring(old.token), stream: "s1"))
        let rotated = PlaybackTokens(clusterKeys: [Self.keyB], now: clock.now)
        XCTAssertFalse(rotated.isValid(Substring(old.token), stream: "s1"))
        XCTAssertTrue(rotated.isValid(Substring(new.token), stream: "s1"))
    }

    func testGarbageIsRefusedAndNeverCrashes() {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        var inputs = ["", "A", "AA", "====", "%00%00", String(repeating: "A", count: 257), String(repeating: "A", count: 256),
                      String(repeating: "_", count: 200), "v1.s1.v.123.abc", String(repeating: "é", count: 100), "\0\0\0\0"]
        var random = SystemRandomNumberGenerator()
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            inputs.append(String(decoding: bytes, as: UTF8.self))
            inputs.append(PlaybackTokens.base64URL(bytes))
            // Well-formed headers with lengths that point anywhere.
            var framed: [UInt8] = [1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, UInt8(truncatingIfNeeded: length)]
            framed += bytes.prefix(150)
            inputs.append(PlaybackTokens.base64URL(framed))
        }
        for input in inputs {
            XCTAssertFalse(tokens.isValid(Substring(input), stream: "s1"))
            XCTAssertNil(tokens.verify(Substring(input), stream: "s1"))
        }
    }

    func testBase64URLRoundTripsAndHasOneSpelling() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = PlaybackTokens.base64URL(bytes)
            XCTAssertFalse(text.contains("=") || text.contains("+") || text.contains("/"))
            XCTAssertEqual(Self.decode(text), bytes)
        }
        // "AB" and "AC" would decode to the same byte: only the one with zero trailing bits is taken.
        XCTAssertEqual(Self.decode("AA"), [0])
        XCTAssertNil(Self.decode("AB"))
        XCTAssertNil(Self.decode("A"))
    }

    static func decode(_ text: String) -> [UInt8]? {
        withUnsafeTemporaryAllocation(byteCount: 512, alignment: 1) { buffer in
            PlaybackTokens.decodeBase64URL(Substring(text).utf8, into: buffer).map { Array(buffer[..<$0]) }
        }
    }

    // MARK: The format, and what each thread remembers

    func testATokenIsShortAndCarriesNeitherTheStreamNorTheWholeMAC() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        // An account's id (12 characters), as the watch page's tokens carry.
        let made = try XCTUnwrap(tokens.token(stream: "k3m9x2p7q4ra", viewer: "a8d2k4m6n9pq"))
        XCTAssertEqual(made.token.utf8.count, 48, "8 bytes of header, the viewer id, 16 of MAC: \(made.token)")
        let bytes = try XCTUnwrap(Self.decode(made.token))
        XCTAssertEqual(bytes[0], 2, "version")
        XCTAssertEqual(Int(bytes[7]), 12, "the viewer id's length")
        XCTAssertEqual(Array(bytes[8..<20]), Array("a8d2k4m6n9pq".utf8))
        XCTAssertFalse(made.token.contains("k3m9x2p7q4ra"))
        // Bound to the stream all the same: a fresh instance (nothing remembered) refuses it for another.
        let fresh = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        XCTAssertFalse(fresh.isValid(Substring(made.token), stream: "k3m9x2p7q4rb"))
        XCTAssertNil(fresh.verify(Substring(made.token), stream: "k3m9x2p7q4rb"))
        XCTAssertTrue(fresh.isValid(Substring(made.token), stream: "k3m9x2p7q4ra"))
        // The longest ids make the longest token.
        let longest = try XCTUnwrap(tokens.token(stream: String(repeating: "s", count: 64), viewer: String(repeating: "v", count: 64)))
        XCTAssertEqual(longest.token.utf8.count, PlaybackTokens.maxLength)
    }

    func testAVersionOneTokenIsRefused() throws {
        // The first format's layout: version 1, a 4-byte key id, the expiry, the stream and the
        // viewer, a 32-byte MAC. Whatever its MAC, version 2 is the only one taken.
        var v1: [UInt8] = [1, 0, 0, 0, 0, 0x6B, 0x49, 0xD2, 0x00, 2] + Array("s1".utf8) + [1] + Array("v".utf8)
        v1 += [UInt8](repeating: 7, count: 32)
        XCTAssertFalse(PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now).isValid(Substring(PlaybackTokens.base64URL(v1)), stream: "s1"))
        // A version 2 token with its version byte changed is refused too.
        let made = try XCTUnwrap(PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now).token(stream: "s1", viewer: "v"))
        var bytes = try XCTUnwrap(Self.decode(made.token))
        bytes[0] = 1
        XCTAssertFalse(PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now).isValid(Substring(PlaybackTokens.base64URL(bytes)), stream: "s1"))
    }

    func testARememberedTokenIsRefusedOnceItExpires() throws {
        let clock = Clock()
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "v", lifetime: 5))
        for _ in 0..<3 { XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1")) }
        clock.seconds.set(1_800_000_005)
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"))
        clock.seconds.set(1_800_000_006)
        for _ in 0..<3 { XCTAssertFalse(tokens.isValid(Substring(made.token), stream: "s1")) }
        // Not even on another thread that never saw it.
        let other = DispatchQueue(label: "other thread")
        XCTAssertFalse(other.sync { tokens.isValid(Substring(made.token), stream: "s1") })
    }

    func testARememberedTokenOpensOnlyItsStreamAndOnlyItsExactText() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        let made = try XCTUnwrap(tokens.token(stream: "s1", viewer: "v"))
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"))
        // Another stream of the same length, or longer, or shorter: its slot holds s1's.
        for other in ["s2", "s1x", "s", "S1"] {
            XCTAssertFalse(tokens.isValid(Substring(made.token), stream: Substring(other)), other)
        }
        // Text that lands on the same slot (its MAC's end kept) but differs anywhere before it.
        let text = Array(made.token.utf8)
        for i in 0..<(text.count - 3) {
            var changed = text
            changed[i] = changed[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let forged = String(decoding: changed, as: UTF8.self)
            XCTAssertEqual(PlaybackTokens.VerifiedTokens.slot(of: forged), PlaybackTokens.VerifiedTokens.slot(of: made.token))
            XCTAssertFalse(tokens.isValid(Substring(forged), stream: "s1"), forged)
        }
        XCTAssertTrue(tokens.isValid(Substring(made.token), stream: "s1"), "still remembered, still good")
    }

    func testTwoTokensOnOneSlotTakeTurnsAndBothStayGood() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: Clock().now)
        // Viewers until two tokens share a slot (1,024 slots: a few dozen tokens at most).
        var seen: [Int: String] = [:]
        var pair: (String, String)?
        for i in 0..<5000 where pair == nil {
            let token = try XCTUnwrap(tokens.token(stream: "s1", viewer: "v\(i)")).token
            let slot = PlaybackTokens.VerifiedTokens.slot(of: token)
            if let earlier = seen[slot] { pair = (earlier, token) } else { seen[slot] = token }
        }
        let (a, b) = try XCTUnwrap(pair)
        for _ in 0..<3 {
            XCTAssertTrue(tokens.isValid(Substring(a), stream: "s1"))
            XCTAssertTrue(tokens.isValid(Substring(b), stream: "s1"))
        }
        XCTAssertFalse(tokens.isValid(Substring(a), stream: "s2"))
        XCTAssertFalse(tokens.isValid(Substring(b), stream: "s2"))
    }

    func testRotationDropsWhatTheOldKeySignedAtOnce() throws {
        let clock = Clock()
        let old = try XCTUnwrap(PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now).token(stream: "s1", viewer: "v"))
        // A node restarted without the old key has a new instance: nothing it remembers came
        // from the old keyring.
        let rotating = PlaybackTokens(clusterKeys: [Self.keyB, Self.keyA], now: clock.now)
        XCTAssertTrue(rotating.isValid(Substring(old.token), stream: "s1"))
        let rotated = PlaybackTokens(clusterKeys: [Self.keyB], now: clock.now)
        for _ in 0..<2 { XCTAssertFalse(rotated.isValid(Substring(old.token), stream: "s1")) }
        // Two keys with the same 2-byte id would both be tried: a keyring of one key twice works.
        let twice = PlaybackTokens(clusterKeys: [Self.keyB, Self.keyB], now: clock.now)
        XCTAssertTrue(twice.isValid(Substring(try XCTUnwrap(rotated.token(stream: "s1", viewer: "v")).token), stream: "s1"))
    }

    func testTheWallClockIsTheSecondDateSays() {
        let before = Int(Date().timeIntervalSince1970)
        let read = PlaybackTokens.wallClock()
        let after = Int(Date().timeIntervalSince1970)
        XCTAssertTrue((before - 1)...after ~= read, "\(before) \(read) \(after)")
    }

    // MARK: The policy and the issuer

    func testThePolicyLetsPublicStreamsPlayAndPrivateOnesOnlyWithTheirToken() async throws {
        let sealer = ClusterKeySealer(clusterKeys: [Self.keyA])
        let db = try await Database.open(.sqlite(path: TestDatabases.tempFile()), logger: Logger(label: "test"), migrations: Migrations.all(sealer: sealer))
        let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer))
        let open = try await catalog.create(title: "Open", details: StreamDetails(visibility: .public))
        let unlisted = try await catalog.create(title: "Unlisted", details: StreamDetails(visibility: .unlisted))
        let invite = try await catalog.create(title: "Invite", owner: "owner1", details: StreamDetails(visibility: .inviteOnly))
        let paid = try await catalog.create(title: "Paid", details: StreamDetails(visibility: .paid))
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA])
        let policy = TokenPlayback(catalog: catalog, tokens: tokens)
        let issuer = TokenIssuer(tokens: tokens)

        for r in [open, unlisted] {
            XCTAssertTrue(policy.allowsPlayback(streamID: Substring(r.id), token: nil))
            XCTAssertTrue(policy.allowsPlayback(streamID: Substring(r.id), token: "garbage"))
        }
        for r in [invite, paid] {
            XCTAssertFalse(policy.allowsPlayback(streamID: Substring(r.id), token: nil))
            XCTAssertFalse(policy.allowsPlayback(streamID: Substring(r.id), token: "garbage"))
            XCTAssertFalse(policy.allowsPlayback(of: r, token: nil))
            let pass = try await XCTUnwrapAsync(await issuer.issue(for: r, to: .operator(viewer: "script"), lifetime: nil))
            XCTAssertTrue(policy.allowsPlayback(streamID: Substring(r.id), token: Substring(pass.token)))
            XCTAssertTrue(policy.allowsPlayback(of: r, token: Substring(pass.token)))
        }
        let inviteToken = try await XCTUnwrapAsync(await issuer.issue(for: invite, to: .operator(viewer: "script"), lifetime: nil))
        XCTAssertFalse(policy.allowsPlayback(streamID: Substring(paid.id), token: Substring(inviteToken.token)), "another stream's token")

        // A stream this node has no record of: only a valid token for it plays.
        XCTAssertFalse(policy.allowsPlayback(streamID: "unknown1", token: nil))
        let forUnknown = try XCTUnwrap(tokens.token(stream: "unknown1", viewer: "v"))
        XCTAssertTrue(policy.allowsPlayback(streamID: "unknown1", token: Substring(forUnknown.token)))
        XCTAssertFalse(policy.allowsPlayback(streamID: "unknown2", token: Substring(forUnknown.token)))

        // Who may have one: the owner and admins; not another account.
        let ownerPass = await issuer.issue(for: invite, to: .account(id: "owner1", isAdmin: false), lifetime: 60)
        XCTAssertNotNil(ownerPass)
        let adminPass = await issuer.issue(for: invite, to: .account(id: "admin1", isAdmin: true), lifetime: nil)
        XCTAssertNotNil(adminPass)
        let otherPass = await issuer.issue(for: invite, to: .account(id: "someone", isAdmin: false), lifetime: nil)
        XCTAssertNil(otherPass)
        let otherMay = await issuer.mayWatch(invite, .account(id: "someone", isAdmin: false))
        XCTAssertFalse(otherMay)
        let publicMay = await issuer.mayWatch(open, .account(id: "someone", isAdmin: false))
        XCTAssertTrue(publicMay)
        let grant = try XCTUnwrap(tokens.verify(Substring(ownerPass!.token), stream: Substring(invite.id)))
        XCTAssertEqual(grant.viewer, "owner1")

        // A paid stream: whoever holds a ticket (asked at every issue); a ticket opens only paid streams.
        let holders = Mutex<Set<String>>(["buyer1"])
        let selling = TokenIssuer(tokens: tokens, entitled: { stream, account in holders.withLock { $0.contains(account) } })
        let buyerPass = await selling.issue(for: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNotNil(buyerPass)
        let strangerPass = await selling.issue(for: paid, to: .account(id: "someone", isAdmin: false), lifetime: nil)
        XCTAssertNil(strangerPass)
        let ticketForInvite = await selling.mayWatch(invite, .account(id: "buyer1", isAdmin: false))
        XCTAssertFalse(ticketForInvite, "a ticket opens no invite-only stream")
        let guestMay = await selling.mayWatch(paid, .guest(id: "buyer1"))
        XCTAssertFalse(guestMay, "a guest buys nothing")
        holders.withLock { $0.remove("buyer1") }  // refunded
        let afterRefund = await selling.issue(for: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNil(afterRefund)
        await db.close()
    }

    /// A ticket for a recording alone: a token bound to that recording, which opens it and
    /// neither its live stream nor another recording; the stream's token keeps opening both
    /// recordings; none is issued once the ticket is gone.
    func testARecordingScopedTokenOpensThatRecordingAlone() async throws {
        let sealer = ClusterKeySealer(clusterKeys: [Self.keyA])
        let db = try await Database.open(.sqlite(path: TestDatabases.tempFile()), logger: Logger(label: "test"), migrations: Migrations.all(sealer: sealer))
        let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer))
        let paid = try await catalog.create(title: "Paid", owner: "owner1", details: StreamDetails(visibility: .paid))
        let clock = Clock()
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA], now: clock.now)
        let policy = TokenPlayback(catalog: catalog, tokens: tokens)
        // Recording ids are the stream's, an epoch and a number: up to 100 bytes.
        let first = "\(paid.id)-1800000000-0", second = "\(paid.id)-1800000000-40"
        let long = String(repeating: "s", count: 64) + "-4294967295-999999999"

        let scoped = try XCTUnwrap(tokens.token(recording: first, viewer: "buyer1", lifetime: 60))
        XCTAssertLessThanOrEqual(scoped.token.utf8.count, PlaybackTokens.maxLength)
        XCTAssertTrue(tokens.isValid(Substring(scoped.token), recording: Substring(first)))
        XCTAssertTrue(policy.allowsPlayback(recording: Substring(first), of: paid, token: Substring(scoped.token)))
        XCTAssertFalse(policy.allowsPlayback(recording: Substring(second), of: paid, token: Substring(scoped.token)), "another recording")
        XCTAssertFalse(policy.allowsPlayback(of: paid, token: Substring(scoped.token)), "the live stream")
        XCTAssertFalse(policy.allowsPlayback(streamID: Substring(paid.id), token: Substring(scoped.token)))
        XCTAssertFalse(tokens.isValid(Substring(scoped.token), stream: Substring(first)), "not a stream's token, even under the same id")
        XCTAssertFalse(policy.allowsPlayback(recording: Substring(first), of: paid, token: nil))
        XCTAssertFalse(policy.allowsPlayback(recording: Substring(first), of: paid, token: "garbage"))
        let longToken = try XCTUnwrap(tokens.token(recording: long, viewer: "v"))
        XCTAssertTrue(tokens.isValid(Substring(longToken.token), recording: Substring(long)))
        XCTAssertNil(tokens.token(recording: String(repeating: "r", count: 101), viewer: "v"))
        // A stream's token opens every recording of it; a stream token bound to the recording's id does not pass for a scoped one.
        let streamToken = try XCTUnwrap(tokens.token(stream: paid.id, viewer: "fan"))
        XCTAssertTrue(policy.allowsPlayback(recording: Substring(first), of: paid, token: Substring(streamToken.token)))
        XCTAssertTrue(policy.allowsPlayback(recording: Substring(second), of: paid, token: Substring(streamToken.token)))
        let lookalike = try XCTUnwrap(tokens.token(stream: String(first.prefix(64)), viewer: "fan"))
        XCTAssertFalse(tokens.isValid(Substring(lookalike.token), recording: Substring(String(first.prefix(64)))))
        // Expiry as for streams.
        clock.seconds.set(1_800_000_061)
        XCTAssertFalse(tokens.isValid(Substring(scoped.token), recording: Substring(first)))
        clock.seconds.set(1_800_000_000)

        // Who gets one: the holder of a ticket for the recording (asked at every issue); the stream's
        // ticket holders get the stream's token; a guest, a stranger and a refunded buyer nothing.
        let recordingTickets = Mutex<Set<String>>(["buyer1"])
        let issuer = TokenIssuer(tokens: tokens, entitled: { _, account in account == "fan" },
                                 entitledToRecording: { id, account in id == first && recordingTickets.withLock { $0.contains(account) } })
        let bought = try await XCTUnwrapAsync(await issuer.issue(recording: first, of: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil))
        XCTAssertTrue(tokens.isValid(Substring(bought.token), recording: Substring(first)))
        XCTAssertFalse(tokens.isValid(Substring(bought.token), stream: Substring(paid.id)))
        let notThatOne = await issuer.issue(recording: second, of: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNil(notThatOne)
        let liveForBuyer = await issuer.issue(for: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNil(liveForBuyer, "a recording's ticket opens no live stream")
        let fan = try await XCTUnwrapAsync(await issuer.issue(recording: first, of: paid, to: .account(id: "fan", isAdmin: false), lifetime: nil))
        XCTAssertTrue(tokens.isValid(Substring(fan.token), stream: Substring(paid.id)), "the stream's ticket: the stream's token")
        let guest = await issuer.issue(recording: first, of: paid, to: .guest(id: "buyer1"), lifetime: nil)
        XCTAssertNil(guest)
        var notPaid = paid
        notPaid.visibility = .inviteOnly
        let inviteOnly = await issuer.issue(recording: first, of: notPaid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNil(inviteOnly, "a ticket opens only a paid recording")
        recordingTickets.withLock { $0.remove("buyer1") }  // refunded
        let afterRefund = await issuer.issue(recording: first, of: paid, to: .account(id: "buyer1", isAdmin: false), lifetime: nil)
        XCTAssertNil(afterRefund)
        await db.close()
    }

    func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
        try XCTUnwrap(value, file: file, line: line)
    }

    // MARK: Playlists carry the token; caches ignore it

    func testPlaylistsCarryTheTokenToEveryURI() {
        let master = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1\"\nsource/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\n360p/index.m3u8\n"
        XCTAssertEqual(PlaybackQuery.carrying("TOK", in: master),
                       "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1\"\nsource/index.m3u8?token=TOK\n"
                       + "#EXT-X-STREAM-INF:BANDWIDTH=2\n360p/index.m3u8?token=TOK\n")
        let media = """
        #EXTM3U
        #EXT-X-MAP:URI="init0-0a1b2c3d.mp4"
        #EXT-X-PART:DURATION=0.333,URI="part1.0-0a1b2c3d.m4s",INDEPENDENT=YES
        #EXTINF:2.0,
        seg1-0a1b2c3d.m4s
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part2.0-0a1b2c3d.m4s"
        #EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8?x=1",LAST-MSN=1
        """
        let carried = PlaybackQuery.carrying("TOK", in: media)
        XCTAssertEqual(carried, """
        #EXTM3U
        #EXT-X-MAP:URI="init0-0a1b2c3d.mp4?token=TOK"
        #EXT-X-PART:DURATION=0.333,URI="part1.0-0a1b2c3d.m4s?token=TOK",INDEPENDENT=YES
        #EXTINF:2.0,
        seg1-0a1b2c3d.m4s?token=TOK
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part2.0-0a1b2c3d.m4s?token=TOK"
        #EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8?x=1&token=TOK",LAST-MSN=1
        """)
        XCTAssertEqual(PlaybackQuery.withoutToken("_HLS_msn=3&token=abc&_HLS_part=1"), "_HLS_msn=3&_HLS_part=1")
        XCTAssertNil(PlaybackQuery.withoutToken("token=abc"))
        XCTAssertNil(PlaybackQuery.withoutToken(nil))
        XCTAssertFalse(PlaybackQuery.isPlain("a&b"))
        XCTAssertFalse(PlaybackQuery.isPlain("a\"b"))
    }

    func testTheFastPathAnswersTwoTokensFromTheSameCachedObject() throws {
        let tokens = PlaybackTokens(clusterKeys: [Self.keyA])
        let object = ByteBuffer(string: "the part")
        let path = "/live/s1/source/part3.1-0a1b2c3d.m4s"
        let looked = Mutex_<[String]>([])
        let fastPath = MediaFastPath { request in
            looked.update { $0.append(request.path) }
            guard request.token.map({ tokens.isValid($0, stream: Substring(request.streamID)) }) == true else { return nil }
            return request.path == path ? object : nil
        }
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try channel.pipeline.syncOperations.addHandler(fastPath)
        let a = try XCTUnwrap(tokens.token(stream: "s1", viewer: "a")).token
        let b = try XCTUnwrap(tokens.token(stream: "s1", viewer: "b")).token
        XCTAssertNotEqual(a, b)
        for token in [a, b] {
            try channel.writeInbound(ByteBuffer(string: "GET \(path)?token=\(token) HTTP/1.1\r\nHost: edge\r\n\r\n"))
        }
        var wire = ""
        while let out = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = out { wire += String(buffer: b) }
        }
        XCTAssertEqual(wire.components(separatedBy: "HTTP/1.1 200 OK").count - 1, 2, wire)
        XCTAssertEqual(wire.components(separatedBy: "the part").count - 1, 2)
        XCTAssertEqual(looked.get(), [path, path], "looked up under the path alone")
        XCTAssertEqual(MediaObjectRequest(target: "\(path)?token=\(a)")?.path, MediaObjectRequest(target: "\(path)?token=\(b)")?.path)
        _ = try? channel.finish()
    }
}

/// A value behind a lock, for the test clock.
final class Mutex_<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    func update(_ body: (inout T) -> Void) { lock.withLock { body(&value) } }
}
