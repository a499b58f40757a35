import Catalog
import Cluster
import Foundation
import Logging
import Synchronization
import XCTest
@testable import Accounts
@testable import Schedule

/// The schedule's notices decided by the clock (injected): a reminder within the lead, a
/// "missed" once the window after the start has passed without a broadcast, each once; a stream
/// that went live is never missed. On both engines.
final class NoticeTests: XCTestCase {
    let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])

    func testRemindersAndMissedStreamsAreSentOnceByTheClock() async throws {
        for location in try await TestDatabases.fresh() {
            let engine = TestDatabases.engine(location)
            let logger = Logger(label: "test")
            let db = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
            let outbox = Outbox()
            var settings = AccountsSettings()
            settings.testingPasswordCost = 4
            let accounts = try await AccountService(database: db, settings: settings, sendMail: outbox.send, logger: logger)
            let host = try await accounts.signUp(email: "host@example.com", password: "a good password", displayName: "Host", address: "")
            let fan = try await accounts.signUp(email: "fan@example.com", password: "a good password", displayName: "Fan", address: "")
            try await accounts.channels.follow(channel: host.id, by: fan.id)
            let catalog = StreamCatalog(store: StreamStore(database: db, sealer: sealer), logger: logger)
            let now = Date()
            let start = now.addingTimeInterval(3600)
            let s = try await catalog.create(title: "Show", owner: host.id, details: StreamDetails(startsAt: .some(start)))
            let live = try await catalog.create(title: "Went live", owner: host.id, details: StreamDetails(startsAt: .some(start)))
            let onAir = Mutex<Set<String>>([])
            var ns = NoticeSettings()
            ns.reminderLead = 600
            ns.missedAfter = 1800
            let notices = StreamNotices(catalog: catalog, accounts: accounts, settings: ns, nodeID: "n1", owns: { _ in true },
                                        isLive: { id in onAir.withLock { $0.contains(id) } }, send: outbox.send, logger: logger)
            func count(_ to: String, _ subject: String) -> Int { outbox.to(to).filter { $0.subject == subject }.count }

            await notices.tick(now: now)  // an hour before: nothing
            XCTAssertEqual(count("fan@example.com", "Starting soon: Show"), 0, engine)
            await notices.tick(now: start.addingTimeInterval(-300))
            await notices.tick(now: start.addingTimeInterval(-200))
            XCTAssertEqual(count("fan@example.com", "Starting soon: Show"), 1, "\(engine): one reminder")
            // "Went live" goes live at its time; "Show" never does.
            onAir.withLock { _ = $0.insert(live.id) }
            await notices.tick(now: start.addingTimeInterval(10))
            await notices.tick(now: start.addingTimeInterval(20))
            XCTAssertEqual(count("fan@example.com", "Live now: Went live"), 1, "\(engine): one live-now")
            onAir.withLock { $0.removeAll() }
            await notices.tick(now: start.addingTimeInterval(1700))
            XCTAssertEqual(count("host@example.com", "Your stream did not start: Show"), 0, "\(engine): not yet missed")
            await notices.tick(now: start.addingTimeInterval(1900))
            await notices.tick(now: start.addingTimeInterval(2000))
            XCTAssertEqual(count("host@example.com", "Your stream did not start: Show"), 1, "\(engine): missed once")
            XCTAssertEqual(count("host@example.com", "Your stream did not start: Went live"), 0, "\(engine): it started")
            // A second node on the same database sends nothing already sent.
            let other = StreamNotices(catalog: catalog, accounts: accounts, settings: ns, nodeID: "n2", owns: { _ in true },
                                      isLive: { _ in false }, send: outbox.send, logger: logger)
            await other.tick(now: start.addingTimeInterval(2100))
            XCTAssertEqual(count("host@example.com", "Your stream did not start: Show"), 1, engine)
            XCTAssertEqual(count("fan@example.com", "Starting soon: Show"), 1, engine)
            _ = s
            await db.close()
        }
    }
}
