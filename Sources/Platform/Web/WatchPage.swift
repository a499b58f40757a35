// WatchPage: the viewer's page. A <video> element plays the LL-HLS stream natively
// (Chromium, Safari); while the stream is offline the page says so and keeps checking.

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

    package static let notFound = """
    <!doctype html><html lang="en"><head><meta charset="utf-8"><title>No such stream · StreamTube</title></head>
    <body style="font-family:system-ui,sans-serif;background:#111;color:#eee;padding:3em">
    <h1>No such stream</h1><p>Check the link you were given.</p></body></html>
    """

    package static func render(id: String, title: String) -> String {
        let t = escape(title)
        let sid = escape(id)
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(t) · StreamTube</title>
        <style>
          body { margin: 0; font-family: system-ui, sans-serif; background: #111; color: #eee; }
          main { max-width: 1100px; margin: 0 auto; padding: 1.5em; }
          .player { position: relative; background: #000; aspect-ratio: 16 / 9; }
          video { width: 100%; height: 100%; display: block; }
          #status { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
                    text-align: center; padding: 1em; background: #000c; font-size: 1.2em; }
          #status[hidden] { display: none; }
          .live { color: #f55; font-weight: bold; }
          button { margin-top: .8em; font-size: 1em; }
        </style>
        </head>
        <body>
        <main>
          <h1>\(t)</h1>
          <div class="player">
            <video id="video" data-stream="\(sid)" muted autoplay playsinline controls></video>
            <div id="status" role="status">Connecting…</div>
          </div>
          <p><span id="state"></span> <button id="unmute" hidden>Unmute</button></p>
        </main>
        <script>
        (function () {
          const video = document.getElementById('video');
          const status = document.getElementById('status');
          const state = document.getElementById('state');
          const unmute = document.getElementById('unmute');
          const src = '/live/' + encodeURIComponent(video.dataset.stream) + '/master.m3u8';
          let playing = false;
          function offline(message) {
            playing = false;
            status.textContent = message;
            status.hidden = false;
            state.textContent = 'Offline';
            state.className = '';
            video.removeAttribute('src');
            video.load();
            setTimeout(check, 2000);
          }
          async function check() {
            if (playing) return;
            let r;
            try { r = await fetch(src, { cache: 'no-store' }); } catch (e) { return offline('Cannot reach the server. Retrying…'); }
            if (r.status !== 200) return offline('This stream is offline. It will start here as soon as the broadcaster goes live.');
            if (!video.canPlayType('application/vnd.apple.mpegurl')) {
              status.textContent = 'This browser cannot play HLS natively. Open ' + location.origin + src + ' in VLC or ffplay.';
              status.hidden = false;
              return;
            }
            playing = true;
            status.textContent = 'Loading…';
            video.src = src;
            video.play().catch(() => { status.textContent = 'Press play to watch.'; });
          }
          video.addEventListener('playing', () => {
            status.hidden = true;
            state.textContent = '● LIVE';
            state.className = 'live';
            unmute.hidden = !video.muted;
          });
          video.addEventListener('ended', () => offline('The broadcast has ended.'));
          video.addEventListener('error', () => offline('The stream stopped. Waiting for it to come back…'));
          unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; });
          check();
        })();
        </script>
        </body>
        </html>
        """
    }
}
