import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import XCTest
@testable import Live

/// The join admission that turns new viewers away from a node over its bounds, and the
/// event-loop lag it reads.
final class JoinAdmissionTests: XCTestCase {
    func testJoinsAreRefusedOverEitherBound() {
        XCTAssertNil(JoinAdmission().refusal(viewers: 1_000_000, lag: 60), "no bound by default")
        let policy = JoinAdmission(maxViewers: 100, maxLag: 1)
        XCTAssertNil(policy.refusal(viewers: 99, lag: 0.5))
        XCTAssertEqual(policy.refusal(viewers: 100, lag: 0), .viewers)
        XCTAssertEqual(policy.refusal(viewers: 0, lag: 1.5), .eventLoopLag)
    }

    func testTheGateAnswers503WithRetryAfterAndWarnsAtMostEveryTenSeconds() {
        final class Lines: @unchecked Sendable { var messages: [Logger.Message] = [] }
        struct Capture: LogHandler {
            let lines: Lines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
            func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
                lines.messages.append(message)
            }
        }
        let lines = Lines()
        let now = Box(0)
        let viewers = Box(5)
        let gate = JoinGate(policy: JoinAdmission(maxViewers: 10), viewers: { Int(viewers.value) }, lag: { 0 },
                            logger: Logger(label: "t") { _ in Capture(lines: lines) }, clock: { now.value })
        XCTAssertNil(gate.refuse())
        viewers.value = 10
        for t in [0.0, 1, 2, 9.9, 10, 11] {
            now.value = t
            let r = gate.refuse()
            XCTAssertEqual(r?.status, .serviceUnavailable)
            XCTAssertEqual(r?.headers[.retryAfter], "2")
        }
        XCTAssertEqual(lines.messages.count, 2, "one warning at 0 s, the next at 10 s")
    }

    func testTheLoopLagProbeSeesABlockedLoop() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let lag = EventLoopLag(loops: [loop], interval: .milliseconds(20))
        defer { lag.stop() }
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertLessThan(lag.current, 0.2)
        let busy = loop.submit { Thread.sleep(forTimeInterval: 0.6) }
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertGreaterThan(lag.current, 0.25, "a loop busy for 0.4 s so far has not run its timer")
        try busy.wait()
    }
}

final class Box: @unchecked Sendable {
    var value: Double
    init(_ value: Double) { self.value = value }
}
