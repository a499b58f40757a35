import Catalog
@testable import Chat
import Cluster
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import XCTest

/// The chat's rules as values (text bounds, rate, slow mode, moderation), its room fanning out
/// and refusing, and the kept messages and rules on both engines.
final class ChatTests: XCTestCase {
    let logger = Logger(label: "chat-test")
    let viewer = ChatAuthor(id: "viewer1", name: "Viewer")
    let host = ChatAuthor(id: "host1", name: "Host", moderator: true)

    func testTextIsTrimmedControlCharactersBlankedAndBounded() throws {
        XCTAssertEqual(try ChatText.clean("  hello\nthere\u{7}  "), "hello there")
        XCTAssertEqual(try ChatText.clean("<script>alert(1)</script>"), "<script>alert(1)</script>", "kept as text: pages escape it")
        XCTAssertEqual(try ChatText.clean("a\u{202E}b"), "a b", "bidirectional overrides go")
        XCTAssertThrowsError(try ChatText.clean(" \n\t ")) { XCTAssertEqual($0 as? ChatRefusal, .empty) }
        XCTAssertEqual(try ChatText.clean(String(repeating: "é", count: 500)).count, 500)
        XCTAssertThrowsError(try ChatText.clean(String(repeating: "x", count: 501))) { XCTAssertEqual($0 as? ChatRefusal, .tooLong(max: 500)) }
        // Few characters, many scalars (combining marks piled up): refused too.
        XCTAssertThrowsError(try ChatText.clean("a" + String(repeating: "\u{301}", count: 3000))) {
            XCTAssertEqual($0 as? ChatRefusal, .tooLong(max: 500))
        }
    }

    func testPostingNeedsAnAccountAndIsRateLimitedPerPerson() throws {
        var room = ChatRoomState(stream: "s1")
        XCTAssertThrowsError(try room.post("hi", by: nil, id: "m0", now: 0)) { XCTAssertEqual($0 as? ChatRefusal, .signInFirst) }
        for i in 0..<5 { _ = try room.post("hi \(i)", by: viewer, id: "m\(i)", now: 100) }
        XCTAssertThrowsError(try room.post("sixth", by: viewer, id: "m5", now: 100)) { XCTAssertEqual($0 as? ChatRefusal, .tooFast(seconds: 2)) }
        // Another person is not held back by the first one's burst.
        XCTAssertNoThrow(try room.post("me too", by: ChatAuthor(id: "other", name: "O"), id: "o1", now: 100))
        // One message back every 2 s (5 per 10 s).
        XCTAssertNoThrow(try room.post("later", by: viewer, id: "m6", now: 102))
        XCTAssertThrowsError(try room.post("again", by: viewer, id: "m7", now: 102.5))
        // Moderators are not rate limited.
        for i in 0..<20 { XCTAssertNoThrow(try room.post("mod \(i)", by: host, id: "h\(i)", now: 100)) }
        XCTAssertEqual(room.recent.count, 27)
    }

    func testSlowModeTimeoutAndBanAreEnforcedAndOnlyModeratorsSetThem() throws {
        var room = ChatRoomState(stream: "s1")
        XCTAssertThrowsError(try room.setSlowMode(10, by: viewer)) { XCTAssertEqual($0 as? ChatRefusal, .notModerator) }
        XCTAssertThrowsError(try room.setSlowMode(100_000, by: host))
        try room.setSlowMode(10, by: host)
        _ = try room.post("one", by: viewer, id: "a", now: 0)
        XCTAssertThrowsError(try room.post("two", by: viewer, id: "b", now: 4)) { XCTAssertEqual($0 as? ChatRefusal, .slowMode(seconds: 6)) }
        XCTAssertNoThrow(try room.post("two", by: viewer, id: "b", now: 10))
        try room.setSlowMode(0, by: host)

        XCTAssertThrowsError(try room.timeOut("viewer1", minutes: 1, by: viewer, now: 10)) { XCTAssertEqual($0 as? ChatRefusal, .notModerator) }
        XCTAssertEqual(try room.timeOut("viewer1", minutes: 1, by: host, now: 10), 70)
        XCTAssertThrowsError(try room.post("x", by: viewer, id: "c", now: 20)) { XCTAssertEqual($0 as? ChatRefusal, .timedOut(seconds: 50)) }
        XCTAssertNoThrow(try room.post("back", by: viewer, id: "d", now: 71))
        XCTAssertThrowsError(try room.timeOut("viewer1", minutes: -1, by: host, now: 71))
        XCTAssertThrowsError(try room.timeOut("bad id!", minutes: 1, by: host, now: 71))

        try room.ban("viewer1", by: host)
        XCTAssertThrowsError(try room.post("x", by: viewer, id: "e", now: 1000)) { XCTAssertEqual($0 as? ChatRefusal, .banned) }
        try room.ban("viewer1", false, by: host)
        XCTAssertNoThrow(try room.post("unbanned", by: viewer, id: "f", now: 1001))

        XCTAssertThrowsError(try room.delete("f", by: viewer)) { XCTAssertEqual($0 as? ChatRefusal, .notModerator) }
        try room.delete("f", by: host)
        XCTAssertFalse(room.recent.contains { $0.id == "f" })
    }

    func testFollowersOnlyModeLetsFollowersAndModeratorsPostOnly() throws {
        var room = ChatRoomState(stream: "s1")
        XCTAssertThrowsError(try room.setFollowersOnly(true, by: viewer)) { XCTAssertEqual($0 as? ChatRefusal, .notModerator) }
        XCTAssertThrowsError(try room.setFollowersOnly(true, by: nil)) { XCTAssertEqual($0 as? ChatRefusal, .notModerator) }
        XCTAssertNoThrow(try room.post("before", by: viewer, id: "a", now: 0), "off: anyone signed in posts")
        try room.setFollowersOnly(true, by: host)
        XCTAssertTrue(room.followersOnly)
        XCTAssertThrowsError(try room.post("hi", by: viewer, id: "b", now: 1)) { error in
            XCTAssertEqual(error as? ChatRefusal, .followersOnly)
            XCTAssertEqual((error as? ChatRefusal)?.description, "followers-only mode: follow this channel to chat")
        }
        XCTAssertThrowsError(try room.post("hi", by: nil, id: "b", now: 1, follower: true)) { XCTAssertEqual($0 as? ChatRefusal, .signInFirst) }
        XCTAssertNoThrow(try room.post("a follower", by: viewer, id: "c", now: 2, follower: true))
        XCTAssertNoThrow(try room.post("the host", by: host, id: "d", now: 2), "moderators post without following")
        // A banned follower stays banned.
        try room.ban("viewer1", by: host)
        XCTAssertThrowsError(try room.post("x", by: viewer, id: "e", now: 3, follower: true)) { XCTAssertEqual($0 as? ChatRefusal, .banned) }
        try room.ban("viewer1", false, by: host)
        try room.setFollowersOnly(false, by: host)
        XCTAssertNoThrow(try room.post("after", by: viewer, id: "f", now: 20))
        XCTAssertEqual(room.recent.map(\.id), ["a", "c", "d", "f"])
    }

    func testReactionsAreCountedRateLimitedAndUnknownOnesRefused() throws {
        var room = ChatRoomState(stream: "s1")
        XCTAssertThrowsError(try room.react("like", by: nil, now: 0)) { XCTAssertEqual($0 as? ChatRefusal, .signInFirst) }
        for bad in ["", "dislike", "LIKE", "<b>", String(repeating: "x", count: 5000)] {
            XCTAssertThrowsError(try room.react(bad, by: viewer, now: 0)) { XCTAssertEqual($0 as? ChatRefusal, .unknownReaction) }
        }
        XCTAssertEqual(try room.react("like", by: viewer, now: 0), ["like": 1])
        XCTAssertEqual(try room.react("clap", by: ChatAuthor(id: "other", name: "O"), now: 0), ["like": 1, "clap": 1])
        // The same per-user bucket as messages: 5 at once (one spent above), then one per 2 s.
        for _ in 0..<4 { _ = try room.react("love", by: viewer, now: 0) }
        XCTAssertThrowsError(try room.react("wow", by: viewer, now: 0)) { XCTAssertEqual($0 as? ChatRefusal, .tooFast(seconds: 2)) }
        XCTAssertThrowsError(try room.post("and a message", by: viewer, id: "m", now: 0)) { XCTAssertEqual($0 as? ChatRefusal, .tooFast(seconds: 2)) }
        XCTAssertEqual(try room.react("wow", by: viewer, now: 2), ["like": 1, "clap": 1, "love": 4, "wow": 1])
        for _ in 0..<10 { _ = try room.react("laugh", by: host, now: 2) }
        XCTAssertEqual(room.reactions["laugh"], 10, "moderators are not rate limited")
        try room.ban("other", by: host)
        XCTAssertThrowsError(try room.react("clap", by: ChatAuthor(id: "other", name: "O"), now: 3)) { XCTAssertEqual($0 as? ChatRefusal, .banned) }
        XCTAssertEqual(room.reactions["clap"], 1)
    }

    func testTheRoomAsksWhetherAPosterFollowsAndBroadcastsModesAndReactionCounts() async throws {
        let asked = Collected()
        let room = ChatRoom(state: ChatRoomState(stream: "s1"), store: nil, logger: logger, follows: { account in
            asked.add(account)
            return account == "fan1"
        })
        let all = Collected(), replies = Collected()
        let id = await room.subscribe { if case .text(let t) = $0 { all.add(t) } }!
        func events(_ c: Collected) -> [ChatEvent] { c.items.compactMap { try? JSONDecoder().decode(ChatEvent.self, from: Data($0.utf8)) } }
        await room.submit(ChatCommand(type: "post", text: "off"), from: viewer, conn: id, reply: { replies.add($0) })
        XCTAssertEqual(asked.items, [], "not asked while the mode is off")
        await room.submit(ChatCommand(type: "followers", on: true), from: viewer, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "followers"), from: host, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "followers", on: true), from: host, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "post", text: "no"), from: viewer, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "post", text: "yes"), from: ChatAuthor(id: "fan1", name: "Fan"), conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "post", text: "host"), from: host, conn: id, reply: { replies.add($0) })
        XCTAssertEqual(asked.items, ["viewer1", "fan1"], "moderators are not asked")
        await room.submit(ChatCommand(type: "react", reaction: "clap"), from: viewer, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "react", reaction: "boo"), from: viewer, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "react"), from: viewer, conn: id, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "react", reaction: "clap"), from: nil, conn: id, reply: { replies.add($0) })
        let broadcast = events(all)
        XCTAssertEqual(broadcast.map(\.type), ["message", "followers", "message", "message", "reactions"])
        XCTAssertEqual(broadcast.compactMap(\.message?.text), ["off", "yes", "host"])
        XCTAssertEqual(broadcast[1].on, true)
        XCTAssertEqual(broadcast.last?.reactions, ["clap": 1])
        XCTAssertEqual(events(replies).compactMap(\.text), [
            "only the broadcaster and co-hosts may do that", "followers-only mode: send on: true or false",
            "followers-only mode: follow this channel to chat",
            "unknown reaction: send one of like, love, laugh, wow, clap", "unknown reaction: send one of like, love, laugh, wow, clap",
            "sign in to chat",
        ])
        let hello = Collected()
        await room.submit(.join, from: nil, conn: id, reply: { hello.add($0) })
        let h = try XCTUnwrap(events(hello).first)
        XCTAssertEqual(h.followersOnly, true)
        XCTAssertEqual(h.reactions, ["clap": 1])
    }

    func testAConnectionsFrameBudgetStopsAFloodAndRefills() {
        var limits = ChatLimits()
        limits.frameBurst = 3
        limits.framesPerSecond = 1
        let t0 = ContinuousClock.now
        var budget = FrameBudget(limits: limits, now: t0)
        XCTAssertTrue(budget.spend(at: t0))
        XCTAssertTrue(budget.spend(at: t0))
        XCTAssertTrue(budget.spend(at: t0))
        XCTAssertFalse(budget.spend(at: t0))
        XCTAssertTrue(budget.spend(at: t0 + .seconds(1)))
    }

    func testTheRoomFansOutToEverySubscriberAndAnswersRefusalsToTheOneWhoAsked() async throws {
        let room = ChatRoom(state: ChatRoomState(stream: "s1"), store: nil, logger: logger)
        let a = Collected(), b = Collected(), replies = Collected()
        let ida = await room.subscribe { if case .text(let t) = $0 { a.add(t) } }
        _ = await room.subscribe { if case .text(let t) = $0 { b.add(t) } }
        await room.submit(ChatCommand(type: "post", text: "<b>hi</b>"), from: viewer, conn: ida!, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "post", text: "anonymous"), from: nil, conn: ida!, reply: { replies.add($0) })
        await room.submit(ChatCommand(type: "slow", seconds: 5), from: viewer, conn: ida!, reply: { replies.add($0) })
        XCTAssertEqual(a.items.count, 1)
        XCTAssertEqual(b.items, a.items)
        let event = try JSONDecoder().decode(ChatEvent.self, from: Data(a.items[0].utf8))
        XCTAssertEqual(event.message?.text, "<b>hi</b>")
        XCTAssertEqual(replies.items.map { try? JSONDecoder().decode(ChatEvent.self, from: Data($0.utf8)).text },
                       ["sign in to chat", "only the broadcaster and co-hosts may do that"])
        await room.submit(ChatCommand(type: "delete", id: event.message!.id), from: host, conn: ida!, reply: { replies.add($0) })
        XCTAssertEqual(b.items.last, ChatEvent.deleted(event.message!.id).json)
        await room.close(reason: "moved")
        let late = await room.subscribe { _ in }
        XCTAssertNil(late, "a closed room takes no one: they ask the registry again")
    }

    /// A sweep lets a room nobody was in over two sweeps go (the next viewer gets a fresh one), keeps
    /// one with a viewer or visited since, and closes the viewers of a room whose stream moved.
    func testSweepsDropIdleRoomsAndCloseRoomsThatMoved() async throws {
        let owner = Mutex<ChatPlace>(.here)
        let rooms = ChatRooms(store: nil, place: { _ in owner.withLock { $0 } }, token: { _, _ in "" }, logger: logger)
        let idle = try await rooms.handle(for: "idle")
        let busy = try await rooms.handle(for: "busy")
        let closed = Collected()
        _ = await busy.subscribe { if case .close(let why) = $0 { closed.add(why) } }
        let count = await rooms.roomCount
        XCTAssertEqual(count, 2)
        var gone = await rooms.sweep()
        XCTAssertEqual(gone, 0, "idle once is not gone yet")
        // A viewer came and went since: the idle room is not idle over two sweeps.
        let visitor = await idle.subscribe { _ in }
        await idle.unsubscribe(visitor!)
        gone = await rooms.sweep()
        XCTAssertEqual(gone, 0)
        gone = await rooms.sweep()
        XCTAssertEqual(gone, 1)
        let late = await idle.subscribe { _ in }
        XCTAssertNil(late, "the dropped room takes no one")
        let again = try await rooms.handle(for: "idle")
        XCTAssertFalse(again === idle, "the next viewer gets the room loaded again")
        let stillBusy = try await rooms.handle(for: "busy")
        XCTAssertTrue(stillBusy === busy)
        // The ring moves the busy room's stream away: its viewers are closed, to reconnect there.
        owner.withLock { $0 = .node("http://127.0.0.1:1") }
        gone = await rooms.sweep()
        XCTAssertEqual(gone, 2)
        XCTAssertEqual(closed.items, ["the chat moved to another node: reconnecting"])
        let left = await rooms.roomCount
        XCTAssertEqual(left, 0)
    }

    func testRelayEnvelopesCarryTheRoomsEventToOneOrAll() throws {
        let json = ChatEvent.notice("hi \"there\"").json
        let all = try XCTUnwrap(ChatRelayEnvelope.open(ChatRelayEnvelope.everyone(json)))
        XCTAssertNil(all.to)
        XCTAssertEqual(try JSONDecoder().decode(ChatEvent.self, from: Data(all.event.utf8)).text, "hi \"there\"")
        let one = try XCTUnwrap(ChatRelayEnvelope.open(ChatRelayEnvelope.one("7", json)))
        XCTAssertEqual(one.to, "7")
        XCTAssertNil(ChatRelayEnvelope.open("not json"))
        XCTAssertNil(ChatCommand.decode("{\"text\":1}"))
    }

    func testMessagesAndRulesAreKeptAndARoomLoadsThemOnBothEngines() async throws {
        for location in try await TestDatabases.fresh() {
            let engine = TestDatabases.engine(location)
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])))
            let store = ChatStore(database: db)
            let room = await ChatRoom.load(stream: "s1", store: store, limits: ChatLimits(), logger: logger, liveSince: { 1000 })
            let seen = Collected()
            let id = await room.subscribe { if case .text(let t) = $0 { seen.add(t) } }!
            for text in ["first", "second", "third"] {
                await room.submit(ChatCommand(type: "post", text: text), from: viewer, conn: id, reply: { _ in })
                try await Task.sleep(for: .milliseconds(5))  // distinct times, for the range below
            }
            await room.submit(ChatCommand(type: "post", text: "fourth"), from: viewer, conn: id, reply: { _ in })
            let posted = seen.items.compactMap { try? JSONDecoder().decode(ChatEvent.self, from: Data($0.utf8)).message }
            XCTAssertEqual(posted.count, 4, engine)
            XCTAssertNotNil(posted[0].offset, engine)
            await room.submit(ChatCommand(type: "delete", id: posted[1].id), from: host, conn: id, reply: { _ in })
            await room.submit(ChatCommand(type: "ban", user: "troll1"), from: host, conn: id, reply: { _ in })
            await room.submit(ChatCommand(type: "timeout", user: "viewer2", minutes: 10), from: host, conn: id, reply: { _ in })
            await room.submit(ChatCommand(type: "slow", seconds: 30), from: host, conn: id, reply: { _ in })
            await room.submit(ChatCommand(type: "followers", on: true), from: host, conn: id, reply: { _ in })
            let rules = try await store.rules(stream: "s1")
            XCTAssertEqual(rules.slow, 30, engine)
            XCTAssertTrue(rules.followersOnly, engine)

            let kept = try await store.messages(stream: "s1", from: 0, to: .greatestFiniteMagnitude)
            XCTAssertEqual(kept.map(\.text), ["first", "third", "fourth"], engine)
            XCTAssertEqual(kept.first?.offset ?? -1, posted[0].offset ?? -2, accuracy: 0.001, engine)
            let range = try await store.messages(stream: "s1", from: posted[2].at, to: posted[3].at)
            XCTAssertEqual(range.map(\.id), [posted[2].id], engine)
            let none = try await store.messages(stream: "other", from: 0, to: .greatestFiniteMagnitude)
            XCTAssertEqual(none, [], engine)

            // The room's next node (a failover) loads the same messages and rules.
            let next = await ChatRoom.load(stream: "s1", store: store, limits: ChatLimits(), logger: logger)
            let replies = Collected()
            await next.submit(.join, from: viewer, conn: 1, reply: { replies.add($0) })
            let hello = try JSONDecoder().decode(ChatEvent.self, from: Data(replies.items[0].utf8))
            XCTAssertEqual(hello.messages?.map(\.text), ["first", "third", "fourth"], engine)
            XCTAssertEqual(hello.slow, 30, engine)
            XCTAssertEqual(hello.followersOnly, true, "\(engine): the next owner inherits followers-only mode")
            await next.submit(ChatCommand(type: "post", text: "x"), from: ChatAuthor(id: "troll1", name: "T"), conn: 1, reply: { replies.add($0) })
            await next.submit(ChatCommand(type: "post", text: "x"), from: ChatAuthor(id: "viewer2", name: "V"), conn: 1, reply: { replies.add($0) })
            let notices = replies.items.dropFirst().compactMap { try? JSONDecoder().decode(ChatEvent.self, from: Data($0.utf8)).text }
            XCTAssertEqual(notices.count, 2, engine)
            XCTAssertEqual(notices.first, "you are banned from this chat", engine)
            XCTAssertTrue(notices.last?.hasPrefix("you are timed out") == true, "\(engine): \(notices)")
            await db.close()
        }
    }
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

final class UpgradeSnifferTests: XCTestCase {
    func testTheFirstHeadPicksTheWebSocketPipelineOnlyForAWebSocketUpgrade() {
        func parts(_ s: String) -> (Int?, Bool) {
            let buffer = ByteBuffer(string: s)
            let end = UpgradeSniffer.headEnd(buffer.readableBytesView)
            return (end, end.map { UpgradeSniffer.asksForWebSocket(buffer.readableBytesView.prefix($0)) } ?? false)
        }
        let ws = "GET /chat/abc HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        XCTAssertEqual(parts(ws).0, ws.utf8.count)
        XCTAssertTrue(parts(ws).1)
        XCTAssertTrue(parts("GET / HTTP/1.1\r\nupgrade:  h2c, WebSocket \r\n\r\nrest").1)
        XCTAssertFalse(parts("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n").1)
        XCTAssertFalse(parts("POST /x HTTP/1.1\r\nContent-Length: 20\r\n\r\nUpgrade: websocket\r\n").1, "the body is not the head")
        XCTAssertNil(parts("GET / HTTP/1.1\r\nHost: x\r\n").0)
    }
}

final class ChatGatewayParsingTests: XCTestCase {
    func testTargetsCookiesAndOriginsAreReadAsTheGatewayChecksThem() {
        let (path, query) = ChatGateway.split("/chat/abc?csrf=a%2Bb&token=t.1&flag")
        XCTAssertEqual(path, "/chat/abc")
        XCTAssertEqual(query, ["csrf": "a+b", "token": "t.1"])
        XCTAssertEqual(ChatGateway.split("/chat/abc").query, [:])
        let cookies = ChatGateway.cookies(["st_session=s1; st_csrf=c1", "st_session=later; other=x=y"])
        XCTAssertEqual(cookies["st_session"], "s1", "the first one counts")
        XCTAssertEqual(cookies["st_csrf"], "c1")
        XCTAssertEqual(cookies["other"], "x=y")
        XCTAssertEqual(ChatGateway.origin(of: "https://Tube.Example:8443/path"), "https://tube.example:8443")
        XCTAssertEqual(ChatGateway.origin(of: "http://tube.example"), "http://tube.example")
        XCTAssertNil(ChatGateway.origin(of: "not a url"))
    }

    /// Events for a viewer's channel are written by one job on its loop, in order, as text frames,
    /// each channel flushed once; a channel that is not writable loses them; a closed one gets none.
    func testViewerWritesAreBatchedPerLoopInOrderAndBoundedBySlowReaders() throws {
        let loop = EmbeddedEventLoop()
        let fast = EmbeddedChannel(loop: loop), slow = EmbeddedChannel(loop: loop), gone = EmbeddedChannel(loop: loop)
        try fast.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try slow.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let writes = ChatLoopWrites.of(loop)
        XCTAssertTrue(writes === ChatLoopWrites.of(loop), "one queue a loop")
        slow.isWritable = false
        for i in 0..<3 {
            writes.send("{\"n\":\(i)}", to: fast)
            writes.send("{\"n\":\(i)}", to: slow)
            writes.send("{\"n\":\(i)}", to: gone)
        }
        XCTAssertNil(try fast.readOutbound(as: WebSocketFrame.self), "nothing written before the loop's job runs")
        loop.run()
        var texts: [String] = []
        while let frame = try fast.readOutbound(as: WebSocketFrame.self) {
            XCTAssertEqual(frame.opcode, .text)
            XCTAssertTrue(frame.fin)
            texts.append(String(buffer: frame.unmaskedData))
        }
        XCTAssertEqual(texts, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"])
        XCTAssertNil(try slow.readOutbound(as: WebSocketFrame.self), "a reader that does not keep up loses frames")
        XCTAssertNil(try gone.readOutbound(as: WebSocketFrame.self))
        // Writable again: it gets what comes next.
        slow.isWritable = true
        writes.send("{\"n\":3}", to: slow)
        loop.run()
        XCTAssertEqual(try slow.readOutbound(as: WebSocketFrame.self).map { String(buffer: $0.unmaskedData) }, "{\"n\":3}")
        _ = try fast.finish()
        _ = try slow.finish()
    }
}
