import Foundation
import XCTest
@testable import Origin

/// The state is a typed value in code but the same strings on the wire: HTTP clients and the
/// integration tests read `"offline"`, `"live"`, `"ended"` and `"standby"`.
final class LiveStreamStateTests: XCTestCase {
    func testEncodesToTheStringsClientsRead() throws {
        let expected: [LiveStreamState: String] = [.offline: "offline", .live: "live", .ended: "ended", .standby: "standby"]
        XCTAssertEqual(Set(expected.keys), Set(LiveStreamState.allCases))
        for (state, name) in expected {
            XCTAssertEqual(String(decoding: try JSONEncoder().encode([state]), as: UTF8.self), "[\"\(name)\"]")
            XCTAssertEqual(try JSONDecoder().decode([LiveStreamState].self, from: Data("[\"\(name)\"]".utf8)), [state])
        }
    }

    func testStatusAndHealthCarryTheStateAsAString() throws {
        let live = LiveStream(id: "state")
        let status = try JSONSerialization.jsonObject(with: JSONEncoder().encode(live.status)) as? [String: Any]
        XCTAssertEqual(status?["state"] as? String, "offline")
        live.beginPublishing()
        let health = try JSONSerialization.jsonObject(with: JSONEncoder().encode(live.health)) as? [String: Any]
        XCTAssertEqual(health?["state"] as? String, "live")
        live.endPublishing()
        XCTAssertEqual(live.health.state, .ended)
    }
}
