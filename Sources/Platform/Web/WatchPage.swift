// WatchPage: the viewer's page. StreamTube's own LL-HLS player (`Assets/player.js`, on Media
// Source Extensions) plays the stream in every browser that has MSE, and hands it to the
// browser's own HLS player where MSE is missing; while the stream is offline the page says
// so and keeps checking. A quality menu, a stats overlay, keyboard and phone friendly.
import Crypto

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

    package static let notFound = """
    <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>No such stream · StreamTube</title></head>
    <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;padding:3em">
    <main><h1>No such stream</h1><p>Check the link you were given.</p></main></body></html>
    """

    package static let privateStream = """
    <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Private stream · StreamTube</title></head>
    <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;padding:3em">
    <main><h1>This stream is private</h1><p>This stream is private: ask its broadcaster for an invitation.</p>
    <p><a style="color:#9cf" href="/signin">Sign in</a> if you were invited.</p></main></body></html>
    """

    /// - Parameter nodes: other nodes' base URLs (`http://host:port`), which the player asks
    ///   for a new edge when this one fails.
    /// - Parameter nonce: the answer's Content-Security-Policy nonce, on the page's one inline script.
    /// - Parameter token: a private stream's playback token, and in how many seconds it expires:
    ///   the player adds it to every request and renews it at `/watch/{id}/token`.
    package static func render(id: String, title: String, nodes: [String] = [], nonce: String = "",
                               token: String? = nil, tokenExpiresIn: Int? = nil) -> String {
        let t = escape(title)
        let tokenAttributes = token.map { " data-token=\"\(escape($0))\" data-token-expires-in=\"\(tokenExpiresIn ?? 0)\"" } ?? ""
        let sid = escape(id)
        let others = escape(nodes.joined(separator: " "))
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(t) · StreamTube</title>
        <style>
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
        </style>
        </head>
        <body>
        <main>
          <h1>\(t)</h1>
          <div class="player">
            <video id="video" data-stream="\(sid)" data-nodes="\(others)"\(tokenAttributes) muted autoplay playsinline controls aria-label="Live video"></video>
            <pre id="stats" hidden aria-live="off"></pre>
            <div id="status" role="status">Connecting…</div>
          </div>
          <div class="bar">
            <span id="state" aria-live="polite"></span>
            <button id="unmute" type="button" hidden>Unmute</button>
            <label>Quality <select id="quality"><option value="auto">Auto</option></select></label>
            <button id="toggle-stats" type="button" aria-pressed="false" aria-controls="stats">Stats</button>
          </div>
        </main>
        <script type="module" nonce="\(escape(nonce))">
          import { Player } from '\(playerPath)';
          const video = document.getElementById('video');
          const status = document.getElementById('status');
          const state = document.getElementById('state');
          const unmute = document.getElementById('unmute');
          const quality = document.getElementById('quality');
          const stats = document.getElementById('stats');
          const toggle = document.getElementById('toggle-stats');
          const nodes = video.dataset.nodes.split(' ').filter(Boolean);
          const token = video.dataset.token ? { token: video.dataset.token, expiresIn: Number(video.dataset.tokenExpiresIn),
            renewURL: `/watch/${encodeURIComponent(video.dataset.stream)}/token` } : null;
          const player = new Player(video, { stream: video.dataset.stream, nodes, token });
          window.streamtubePlayer = player;
          const messages = {
            loading: 'Loading…',
            offline: 'This stream is offline. It will start here as soon as the broadcaster goes live.',
            ended: 'The broadcast has ended. It will go on here if the broadcaster comes back.',
            paused: 'Press play to watch.',
          };
          player.onState((s, detail) => {
            const live = s === 'playing';
            status.hidden = live;
            status.textContent = detail || messages[s] || '';
            state.textContent = live ? '● LIVE' : (s === 'ended' ? 'Ended' : (s === 'offline' ? 'Offline' : ''));
            state.className = live ? 'live' : '';
            unmute.hidden = !(live && video.muted);
          });
          player.onVariants = (variants) => {
            const chosen = quality.value;
            quality.length = 1;
            for (const v of variants) {
              const label = v.name === 'source' ? `Source${v.height ? ' (' + v.height + 'p)' : ''}` : v.name;
              quality.add(new Option(label, v.name));
            }
            quality.value = [...quality.options].some((o) => o.value === chosen) ? chosen : 'auto';
          };
          quality.addEventListener('change', () => player.choose(quality.value));
          unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; });
          const show = () => {
            const s = player.stats();
            const kbps = (b) => b ? `${Math.round(b / 1000)} kbit/s` : '–';
            stats.textContent = [
              `behind live  ${s.latency === null ? '–' : s.latency.toFixed(2) + ' s'} (target ${s.target ? s.target.toFixed(2) : '–'} s)`,
              `rendition    ${s.rendition || '–'}${s.auto ? ' (auto)' : ''}`,
              `bandwidth    ${kbps(s.bandwidth)}`,
              `buffer       ${s.buffer.toFixed(2)} s`,
              `dropped      ${s.dropped} of ${s.decoded} frames`,
              `rate         ${s.rate.toFixed(2)}×`,
            ].join('\\n');
          };
          let timer = null;
          toggle.addEventListener('click', () => {
            const on = stats.hidden;
            stats.hidden = !on;
            toggle.setAttribute('aria-pressed', String(on));
            clearInterval(timer);
            if (on) { show(); timer = setInterval(show, 500); }
          });
          player.start();
        </script>
        </body>
        </html>
        """
    }
}
