// EmbedPage: `/embed/{id}`, the player alone, for other sites' iframes: full-bleed video, the
// status line, a live badge and unmute button, and the title linking to the watch page (in a
// new tab). The same player and wiring as the watch page (`player.js`, `watch.js`). Its route
// lets any site frame it (`Response.allowFraming()`); every other page refuses frames.
import Foundation

package enum EmbedPage {
    /// The iframe other sites paste: the embed page at `width`x`height`.
    package static func code(id: String, title: String, publicURL: String, width: Int = OEmbed.width, height: Int = OEmbed.height) -> String {
        let e = WatchPage.escape
        return #"<iframe src="\#(e(publicURL))/embed/\#(e(id))" width="\#(width)" height="\#(height)" title="\#(e(title)) · StreamTube" "#
            + #"style="border:0" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen></iframe>"#
    }

    static let style = """
    html, body { height: 100%; margin: 0; background: #000; color: #eee; font-family: system-ui, sans-serif; overflow: hidden; }
    main { position: fixed; inset: 0; }
    video { width: 100%; height: 100%; display: block; object-fit: contain; background: #000; }
    .top { position: absolute; top: 0; left: 0; right: 0; display: flex; gap: .6em; align-items: center; padding: .5em .7em;
           background: linear-gradient(#000d, #0000); font-size: clamp(.8em, 2.5vw, 1em); }
    .top a { color: #fff; text-decoration: none; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; flex: 1; }
    .top a:hover, .top a:focus-visible { text-decoration: underline; }
    a:focus-visible, button:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    .live { color: #f66; font-weight: bold; }
    button { font: inherit; padding: .3em .7em; background: #222; color: #eee; border: 1px solid #888; border-radius: .3em; }
    button[hidden] { display: none; }
    #status { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; text-align: center;
              padding: 2.5em 1em 1em; background: #000c; font-size: clamp(.9em, 3vw, 1.2em); }
    #status[hidden] { display: none; }
    """

    /// - Parameter nonce: the answer's CSP nonce, on the page's one inline script.
    package static func render(id: String, title: String, watchURL: String, nodes: [String] = [], nonce: String = "",
                               startsAt: Date? = nil) -> String {
        let e = WatchPage.escape
        let starts = startsAt.map { String(Int($0.timeIntervalSince1970)) } ?? ""
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="robots" content="noindex">
        <link rel="canonical" href="\(e(watchURL))">
        <title>\(e(title)) · StreamTube</title>
        <style>
        \(style)
        </style>
        </head>
        <body>
        <main>
          <video id="video" data-stream="\(e(id))" data-nodes="\(e(nodes.joined(separator: " ")))" data-starts="\(starts)" muted autoplay playsinline controls aria-label="Live video: \(e(title))"></video>
          <div id="status" role="status">Connecting…</div>
          <div class="top">
            <a href="\(e(watchURL))" target="_blank" rel="noopener">\(e(title)) · StreamTube</a>
            <span id="state" aria-live="polite"></span>
            <button id="unmute" type="button" hidden>Unmute</button>
          </div>
        </main>
        <script type="module" nonce="\(e(nonce))">
          import { Player } from '\(WatchPage.playerPath)';
          import { attach } from '\(WatchPage.pagePath)';
          attach(Player);
        </script>
        </body>
        </html>
        """
    }

    /// What a frame shows instead of the player: a stream that is not there, or one that
    /// cannot be embedded (private: watched on the platform, where its viewer signs in).
    package static func message(_ heading: String, _ text: String, link: (href: String, text: String)? = nil) -> String {
        let e = WatchPage.escape
        let a = link.map { #"<p><a href="\#(e($0.href))" target="_blank" rel="noopener">\#(e($0.text))</a></p>"# } ?? ""
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="robots" content="noindex">
        <title>\(e(heading)) · StreamTube</title>
        <style>
        html, body { height: 100%; margin: 0; background: #111; color: #eee; font-family: system-ui, sans-serif; }
        main { box-sizing: border-box; height: 100%; display: flex; flex-direction: column; justify-content: center; align-items: center;
               text-align: center; padding: 1em; }
        h1 { font-size: 1.3em; margin: 0 0 .4em; } p { margin: .3em 0; } a { color: #9cf; }
        </style>
        </head>
        <body><main><h1>\(e(heading))</h1><p>\(e(text))</p>\(a)</main></body>
        </html>
        """
    }
}
