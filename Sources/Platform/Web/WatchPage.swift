// WatchPage: the viewer's page. StreamTube's own LL-HLS player (`Assets/player.js`, on Media
// Source Extensions) plays the stream in every browser that has MSE, and hands it to the
// browser's own HLS player where MSE is missing; while the stream is offline the page says
// so and keeps checking. A quality menu, a stats overlay, keyboard and phone friendly.
import Crypto
import Foundation

package enum WatchPage {
    package static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// The player script, built into the binary from the repository's file.
    package static let playerScript: [UInt8] = PackageResources.player_js
    /// A digest of the script in its URL: cached for good, replaced when it changes.
    package static let playerVersion: String = SHA256.hash(data: playerScript).prefix(6).map { String(format: "%02x", $0) }.joined()
    package static var playerPath: String { "/assets/player.js?v=\(playerVersion)" }
    /// The player pages' shared wiring (`Assets/watch.js`: status, quality, stats), by the same rule.
    package static let pageScript: [UInt8] = PackageResources.watch_js
    package static let pageVersion: String = SHA256.hash(data: pageScript).prefix(6).map { String(format: "%02x", $0) }.joined()
    package static var pagePath: String { "/assets/watch.js?v=\(pageVersion)" }

    /// The player pages' style (the watch page's and a recording's).
    static let style = """
    body { margin: 0; font-family: system-ui, sans-serif; background: #111; color: #eee; }
    main { max-width: 1100px; margin: 0 auto; padding: 1em; }
    h1 { font-size: 1.4em; margin: .2em 0 .6em; overflow-wrap: anywhere; }
    .player { position: relative; background: #000; aspect-ratio: 16 / 9; }
    video { width: 100%; height: 100%; display: block; }
    #status { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
              text-align: center; padding: 1em; background: #000c; font-size: 1.2em; }
    #status[hidden] { display: none; }
    #stats { position: absolute; top: .5em; left: .5em; margin: 0; padding: .5em .7em; background: #000b;
             font: .8em/1.4 ui-monospace, monospace; color: #cfc; pointer-events: none; white-space: pre; }
    #stats[hidden] { display: none; }
    .bar { display: flex; flex-wrap: wrap; gap: .6em; align-items: center; margin-top: .7em; }
    .live { color: #f66; font-weight: bold; }
    button, select { font: inherit; padding: .35em .7em; background: #222; color: #eee; border: 1px solid #666; border-radius: .3em; }
    button:focus-visible, select:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    label { display: inline-flex; gap: .4em; align-items: center; }
    .share ul { display: flex; flex-wrap: wrap; gap: .6em 1em; align-items: center; list-style: none; margin: 1.2em 0 0; padding: 0; }
    .share a { color: #9cf; }
    .share a:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    .share details { margin-top: .8em; }
    .share summary { cursor: pointer; }
    .share pre { margin: .5em 0 0; padding: .6em; background: #222; border-radius: .3em; white-space: pre-wrap; overflow-wrap: anywhere; }
    .about { white-space: pre-line; overflow-wrap: anywhere; margin: 1em 0 0; max-width: 60em; }
    header a:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    .seekbar { display: flex; flex-wrap: wrap; gap: .6em; align-items: center; flex: 1 1 100%; }
    .seekbar[hidden] { display: none; }
    .seekbar input { flex: 1 1 12em; min-width: 8em; accent-color: #6af; }
    .seekbar input:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    #position { font-variant-numeric: tabular-nums; min-width: 9em; }
    """

    /// A player page's start, to its <title> (`title` escaped already).
    static func documentHead(title: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · StreamTube</title>
        """
    }

    /// The seek bar (`watch.js`'s `SeekBar`): a labelled slider with its read-out and, on a live
    /// page, "Back to live". Hidden on a live page until the stream plays with a recording.
    static func seekBar(live: Bool) -> String {
        let golive = live ? #"<button id="golive" type="button" hidden>Back to live</button>"# : ""
        return #"<div id="dvr" class="seekbar"\#(live ? " hidden" : "")><label for="seek">Position</label> <input type="range" id="seek" min="0" max="0" step="1" value="0"> <span id="position" aria-hidden="true"></span>\#(golive)</div>"#
    }

    /// The player pages' scripts: site.js, and the one inline module (with the answer's CSP nonce)
    /// that starts the player.
    static func scripts(nonce: String) -> String {
        """
        <script src="\(Pages.scriptPath)" defer></script>
        <script type="module" nonce="\(escape(nonce))">
          import { Player } from '\(playerPath)';
          import { attach } from '\(pagePath)';
          attach(Player);
        </script>
        """
    }

    /// A stream's watch page, absolute: the URL people share.
    package static func url(id: String, publicURL: String) -> String { "\(publicURL)/watch/\(id)" }

    /// The way back to the platform, on every page a viewer lands on from a shared link.
    static let brand = #"<header style="padding:.8em 1em;border-bottom:1px solid #333"><a href="/" style="color:#eee;font-weight:bold;font-size:1.2em;text-decoration:none">StreamTube</a></header>"#

    package static let notFound = """
    <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>No such stream · StreamTube</title></head>
    <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;margin:0">\(brand)
    <main style="padding:1em 1em 3em"><h1>No such stream</h1><p>Check the link you were given.</p></main></body></html>
    """

    /// The page of a private stream for someone who may not watch it: its share card (the title
    /// only) in the head, so a shared link still says what it is.
    package static func privateStream(card: ShareCard? = nil) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Private stream · StreamTube</title>\(card?.html ?? "")</head>
        <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;margin:0">\(brand)
        <main style="padding:1em 1em 3em"><h1>This stream is private</h1><p>Only people its broadcaster invited can watch it.</p>
        <p><a style="color:#9cf" href="/signin">Sign in</a> if you were invited, or open the invitation link you were sent.</p></main></body></html>
        """
    }

    /// - Parameter nodes: other nodes' base URLs (`http://host:port`), which the player asks
    ///   for a new edge when this one fails.
    /// - Parameter nonce: the answer's Content-Security-Policy nonce, on the page's one inline script.
    /// - Parameters:
    ///   - startsAt: its scheduled start: while offline, the page counts down to it.
    ///   - calendar: the path of its iCalendar feed, linked for calendar apps.
    ///   - card: its share card: the Open Graph tags in the head, and the share bar.
    ///   - embedCode: the iframe the share bar offers to copy; nil: none (the stream cannot be embedded).
    ///   - token: a private stream's playback token, and in how many seconds it expires: the player
    ///     adds it to every request and renews it at `/watch/{id}/token`.
    ///   - description: what its broadcaster wrote about it, shown under the player.
    ///   - recording: the recording being made of it (its id, and how many seconds it has run),
    ///     which the seek bar goes back over (the DVR); nil: the script asks once the stream plays.
    ///   - chat: the chat panel's markup (the Chat feature's), under the player.
    package static func render(id: String, title: String, description: String = "", nodes: [String] = [], nonce: String = "", startsAt: Date? = nil,
                               calendar: String? = nil, card: ShareCard? = nil, embedCode: String? = nil,
                               token: String? = nil, tokenExpiresIn: Int? = nil, recording: LiveRecording? = nil, chat: String = "") -> String {
        let shareBar = card?.shareBar(embedCode: embedCode) ?? ""
        let starts = startsAt.map { String(Int($0.timeIntervalSince1970)) } ?? ""
        let calendarLink = calendar.map { "<link rel=\"alternate\" type=\"text/calendar\" title=\"Add to a calendar\" href=\"\(escape($0))\">" } ?? ""
        let t = escape(title)
        let tokenAttributes = token.map { " data-token=\"\(escape($0))\" data-token-expires-in=\"\(tokenExpiresIn ?? 0)\"" } ?? ""
        let sid = escape(id)
        let others = escape(nodes.joined(separator: " "))
        let dvr = recording.map { " data-dvr=\"\(escape($0.id))\" data-dvr-seconds=\"\(Int($0.seconds))\"" } ?? ""
        return """
        \(documentHead(title: t))
        \(calendarLink)
        \(card?.html ?? "")
        <style>
        \(style)
        </style>
        </head>
        <body>
        \(brand)
        <main>
          <h1>\(t)</h1>
          <div class="player">
            <video id="video" data-stream="\(sid)" data-nodes="\(others)" data-starts="\(starts)"\(tokenAttributes)\(dvr) muted autoplay playsinline controls aria-label="Live video"></video>
            <pre id="stats" hidden aria-live="off"></pre>
            <div id="status" role="status">Connecting…</div>
          </div>
          <div class="bar">
            \(seekBar(live: true))
            <span id="state" aria-live="polite"></span>
            <span id="viewers" class="viewers" hidden></span>
            <button id="unmute" type="button" hidden>Unmute</button>
            <label>Quality <select id="quality"><option value="auto">Auto</option></select></label>
            <button id="toggle-stats" type="button" aria-pressed="false" aria-controls="stats">Stats</button>
          </div>
        \(description.isEmpty ? "" : "<p class=\"about\">\(escape(description))</p>")
        \(chat)
        \(shareBar)
        </main>
        \(scripts(nonce: nonce))
        </body>
        </html>
        """
    }
}
