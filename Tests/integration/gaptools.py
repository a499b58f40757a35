"""Measuring the playback gap a player sees, e.g. across an origin failover.

The server rewrites the output timeline (timestamps run on across publishing sessions), so
media timestamps cannot tell how much of the broadcast a player missed. Instead the
broadcaster writes its own frame number into every picture, and the player side reads it
back from the decoded frames.

The stamp: a strip of 2 x 16 blocks of 16 x 16 pixels at the top left of the picture
(256 x 32 pixels), each block black (0) or white (1); block b is row b // 16, column b % 16.
Blocks 0..23 hold the source frame number in binary (bit 0 first), blocks 24..31 a check
value, the frame number modulo 251, in binary. Blocks of 16 x 16 on the 16-pixel grid are
whole macroblocks, so x264 keeps them black and white even at low bit rates; a block is read
from the mean of its 8 x 8 centre. A read whose check value does not match (any single wrong
block, and most multiple ones: 251 is prime, so flipping one data bit changes the number by a
power of two that is never a multiple of 251) gives None instead of a wrong number.

    pub = stamped_publisher(node.rtmp_url(key), seconds=10)      # frames 0..299
    reader = FrameReader(master_url).start()
    ...
    reader.stop()
    playback_gaps(reader.frames)   # [(gap_seconds, before_n, after_n), ...]

In a browser, stamp_reader_js(source_width) is a script that reads the stamp of every frame the page's
<video id="video"> presents, with the wall clock at which it is shown (ops/bench/glass.py).

Why geq on a separate strip: the per-pixel expression only runs on 256 x 32 pixels, then overlay copies it into
testsrc2; the whole publisher takes about 0.15 of a core at 320x240@30 (9.6x real time flat out), so it keeps 1x
on a busy machine. Reading is 70 us a frame in pure Python.

HLSProxy sits between a player and nodes to inject the faults of a failover (stalls, error answers, a switch of
node). Note: a node ends a stream's playlist (#EXT-X-ENDLIST) as soon as its publisher leaves, and ffmpeg stops
reading at that; HLSProxy(strip_endlist=True) lets a test play a publisher that leaves and comes back as the stall a
failover should look like.
"""
import http.client
import http.server
import os
import re
import subprocess
import threading
import time
import urllib.parse

from servers import BackgroundServer, stop_process

BLOCK = 16
COLUMNS = 16
ROWS = 2
DATA_BITS = 24
CHECK_BITS = 8
CHECK_MODULUS = 251
STRIP_WIDTH = BLOCK * COLUMNS    # 256
STRIP_HEIGHT = BLOCK * ROWS      # 32
FRAME_BYTES = STRIP_WIDTH * STRIP_HEIGHT
MAX_FRAME = (1 << DATA_BITS) - 1  # 155 hours at 30 fps


# MARK: Writing the stamp


def stamp_expression(start_frame=0):
    """The `geq` luma expression drawing the stamp of frame N + start_frame on a 256 x 32 gray picture."""
    b = f"(floor(X/{BLOCK})+{COLUMNS}*floor(Y/{BLOCK}))"
    n = f"(N+{int(start_frame)})"
    value = f"if(lt({b},{DATA_BITS}),{n}/pow(2,{b}),mod({n},{CHECK_MODULUS})/pow(2,{b}-{DATA_BITS}))"
    return f"255*mod(floor({value}),2)"


def stamped_source(seconds, start_frame=0, fps=30, size="320x240", audio=True):
    """A lavfi graph: testsrc2 with the stamp laid over its top left (out0), and a 48 kHz sine (out1).
    Both sources last exactly `seconds`, so the video is frames start_frame .. start_frame + seconds * fps - 1."""
    w, h = (int(x) for x in size.split("x"))
    assert w >= STRIP_WIDTH and h >= STRIP_HEIGHT, f"the stamp needs at least {STRIP_WIDTH}x{STRIP_HEIGHT}"
    assert 0 <= start_frame and start_frame + seconds * fps <= MAX_FRAME
    # Only the small strip goes through geq (a per-pixel expression); overlay copies it in.
    graph = (f"testsrc2=size={size}:rate={fps}:duration={seconds}[main];"
             f"color=c=black:size={STRIP_WIDTH}x{STRIP_HEIGHT}:rate={fps},format=gray,"
             f"geq=lum='{stamp_expression(start_frame)}'[stamp];"
             f"[main][stamp]overlay=0:0:shortest=1:format=yuv420,format=yuv420p[out0]")
    if audio:
        graph += f";sine=frequency=440:sample_rate=48000:duration={seconds}[out1]"
    return graph


def stamped_publisher(rtmp_url, seconds, start_frame=0, fps=30, size="320x240", gop_seconds=1, audio=True,
                      progress=False, loglevel="error", extra=()):
    """Starts ffmpeg publishing `seconds` of stamped test video (and AAC sine audio) to `rtmp_url` in real time.
    Frame k of the broadcast (from 0) shows the number start_frame + k, so the last frame is
    start_frame + seconds * fps - 1. Returns the Popen (stdout and stderr piped). With progress=True ffmpeg writes
    its progress to stdout (read it at the end with `communicate()`, then `publisher_speeds(stdout)`)."""
    gop = max(1, round(gop_seconds * fps))
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", loglevel, "-nostdin", "-re",
           "-f", "lavfi", "-i", stamped_source(seconds, start_frame, fps, size, audio),
           "-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "64k", "-ar", "48000"]
    if progress:
        cmd += ["-progress", "pipe:1", "-stats_period", "1"]
    cmd += list(extra) + ["-f", "flv", rtmp_url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def publisher_speeds(progress_output):
    """The speeds (1.0 = real time) in a publisher's -progress output, one a second."""
    text = progress_output.decode(errors="replace") if isinstance(progress_output, bytes) else progress_output
    return [float(m) for m in re.findall(r"^speed=\s*([\d.]+)x", text, re.M)]


# MARK: Reading the stamp


def read_stamp(strip):
    """The source frame number in a 256 x 32 gray strip (bytes), or None when the check value does not match."""
    bits = []
    lo, hi = BLOCK // 4, BLOCK - BLOCK // 4
    for row in range(ROWS):
        for col in range(COLUMNS):
            total = 0
            for y in range(row * BLOCK + lo, row * BLOCK + hi):
                start = y * STRIP_WIDTH + col * BLOCK
                total += sum(strip[start + lo:start + hi])
            bits.append(1 if total > 128 * (hi - lo) * (hi - lo) else 0)
    n = sum(bit << i for i, bit in enumerate(bits[:DATA_BITS]))
    check = sum(bit << i for i, bit in enumerate(bits[DATA_BITS:]))
    return n if check == n % CHECK_MODULUS else None


# read_stamp in a page's JavaScript (stamp_reader_js): reading in the page costs a 256 x 32 canvas a frame.
_READER_JS = """
(() => {
  if (window.__glass) return;
  const g = window.__glass = { samples: [], first: null, errors: [], api: null };
  const W = %(W)d, H = %(H)d, B = %(B)d, COLS = %(COLS)d, ROWS = %(ROWS)d, DATA = %(DATA)d, MOD = %(MOD)d;
  const SOURCE_WIDTH = %(SOURCE_WIDTH)d;
  const lo = B / 4, hi = B - B / 4, threshold = 128 * (hi - lo) * (hi - lo);
  let canvas = null, ctx = null;
  function read(video) {
    if (!ctx) {
      canvas = document.createElement('canvas');
      canvas.width = W; canvas.height = H;
      ctx = canvas.getContext('2d', { willReadFrequently: true });
    }
    const s = video.videoWidth / SOURCE_WIDTH;  // a rendition scaled down from the source
    ctx.drawImage(video, 0, 0, W * s, H * s, 0, 0, W, H);
    const px = ctx.getImageData(0, 0, W, H).data;
    let n = 0, check = 0;
    for (let b = 0; b < ROWS * COLS; b++) {
      const row = Math.floor(b / COLS), col = b %% COLS;
      let total = 0;
      for (let y = row * B + lo; y < row * B + hi; y++) {
        for (let x = col * B + lo; x < col * B + hi; x++) {
          const i = (y * W + x) * 4;
          total += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
        }
      }
      const bit = total > threshold ? 1 : 0;
      if (b < DATA) n += bit * Math.pow(2, b); else check += bit * Math.pow(2, b - DATA);
    }
    return check === n %% MOD ? n : null;
  }
  function note(video, shown) {
    if (g.first === null) g.first = shown;
    let n = null;
    try { n = read(video); } catch (e) { if (g.errors.length < 10) g.errors.push(String(e)); }
    g.samples.push([shown, n]);
  }
  function attach(video) {
    if (video.__glass) return;
    video.__glass = true;
    if (video.requestVideoFrameCallback) {
      g.api = 'requestVideoFrameCallback';
      const onFrame = (now, meta) => {
        // The wall clock when the frame is expected on screen.
        const ahead = meta && meta.expectedDisplayTime ? meta.expectedDisplayTime - performance.now() : 0;
        note(video, Date.now() + Math.max(0, ahead));
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      g.api = 'requestAnimationFrame';
      let last = -1;
      const onAnimationFrame = () => {
        if (video.readyState >= 2 && video.currentTime !== last) {
          last = video.currentTime;
          note(video, Date.now());
        }
        requestAnimationFrame(onAnimationFrame);
      };
      requestAnimationFrame(onAnimationFrame);
    }
  }
  const find = () => { const v = document.getElementById('video'); if (v) attach(v); };
  find();
  setInterval(find, 50);
})();
"""


def stamp_reader_js(source_width):
    """JavaScript for a page (run it before the page's own scripts, or in it) that finds <video id="video"> and reads
    the stamp of every frame it presents (requestVideoFrameCallback, else each animation frame where the picture
    changed), as read_stamp does: the 8 x 8 centre of each block, luma above 128, the check value. A rendition scaled
    from the source (`source_width` pixels wide) is read in the source's proportions. Results in window.__glass:
    `samples` [[shown, n], ...] with shown the wall clock (epoch ms) when the frame is expected on screen and n its
    number or null; `first` the first frame's shown time; `errors`; `api` (the callback used)."""
    return _READER_JS % {"W": STRIP_WIDTH, "H": STRIP_HEIGHT, "B": BLOCK, "COLS": COLUMNS, "ROWS": ROWS,
                         "DATA": DATA_BITS, "MOD": CHECK_MODULUS, "SOURCE_WIDTH": source_width}


# The player's HLS demuxer options (ffmpeg 5.1). Its defaults already sit through a playlist that does not grow
# (reloaded every half target duration, up to m3u8_hold_counters times) and through a discontinuity; these pin that
# down against other versions' defaults. No option makes 5.1 survive a failed playlist or init-segment request
# (-reconnect* options do not reach its playlist reloads): see probe_hls_reader.py.
HLS_PATIENCE = [
    "-http_persistent", "0",        # a fresh connection per request: no kept-alive socket to a node that went away
    "-max_reload", "1000",          # reloads of a playlist that did not grow, before giving up
    "-m3u8_hold_counters", "1000",  # reloads without a new segment, before giving up
]


class FrameReader:
    """A player: ffmpeg reading an HLS URL (master or media playlist) and decoding its first video stream, in a
    background thread. Only the stamp strip is kept (cropped, gray), and for each decoded frame `frames` gets
    (wall-clock arrival time, source frame number or None when the stamp does not read).

    Arrival times: ffmpeg gives out each frame as soon as it is decoded, except the last one before its input
    stalls, which comes out with the next one (or at the end); segments arrive whole (ffmpeg 5.1 does not
    read LL-HLS parts), so frames arrive in bursts of a segment. The frame numbers are what tells the gap.

    `hls_options` defaults to HLS_PATIENCE; ffmpeg 5.1 still gives up on the first playlist reload or init segment
    that fails (4 quick tries, then the end of the stream), whatever the options: see probe_hls_reader.py.

    `audio=True` also decodes the first audio stream (to 8 kHz mono s16 on a second pipe) and counts it in
    `audio_seconds`; `audio_chunks` holds (arrival time, seconds) per decoded chunk."""

    def __init__(self, url, hls_options=HLS_PATIENCE, audio=False, extra_input=(), loglevel="warning"):
        self.url = url
        self.hls_options = list(hls_options)
        self.audio = audio
        self.extra_input = list(extra_input)
        self.loglevel = loglevel
        self.frames = []
        self.audio_chunks = []
        self.audio_seconds = 0.0
        self.proc = None
        self.started_at = None
        self._stderr = []
        self._threads = []

    def command(self, audio_fd=None):
        # One decoding thread: frame threads would hold back a frame per thread, making arrival times late.
        # passthrough: every decoded frame once, none duplicated or dropped to make a constant rate.
        # flush_packets: each frame is written to the pipe at once, not in 32 KiB blocks.
        cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", self.loglevel,
               *self.hls_options, "-threads", "1", *self.extra_input, "-i", self.url,
               "-map", "0:v:0", "-vf", f"crop={STRIP_WIDTH}:{STRIP_HEIGHT}:0:0,format=gray",
               "-fps_mode", "passthrough", "-flush_packets", "1",
               "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
        if audio_fd is not None:
            cmd += ["-map", "0:a:0", "-ac", "1", "-ar", "8000", "-flush_packets", "1",
                    "-f", "s16le", f"pipe:{audio_fd}"]
        return cmd

    def start(self):
        audio_r = audio_w = None
        if self.audio:
            audio_r, audio_w = os.pipe()
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.command(audio_w), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, pass_fds=(audio_w,) if self.audio else ())
        if self.audio:
            os.close(audio_w)
            self._threads.append(threading.Thread(target=self._read_audio, args=(os.fdopen(audio_r, "rb", 0),),
                                                  daemon=True))
        self._threads.append(threading.Thread(target=self._read_video, daemon=True))
        self._threads.append(threading.Thread(target=self._read_stderr, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _read_video(self):
        out = self.proc.stdout
        while True:
            buf = b""
            while len(buf) < FRAME_BYTES:
                chunk = out.read(FRAME_BYTES - len(buf))
                if not chunk:
                    return
                buf += chunk
            self.frames.append((time.time(), read_stamp(buf)))

    def _read_audio(self, f):
        with f:
            while True:
                chunk = f.read(1600)  # 0.1 s
                if not chunk:
                    return
                s = len(chunk) / 16000
                self.audio_seconds += s
                self.audio_chunks.append((time.time(), s))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def numbers(self):
        return [n for _, n in self.frames]

    def wait(self, timeout):
        """Waits for ffmpeg to end by itself (the playlist ended); True if it did."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        for t in self._threads:
            t.join(5)
        return True

    def stop(self):
        stop_process(self.proc)
        for t in self._threads:
            t.join(5)
        return self

    def stderr_text(self):
        return "".join(self._stderr)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# MARK: Gaps


def clean_numbers(frames):
    """The frame numbers, with each unreadable stamp (None) and each number inconsistent with both neighbours
    (n-1 and n+1 read a and a+2, but n is not a+1) as None. A checked stamp makes the second case rare:
    it needs several wrong blocks whose errors add up to a multiple of 251."""
    ns = [n for _, n in frames]
    out = list(ns)
    for i in range(1, len(ns) - 1):
        a, n, b = ns[i - 1], ns[i], ns[i + 1]
        if a is not None and b is not None and n is not None and b == a + 2 and n != a + 1:
            out[i] = None
    return out


def _jumps(frames):
    """(index, before_n, after_n, unknown frames in between) for consecutive known numbers."""
    ns = clean_numbers(frames)
    prev, prev_i, unknown = None, None, 0
    for i, n in enumerate(ns):
        if n is None:
            unknown += 1
            continue
        if prev is not None:
            yield i, prev, n, unknown
        prev, prev_i, unknown = n, i, 0


def playback_gaps(frames, fps=30):
    """Forward jumps in the source frame numbers between consecutive decoded frames:
    [(gap_seconds, before_n, after_n)] with gap_seconds = (after_n - before_n - 1) / fps, the broadcast time the
    player never showed. Frames whose number did not read count as shown (between 100 and 103 with two unknown
    frames in between, nothing is missing). Backward jumps are repeats (see `repeats`), not gaps."""
    out = []
    for _, before, after, unknown in _jumps(frames):
        missing = after - before - 1 - unknown
        if after > before and missing > 0:
            out.append((missing / fps, before, after))
    return out


def max_gap(frames, fps=30):
    """The longest playback gap in seconds (0 without one)."""
    return max((g for g, _, _ in playback_gaps(frames, fps)), default=0.0)


def repeats(frames, fps=30):
    """Backward (or standing) jumps, e.g. a GOP played again after a failover:
    [(repeat_seconds, before_n, after_n)] with repeat_seconds = (before_n - after_n + 1) / fps."""
    return [((before - after + 1) / fps, before, after) for _, before, after, _ in _jumps(frames) if after <= before]


def unreadable(frames):
    """How many decoded frames had no trustworthy number."""
    return sum(1 for n in clean_numbers(frames) if n is None)


# MARK: A meddling proxy


class HLSProxy(BackgroundServer):
    """A small HTTP proxy in front of a node, to play the network and server faults of a failover to a player:

    - `target` (a base URL, e.g. node.base) can be switched at any time: the player follows a failover the way it
      would through DNS or a load balancer;
    - `strip_endlist`: drops #EXT-X-ENDLIST from playlists, so a publisher that stops and comes back looks like a
      stall rather than an end;
    - `fail_playlists(seconds, status)`: playlist requests get `status` (e.g. 503) for a while;
    - `freeze_playlists(seconds)`: media playlists are answered with their last copy for a while (no growth);
    - `fail_segments(seconds, status, init=False)`: segment and part requests (and init segments with init=True)
      get `status` for a while;
    - `fail_all(seconds, status)`: every request gets `status` for a while;
    - `hold_playlists(seconds)`: playlist requests arriving in the next `seconds` are answered when that time is up
      (as a server holding requests until a new origin has the stream).

    `log` holds (time, path, status) for each request."""

    def __init__(self, target, strip_endlist=False):
        self.target = target
        self.strip_endlist = strip_endlist
        self.log = []
        self._fail_playlists_until = 0.0
        self._fail_playlists_status = 503
        self._fail_all_until = 0.0
        self._fail_all_status = 503
        self._freeze_until = 0.0
        self._fail_segments_until = 0.0
        self._fail_segments_status = 503
        self._hold_until = 0.0
        self._fail_init = False
        self._last_playlists = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                status, headers, body = proxy._answer(self.path)
                proxy.log.append((time.time(), self.path, status))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._serve()

    def fail_playlists(self, seconds, status=503):
        self._fail_playlists_status = status
        self._fail_playlists_until = time.time() + seconds

    def fail_all(self, seconds, status=503):
        self._fail_all_status = status
        self._fail_all_until = time.time() + seconds

    def fail_segments(self, seconds, status=503, init=False):
        self._fail_segments_status = status
        self._fail_init = init
        self._fail_segments_until = time.time() + seconds

    def hold_playlists(self, seconds):
        self._hold_until = time.time() + seconds

    def freeze_playlists(self, seconds):
        self._freeze_until = time.time() + seconds

    def _answer(self, path):
        now = time.time()
        is_playlist = urllib.parse.urlsplit(path).path.endswith(".m3u8")
        if now < self._fail_all_until:
            return self._fail_all_status, [("Content-Type", "text/plain")], b"proxy: failing\n"
        if is_playlist and now < self._fail_playlists_until:
            return self._fail_playlists_status, [("Content-Type", "text/plain")], b"proxy: failing playlists\n"
        is_init = os.path.basename(urllib.parse.urlsplit(path).path).startswith("init")
        if not is_playlist and now < self._fail_segments_until and (self._fail_init or not is_init):
            return self._fail_segments_status, [("Content-Type", "text/plain")], b"proxy: failing media\n"
        if is_playlist and now < self._hold_until:
            time.sleep(self._hold_until - now)
        key = urllib.parse.urlsplit(path).path
        if is_playlist and now < self._freeze_until and key in self._last_playlists:
            return 200, [("Content-Type", "application/vnd.apple.mpegurl"), ("Cache-Control", "no-cache")], \
                self._last_playlists[key]
        status, headers, body = self._fetch(path)
        if is_playlist and status == 200:
            if self.strip_endlist:
                body = b"".join(line for line in body.splitlines(keepends=True)
                                if line.strip() != b"#EXT-X-ENDLIST")
            self._last_playlists[key] = body
        return status, headers, body

    def _fetch(self, path):
        u = urllib.parse.urlsplit(self.target)
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            headers = [(k, v) for k, v in r.getheaders()
                       if k.lower() in ("content-type", "cache-control")]
            conn.close()
            return r.status, headers, body
        except OSError as e:
            return 502, [("Content-Type", "text/plain")], f"proxy: {e}\n".encode()
