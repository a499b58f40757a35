// RecordingPage: a recording's own page, `/recordings/{id}` — the player on its VOD playlist (EVENT
// while it is still being made) with seeking, its title, date and length, a download link, links
// to its channel and stream, and a share card. And `LiveRecording`: the recording a live stream is
// making, which its watch page's seek bar goes back over (the DVR).
//
// The page is made from one value, `RecordingPageModel`, built in one place (`init(recording:stream:...)`):
// today a recording is titled and described by its stream and shown under its stream's
// visibility; a recording's own title, description or visibility, when it has them, change that
// one initializer and nothing else.
import Catalog
import Foundation

/// The recording a live stream is making now, as its watch page offers it.
package struct LiveRecording: Sendable, Equatable, Codable {
    package var id: String
    /// How long it has been recording (seconds): the live edge on its timeline, give or take a part.
    package var seconds: Double
    package var playlistURL: String
    package var startedAt: Date

    package init(id: String, seconds: Double, startedAt: Date) {
        self.id = id
        self.seconds = seconds
        self.startedAt = startedAt
        self.playlistURL = RecordingPageModel.playlistPath(id)
    }

    /// The newest of a stream's recordings (oldest first, as `RecordingStore` lists them) that a
    /// node still reports as being made; nil when none is.
    package static func current(of recordings: [RecordingSummary], now: Date = Date()) -> LiveRecording? {
        guard let r = recordings.last(where: { summary in
            summary.recording.state == "recording"
                && now.timeIntervalSince(summary.recording.updatedAt ?? now) < RecordingSummary.fresh
        })?.recording else { return nil }
        return LiveRecording(id: r.id, seconds: max(0, now.timeIntervalSince(r.startedAt)), startedAt: r.startedAt)
    }
}

/// What a recording's page shows.
package struct RecordingPageModel: Sendable, Equatable {
    package struct Link: Sendable, Equatable {
        package var name: String
        package var url: String
    }

    package var id: String
    package var streamID: String
    package var title: String
    package var description: String
    package var startedAt: Date
    package var durationSeconds: Double
    /// `recording` (still being made: no download yet), `ready` or `incomplete`.
    package var state: String
    /// Who may watch it: a private one's page needs a playback token.
    package var visibility: StreamRecord.Visibility
    /// Its picture's path, or nil.
    package var picture: String?
    /// Its broadcaster's channel page (absolute), if it has one.
    package var channel: Link?

    /// A recording, shown as its stream (title, description, visibility, picture).
    package init(recording: RecordingSummary, stream: StreamRecord, channel: Link? = nil) {
        id = recording.recording.id
        streamID = stream.id
        title = stream.title
        description = stream.description
        startedAt = recording.recording.startedAt
        durationSeconds = recording.recording.durationSeconds
        state = recording.recording.state
        visibility = stream.visibility
        picture = StreamPicture.path(stream, live: true)
        self.channel = channel
    }

    /// What people set on the recording: its title (else the stream's with the day it
    /// started), description, visibility, length as trimmed, and its own picture.
    package mutating func apply(_ d: RecordingDetails, streamTitle: String) {
        title = d.title ?? RecordingDetails.defaultTitle(streamTitle: streamTitle, startedAt: startedAt)
        if !d.description.isEmpty { description = d.description }
        if let v = d.visibility { visibility = v }
        if d.trimStart != nil || d.trimEnd != nil {
            durationSeconds = max(0, (d.trimEnd ?? durationSeconds) - (d.trimStart ?? 0))
        }
        picture = visibility.isPrivate ? nil : "/recordings/\(id)/thumbnail.jpg"
    }

    static func playlistPath(_ id: String) -> String { "/recordings/\(id)/master.m3u8" }
    static func path(_ id: String) -> String { "/recordings/\(id)" }
    var downloadPath: String { "/recordings/\(id)/download.mp4" }

    /// When it was broadcast, for people: `30 Nov 2026, 14:05 UTC`.
    var date: String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_GB")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "d MMM yyyy, HH:mm 'UTC'"
        return f.string(from: startedAt)
    }

    /// Its length as `m:ss` or `h:mm:ss`.
    var length: String {
        let s = max(0, Int(durationSeconds.rounded()))
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s % 3600 / 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// The share card: public and unlisted ones show their title with the date, description and
    /// picture (unlisted ones kept out of search engines); a private one its title only, as a
    /// private stream's card does.
    func card(publicURL: String) -> ShareCard {
        let url = publicURL + Self.path(id)
        let titled = "\(title) (\(date))"
        if visibility.isPrivate {
            return ShareCard(title: titled, description: "A private recording on StreamTube: invited viewers watch it here.",
                             url: url, type: "video.other", indexable: false)
        }
        return ShareCard(title: titled, description: description.isEmpty ? "A recorded broadcast on StreamTube." : description,
                         url: url, image: picture.map { publicURL + $0 }, type: "video.other", indexable: visibility == .public)
    }
}

package enum RecordingPage {
    package static let notFound = """
    <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>No such recording · StreamTube</title></head>
    <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;margin:0">\(WatchPage.brand)
    <main style="padding:1em 1em 3em"><h1>No such recording</h1><p>It may have been deleted. Check the link you were given.</p></main></body></html>
    """

    /// - Parameters:
    ///   - nonce: the answer's Content-Security-Policy nonce, on the page's one inline script.
    ///   - token: a private recording's playback token (its stream's), and in how many seconds it
    ///     expires: the player adds it to every request and renews it; the download link carries it.
    /// `chat`: the chat replay's markup (the Chat feature's), under the player.
    package static func render(_ m: RecordingPageModel, publicURL: String, nonce: String = "",
                               token: String? = nil, tokenExpiresIn: Int? = nil, chat: String = "") -> String {
        let e = WatchPage.escape
        let card = m.card(publicURL: publicURL)
        let t = e(m.title)
        let tokenAttributes = token.map { " data-token=\"\(e($0))\" data-token-expires-in=\"\(tokenExpiresIn ?? 0)\"" } ?? ""
        let tokenQuery = token.map { "?token=" + ShareCard.encode($0) } ?? ""
        let iso = ISO8601DateFormatter().string(from: m.startedAt)
        var links: [String] = []
        if m.state == "recording" {
            links.append("<li>Still being recorded: it can be downloaded once the broadcast ends.</li>")
        } else {
            links.append(#"<li><a href="\#(e(m.downloadPath + tokenQuery))" download>Download (MP4)</a></li>"#)
        }
        if let channel = m.channel { links.append(#"<li><a href="\#(e(channel.url))">\#(e(channel.name))</a> (channel)</li>"#) }
        links.append(#"<li><a href="/watch/\#(e(m.streamID))">The stream's page</a></li>"#)
        let incomplete = m.state == "incomplete" ? " Parts of it could not be kept; the rest plays." : ""
        return """
        \(WatchPage.documentHead(title: "\(t) (\(e(m.date)))"))
        \(card.html)
        <style>
        \(WatchPage.style)
        .meta { margin: -.3em 0 .8em; color: #ccc; }
        .links { display: flex; flex-wrap: wrap; gap: .6em 1.2em; list-style: none; margin: 1em 0 0; padding: 0; }
        .links a { color: #9cf; }
        .links a:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
        </style>
        </head>
        <body>
        \(WatchPage.brand)
        <main>
          <h1>\(t)</h1>
          <p class="meta">Broadcast <time datetime="\(iso)">\(e(m.date))</time> · <span id="length">\(m.state == "recording" ? "so far " : "")\(m.length)</span>\(incomplete)</p>
          <div class="player">
            <video id="video" data-stream="\(e(m.streamID))" data-recording="\(e(m.id))"\(tokenAttributes) muted autoplay playsinline controls aria-label="Recording"></video>
            <pre id="stats" hidden aria-live="off"></pre>
            <div id="status" role="status" hidden></div>
          </div>
          <div class="bar">
            \(WatchPage.seekBar(live: false))
            <button id="unmute" type="button" hidden>Unmute</button>
            <label>Quality <select id="quality"><option value="auto">Auto</option></select></label>
            <button id="toggle-stats" type="button" aria-pressed="false" aria-controls="stats">Stats</button>
          </div>
          <ul class="links">
            \(links.joined(separator: "\n    "))
          </ul>
        \(m.description.isEmpty ? "" : "<p class=\"about\">\(e(m.description))</p>")
        \(chat)
        \(card.shareBar())
        </main>
        \(WatchPage.scripts(nonce: nonce))
        </body>
        </html>
        """
    }
}
