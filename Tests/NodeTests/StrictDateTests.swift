import Foundation
import XCTest
@testable import App

/// The API's times: RFC 3339 with an offset, nothing before or after.
final class StrictDateTests: XCTestCase {
    struct Body: Decodable { var startsAt: Date }

    func decode(_ text: String) -> Date? {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom(PlatformAPI.strictDate)
        return try? d.decode(Body.self, from: Data(#"{"startsAt": "\#(text)"}"#.utf8)).startsAt
    }

    func testOnlyAWholeRFC3339TimeIsATime() {
        XCTAssertEqual(decode("2026-12-24T18:00:00Z"), Date(timeIntervalSince1970: 1_798_135_200))
        XCTAssertEqual(decode("2026-12-24T19:00:00+01:00"), Date(timeIntervalSince1970: 1_798_135_200))
        XCTAssertEqual(decode("2026-12-24T18:00:00.5Z")?.timeIntervalSince1970 ?? 0, 1_798_135_200.5, accuracy: 0.001)
        for bad in ["2026-12-24T18:00:00+01:00junk", "2026-12-24T18:00:00Zjunk", " 2026-12-24T18:00:00Z", "2026-12-24T18:00:00",
                    "2026-12-24", "2026-13-40T18:00:00Z", "3\u{301}", "", String(repeating: "9", count: 500)] {
            XCTAssertNil(decode(bad), bad)
            XCTAssertNil(StreamDetailsParser.parseTime(bad), bad)
        }
        XCTAssertEqual(StreamDetailsParser.parseTime("2026-12-24T19:00:00+01:00"), Date(timeIntervalSince1970: 1_798_135_200))
    }
}
