// Calendar: scheduled streams as iCalendar (RFC 5545) feeds people subscribe to from their
// calendar apps. Times are written in UTC (`DTSTART:20261224T170000Z`), which every calendar
// shows in its own reader's zone; the broadcaster's zone is named in the description.
import Catalog
import Foundation

package enum ICalendar {
    /// A feed of `streams` (those with a start time); `base` is the platform's address for links.
    package static func feed(name: String, streams: [StreamRecord], base: String, host: String, now: Date = Date()) -> String {
        var lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//StreamTube//Schedule//EN", "CALSCALE:GREGORIAN",
                     "METHOD:PUBLISH", "X-WR-CALNAME:" + text(name)]
        for s in streams {
            guard let start = s.startsAt else { continue }
            let url = "\(base)/watch/\(s.id)"
            var about = s.description
            if let zone = s.timeZone { about += (about.isEmpty ? "" : "\n\n") + "Scheduled in \(zone)." }
            about += (about.isEmpty ? "" : "\n") + "Watch: \(url)"
            lines += ["BEGIN:VEVENT", "UID:\(s.id)@\(host)", "DTSTAMP:" + utc(now), "DTSTART:" + utc(start), "DURATION:PT1H",
                      "SUMMARY:" + text(s.title), "DESCRIPTION:" + text(about), "URL:" + url, "END:VEVENT"]
        }
        lines.append("END:VCALENDAR")
        return lines.map(fold).joined(separator: "\r\n") + "\r\n"
    }

    /// `20261224T170000Z`.
    static func utc(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: date)
    }

    /// TEXT values escape backslash, semicolon, comma and newlines (RFC 5545 3.3.11).
    static func text(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case ";": out += "\\;"
            case ",": out += "\\,"
            case "\n": out += "\\n"
            case "\r": continue
            default: out.append(c)
            }
        }
        return out
    }

    /// Lines longer than 75 octets are folded: CRLF and a space, never inside a UTF-8 character.
    static func fold(_ line: String) -> String {
        var out = ""
        var count = 0
        for ch in line {
            let n = String(ch).utf8.count
            if count + n > 75 {
                out += "\r\n "
                count = 1
            }
            out.append(ch)
            count += n
        }
        return out
    }
}
