// The shapes routes answer with, written once.
import Foundation
import Hummingbird
import NIOCore
import Synchronization

package enum Responses {
    package static let playlistType = "application/vnd.apple.mpegurl"
    package static let immutable = "public, max-age=31536000, immutable"

    /// An immutable media object (init segment, segment, part).
    package static func media(_ bytes: ByteBuffer) -> Response {
        Response(status: .ok,
                 headers: [.contentType: "video/mp4", .cacheControl: immutable, .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: bytes))
    }

    package static func text(_ body: String, type: String, cache: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: cache, .accessControlAllowOrigin: "*"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    package static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A typed answer as JSON, keys sorted.
    package static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, cache: String = "no-cache") throws -> Response {
        let data = try JSONEncoder.sorted.encode(value)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: cache],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The `Date` header's value, formatted at most once a second.
package final class HTTPDate: Sendable {
    private let cache = Mutex<(second: Int, text: String)>((-1, ""))

    package init() {}

    package var current: String {
        let now = Int(Date().timeIntervalSince1970)
        return cache.withLock { c in
            if c.second != now { c = (now, Self.format(now)) }
            return c.text
        }
    }

    /// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    package static func format(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }
}
