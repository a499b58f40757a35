// StreamTube's player: LL-HLS (RFC 8216bis) on Media Source Extensions, in plain JavaScript.
//
// It reads the master playlist, then one rendition's media playlist with blocking reloads
// (_HLS_msn, _HLS_part): each reload returns when the next part exists, and the part itself
// (the preload hint) is asked for at the same time, so a part is appended about when it is
// made. Parts go to one SourceBuffer (audio and video are muxed in each rendition's CMAF).
// It holds a distance behind live taken from PART-HOLD-BACK, catches up by playing a little
// faster and jumps when far behind; switches rendition on measured throughput and buffer at
// independent parts; follows discontinuities and restarts (a new stream epoch) by moving
// the new media onto the old timeline; and when its edge fails it asks /api/route/{id} of
// any node it knows for the next healthy edge and goes on from the same media sequence.
// Where MSE is missing it hands the master playlist to the browser's own HLS player.
//
// It plays recordings too (`mode: 'recording'`): a VOD playlist, or an EVENT one still growing
// (reloaded every target duration). Each segment is placed on the playlist's timeline (its
// start, the durations before it), so `currentTime` is the position in the recording and the
// <video> element's own controls seek; it fetches whole segments from the playhead on, a few
// ahead, and the segment a seek lands in first. A live page's DVR switches to the recording
// being made (`back(seconds)`) and back to the live edge (`live()`), each on a fresh MediaSource.

const PARSE_ATTRS = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;

/** Attributes of a tag line, `KEY=value` pairs with quoted strings unquoted. */
function attributes(line) {
  const out = {};
  const text = line.slice(line.indexOf(':') + 1);
  for (const m of text.matchAll(PARSE_ATTRS)) out[m[1]] = m[2].startsWith('"') ? m[2].slice(1, -1) : m[2];
  return out;
}

/**
 * A URI of a playlist, made absolute, without the playback token a private stream's playlists
 * carry: objects are named (and shared) without it, and the player adds its current token when
 * it fetches (`Player.authorized`).
 */
export function resolve(uri, base) {
  const u = new URL(uri, base);
  if (u.searchParams.has('token')) u.searchParams.delete('token');
  if (u.searchParams.has('vsid')) u.searchParams.delete('vsid');
  return u.href;
}

/** A new viewer session id: 20 random base64url characters (not a secret: it only tells one
 *  player's requests and beacons from another's). */
export function newSession() {
  const bytes = new Uint8Array(15);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

/** The renditions a master playlist lists, in its order. */
export function parseMaster(text, base) {
  const lines = text.split('\n').map((l) => l.trim());
  const variants = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('#EXT-X-STREAM-INF:')) continue;
    const a = attributes(lines[i]);
    const uri = lines[i + 1];
    if (!uri || uri.startsWith('#')) continue;
    const [width, height] = (a.RESOLUTION || 'x').split('x').map(Number);
    variants.push({
      name: uri.split('/')[0],
      url: resolve(uri, base),
      bandwidth: Number(a.BANDWIDTH) || 0,
      codecs: a.CODECS || 'avc1.64001f,mp4a.40.2',
      width: width || 0,
      height: height || 0,
    });
  }
  return variants;
}

/** A media playlist: its segments (with parts where listed), the preload hint, the limits.
 *  Each whole segment has its `start` on the playlist's timeline and its `run` (the number of
 *  discontinuities before it); `total` is the length of the whole segments. */
export function parseMedia(text, base) {
  const pl = { segments: [], partTarget: 0.5, targetDuration: 2, partHoldBack: 0, mediaSequence: 0, ended: false, hint: null,
    type: null, total: 0 };
  let msn = 0;
  let current = { parts: [] };
  let map = null;
  let discontinuity = false;
  let run = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) {
      msn = pl.mediaSequence = Number(line.slice(22));
    } else if (line.startsWith('#EXT-X-TARGETDURATION:')) {
      pl.targetDuration = Number(line.slice(22));
    } else if (line.startsWith('#EXT-X-PART-INF:')) {
      pl.partTarget = Number(attributes(line)['PART-TARGET']) || pl.partTarget;
    } else if (line.startsWith('#EXT-X-SERVER-CONTROL:')) {
      pl.partHoldBack = Number(attributes(line)['PART-HOLD-BACK']) || 0;
    } else if (line.startsWith('#EXT-X-SKIP:')) {
      msn += Number(attributes(line)['SKIPPED-SEGMENTS']) || 0;
    } else if (line.startsWith('#EXT-X-MAP:')) {
      map = resolve(attributes(line).URI, base);
    } else if (line === '#EXT-X-DISCONTINUITY') {
      discontinuity = true;
    } else if (line.startsWith('#EXT-X-PART:')) {
      const a = attributes(line);
      current.parts.push({
        index: current.parts.length, url: resolve(a.URI, base), duration: Number(a.DURATION) || 0,
        independent: a.INDEPENDENT === 'YES',
      });
    } else if (line.startsWith('#EXTINF:')) {
      current.duration = parseFloat(line.slice(8)) || 0;
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) {
      const a = attributes(line);
      if (a.TYPE === 'PART') pl.hint = { url: resolve(a.URI, base) };
    } else if (line.startsWith('#EXT-X-PLAYLIST-TYPE:')) {
      pl.type = line.slice(21);
    } else if (line === '#EXT-X-ENDLIST') {
      pl.ended = true;
    } else if (!line.startsWith('#')) {
      if (discontinuity && pl.segments.length) run += 1;
      const seg = { msn, url: resolve(line, base), complete: true, map, discontinuity, run, start: pl.total, ...pick(current) };
      pl.segments.push(seg);
      pl.total += seg.duration;
      msn += 1;
      current = { parts: [] };
      discontinuity = false;
    }
  }
  if (current.parts.length) pl.segments.push({ msn, url: null, complete: false, map, discontinuity, parts: current.parts, duration: 0 });
  const last = pl.segments[pl.segments.length - 1];
  if (pl.hint && last) pl.hint.at = last.complete ? { msn: last.msn + 1, part: 0 } : { msn: last.msn, part: last.parts.length };
  if (!pl.partHoldBack) pl.partHoldBack = 3 * pl.partTarget;
  return pl;
}

/** The stream epoch in a playlist's object names (`part5.0-1f2a3b4c.m4s`). */
function epochOf(pl) {
  const last = pl.segments[pl.segments.length - 1];
  const m = last && (last.parts[0] || last).url.match(/-([0-9a-f]{8})\.m4s$/);
  return m ? m[1] : null;
}

function pick(s) { return { parts: s.parts, duration: s.duration || s.parts.reduce((t, p) => t + p.duration, 0) }; }

// MARK: Reading fMP4 boxes (just enough: track timescales, a fragment's first decode time)

function boxes(view, start, end) {
  const out = [];
  for (let at = start; at + 8 <= end;) {
    let size = view.getUint32(at);
    const type = String.fromCharCode(view.getUint8(at + 4), view.getUint8(at + 5), view.getUint8(at + 6), view.getUint8(at + 7));
    let header = 8;
    if (size === 1) { size = Number(view.getBigUint64(at + 8)); header = 16; }
    if (size < header || at + size > end) break;
    out.push({ type, start: at + header, end: at + size });
    at += size;
  }
  return out;
}

function child(view, box, type) { return boxes(view, box.start, box.end).find((b) => b.type === type); }

/** Track id → timescale, from an init segment's moov/trak/mdia/mdhd. */
export function timescales(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map();
  const moov = boxes(view, 0, view.byteLength).find((b) => b.type === 'moov');
  if (!moov) return out;
  for (const trak of boxes(view, moov.start, moov.end).filter((b) => b.type === 'trak')) {
    const tkhd = child(view, trak, 'tkhd');
    const mdhd = child(view, child(view, trak, 'mdia') || trak, 'mdhd');
    if (!tkhd || !mdhd) continue;
    const v1 = view.getUint8(tkhd.start) === 1;
    const id = view.getUint32(tkhd.start + (v1 ? 20 : 12));
    const m1 = view.getUint8(mdhd.start) === 1;
    out.set(id, view.getUint32(mdhd.start + (m1 ? 20 : 12)));
  }
  return out;
}

/** The earliest decode time (seconds) of a media fragment's tracks, or null. */
export function fragmentStart(bytes, scales) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let earliest = null;
  for (const moof of boxes(view, 0, view.byteLength).filter((b) => b.type === 'moof')) {
    for (const traf of boxes(view, moof.start, moof.end).filter((b) => b.type === 'traf')) {
      const tfhd = child(view, traf, 'tfhd');
      const tfdt = child(view, traf, 'tfdt');
      if (!tfhd || !tfdt) continue;
      const scale = scales.get(view.getUint32(tfhd.start + 4));
      if (!scale) continue;
      const t = view.getUint8(tfdt.start) === 1 ? Number(view.getBigUint64(tfdt.start + 4)) : view.getUint32(tfdt.start + 4);
      const seconds = t / scale;
      if (earliest === null || seconds < earliest) earliest = seconds;
    }
    break;
  }
  return earliest;
}

// MARK: Throughput

/** Two moving averages of measured throughput (bits/s): the estimate is the lower. */
class Bandwidth {
  constructor() { this.fast = 0; this.slow = 0; this.samples = 0; }
  add(bits, seconds) {
    if (bits < 16000 || seconds <= 0) return;  // too small to say anything
    const rate = bits / Math.max(seconds, 0.001);
    this.fast = this.samples ? 0.5 * rate + 0.5 * this.fast : rate;
    this.slow = this.samples ? 0.15 * rate + 0.85 * this.slow : rate;
    this.samples += 1;
  }
  get estimate() { return this.samples ? Math.min(this.fast, this.slow) : 0; }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** How far ahead of the playhead a recording is fetched (seconds). */
const AHEAD = 20;

class HTTPError extends Error {
  constructor(status, url) { super(`HTTP ${status} for ${url}`); this.status = status; }
}

// MARK: The player

export class Player {
  /**
   * @param {HTMLVideoElement} video
   * @param {{stream: string, base?: string, nodes?: string[], log?: (msg: string, data?: object) => void}} options
   *   stream: the stream id; base: the node to start from (this page's); nodes: other nodes
   *   to ask for a route when the current one fails; token: a private stream's playback token
   *   ({token, expiresIn: seconds, renewURL}), added to every request and renewed before it expires;
   *   recording: a recording's id: its page plays it from `at` seconds (0 unless given); on a live
   *   page (with `live: true`), the recording being made, which `back(seconds)` switches to.
   */
  constructor(video, options) {
    this.video = video;
    this.stream = options.stream;
    this.recording = options.recording || null;
    this.mode = options.recording && !options.live ? 'recording' : 'live';
    this.pendingSeek = this.mode === 'recording' ? Number(options.at) || 0 : null;
    this.generation = 0;       // a switch between live and a recording starts a new one: the old loop stops
    this.texts = new Set();    // playlist requests under way (aborted by a switch)
    this.anchors = [];         // live: where each segment's first part was placed ({msn, time}), for the DVR
    this.runOffsets = new Map();
    this.base = options.base || location.origin;
    this.nodes = new Set(options.nodes || []);
    this.log = options.log || (() => {});
    this.token = options.token ? options.token.token : null;
    this.renewURL = options.token ? options.token.renewURL : null;
    if (this.renewURL) this.renewIn(options.token.expiresIn);
    this.variants = [];
    this.variant = 0;
    this.auto = true;
    this.bandwidth = new Bandwidth();
    this.fetches = new Map();
    this.state = 'starting';
    this.next = null;          // {msn, part}: the next part to append
    this.appendedMap = null;   // the init segment the SourceBuffer holds now
    this.scales = new Map();
    this.timelineCheck = true; // after a start, a discontinuity or a restart: place the next fragment after what is buffered
    this.epochs = null;
    this.failures = 0;
    this.listeners = new Set();
    this.stopped = false;
    this.started = performance.now();
    this.firstFrameMs = null;
    this.stalls = 0;
    // The viewer session: on every media request (`vsid=`), and in the beacons (play, pause,
    // stalls, rendition changes, startup time) sent to the node serving the media.
    this.session = options.session || newSession();
    this.stalledSince = null;
    this.playedFrom = null;
    this.sentRendition = null;
  }

  // MARK: Beacons (viewer figures)

  /** Sends what happened to the node this player is served by, with the time played and
   *  stalled since the last beacon. Live streams only; never in the way of playback. */
  beacon(event, extra = {}) {
    if (this.mode !== 'live' || !this.session) return;
    const now = performance.now();
    const body = { session: this.session, event, ...extra };
    if (this.playedFrom !== null) { body.playedMs = Math.round(now - this.playedFrom); this.playedFrom = this.video.paused ? null : now; }
    const url = `${this.base}/streams/${encodeURIComponent(this.stream)}/beacon`;
    const text = JSON.stringify(body);
    try {
      if (!(navigator.sendBeacon && navigator.sendBeacon(url, text))) {
        fetch(url, { method: 'POST', body: text, keepalive: true, mode: 'no-cors' }).catch(() => {});
      }
    } catch (e) { /* a beacon is never worth an error */ }
    this.log('beacon', body);
  }

  // MARK: Playback token (private streams)

  /** `url` with the current playback token, if the stream needs one. */
  authorized(url) {
    if (!this.token && !this.session) return url;
    const u = new URL(url, location.href);
    if (this.token) u.searchParams.set('token', this.token);
    if (this.session && (u.pathname.startsWith('/live/') || u.pathname.startsWith('/recordings/'))) u.searchParams.set('vsid', this.session);
    return u.href;
  }

  /** Fetches a fresh token before this one runs out (`expiresIn` seconds): a minute ahead, or halfway for short ones. */
  renewIn(expiresIn) {
    const seconds = Number(expiresIn) || 0;
    const delay = seconds > 120 ? seconds - 60 : Math.max(1, seconds / 2);
    clearTimeout(this.renewal);
    this.renewal = setTimeout(() => this.renew(), delay * 1000);
  }

  async renew() {
    if (this.stopped) return;
    try {
      const r = await fetch(this.renewURL, { cache: 'no-store', credentials: 'same-origin' });
      if (!r.ok) throw new HTTPError(r.status, this.renewURL);
      const answer = await r.json();
      this.token = answer.token;
      this.log('token', { expiresIn: answer.expiresIn });
      this.renewIn(answer.expiresIn);
    } catch (e) {
      this.log('token renewal failed', { error: String(e) });
      clearTimeout(this.renewal);
      this.renewal = setTimeout(() => this.renew(), 10000);
    }
  }

  /** Called with the player's state on every change ('loading', 'playing', 'offline', 'ended', 'error'). */
  onState(fn) { this.listeners.add(fn); }

  setState(state, detail) {
    if (this.state === state) return;
    this.state = state;
    this.log('state', { state, detail });
    for (const fn of this.listeners) fn(state, detail);
  }

  get masterURL() {
    if (this.mode === 'recording') return this.recordingURL;
    let ref = '';
    try { ref = document.referrer ? new URL(document.referrer).host : ''; } catch (e) { ref = ''; }
    return `${this.base}/live/${encodeURIComponent(this.stream)}/master.m3u8?routed=1${ref ? `&ref=${encodeURIComponent(ref)}` : ''}`;
  }

  get recordingURL() { return `${this.base}/recordings/${encodeURIComponent(this.recording)}/master.m3u8`; }

  renditionName() { const v = this.variants[this.variant]; return v ? v.name : undefined; }

  /** What the stats overlay and tests read. */
  stats() {
    const v = this.video;
    const b = v.buffered;
    const end = b.length ? b.end(b.length - 1) : 0;
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    const variant = this.variants[this.variant];
    return {
      state: this.state,
      mode: this.mode,
      position: v.currentTime,
      duration: this.duration(),
      latency: end && this.mode === 'live' ? Math.max(0, end - v.currentTime) : null,
      target: this.target,
      rendition: variant ? variant.name : null,
      height: variant ? variant.height : null,
      auto: this.auto,
      bandwidth: Math.round(this.bandwidth.estimate),
      buffer: end ? Math.max(0, end - v.currentTime) : 0,
      dropped: q ? q.droppedVideoFrames : 0,
      decoded: q ? q.totalVideoFrames : 0,
      rate: v.playbackRate,
      base: this.base,
      firstFrameMs: this.firstFrameMs,
      stalls: this.stalls,
      session: this.session,
      mse: !!this.mediaSource,
    };
  }

  /** Picks a rendition by name, or 'auto'. A recording shows the one picked a second from now:
   *  what is buffered beyond is fetched again. */
  choose(name) {
    if (name === 'auto') { this.auto = true; return; }
    const i = this.variants.findIndex((v) => v.name === name);
    if (i >= 0) { this.auto = false; this.wanted = i; this.flushAhead = this.mode === 'recording'; }
  }

  async start() {
    const MS = window.ManagedMediaSource || window.MediaSource;
    this.video.addEventListener('playing', () => {
      const first = this.firstFrameMs === null;
      if (first) this.firstFrameMs = Math.round(performance.now() - this.started);
      if (this.mode === 'recording' && this.mediaSource) this.setState('playing');
      if (first) {
        this.beacon('startup', { startupMs: this.firstFrameMs, rendition: this.renditionName() });
      } else if (this.stalledSince !== null) {
        this.beacon('stall', { stalledMs: Math.round(performance.now() - this.stalledSince) });
      } else {
        this.beacon('play');
      }
      this.stalledSince = null;
      this.playedFrom = performance.now();
    });
    this.video.addEventListener('waiting', () => {
      if (this.state === 'playing') this.stalls += 1;
      if (this.firstFrameMs !== null && this.stalledSince === null) {
        if (this.playedFrom !== null) this.beacon('play');
        this.playedFrom = null;
        this.stalledSince = performance.now();
      }
    });
    this.video.addEventListener('pause', () => { if (this.playedFrom !== null) this.beacon('pause'); this.playedFrom = null; });
    addEventListener('pagehide', () => { if (this.playedFrom !== null) this.beacon('leave'); });
    this.video.addEventListener('play', () => { if (this.state === 'paused') this.setState('playing'); this.tick(); });
    // A recording: a seek wakes the loop to fetch where it landed; its end is the end.
    this.video.addEventListener('seeking', () => { if (this.wake) this.wake(); });
    this.video.addEventListener('ended', () => { if (this.mode === 'recording') this.setState('ended'); });
    if (!MS || !MS.isTypeSupported('video/mp4; codecs="avc1.42c01e,mp4a.40.2"')) return this.native();
    this.video.disableRemotePlayback = true;  // ManagedMediaSource wants it
    await this.attachMedia();
    this.timer = setInterval(() => this.tick(), 250);
    this.run(this.generation);
  }

  /** A new MediaSource on the video (at the start, and for each switch between live and a recording). */
  async attachMedia() {
    const MS = window.ManagedMediaSource || window.MediaSource;
    this.mediaSource = new MS();
    const opened = new Promise((resolve) => this.mediaSource.addEventListener('sourceopen', resolve, { once: true }));
    const old = this.objectURL;
    this.objectURL = URL.createObjectURL(this.mediaSource);
    this.video.src = this.objectURL;
    if (old) URL.revokeObjectURL(old);
    await opened;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.renewal);
    this.abortRequests();
  }

  abortRequests() {
    for (const f of this.fetches.values()) f.abort.abort();
    this.fetches.clear();
    for (const a of this.texts) a.abort();
    if (this.wake) this.wake();
  }

  // MARK: Live and recordings (the DVR)

  /** The recording's length so far (its playlist's), in recording mode; else 0. */
  duration() { return this.mode === 'recording' && this.vod ? this.vod.total : 0; }

  /** Recording mode: to `position` seconds into the recording. */
  seek(position) {
    if (this.mode !== 'recording') return;
    const end = this.duration() || Infinity;
    const at = Math.max(0, Math.min(Number(position) || 0, end - 0.5));
    if (this.video.readyState < 1) this.pendingSeek = at;
    else this.video.currentTime = at;
  }

  /** From the live edge to the recording being made, `seconds` before what plays now; in
   *  recording mode, `seconds` back from the playhead. */
  async back(seconds) {
    if (this.mode === 'recording') return this.seek(this.video.currentTime - seconds);
    if (!this.recording) return;
    let at = null;
    try { at = await this.livePosition(); } catch (e) { this.log('live position', { error: String(e) }); }
    if (at === null) return;
    this.log('dvr', { recording: this.recording, at, back: seconds });
    await this.switchTo('recording', Math.max(0, at - seconds));
  }

  /** Back to the live edge, from a recording. */
  async live() {
    if (this.mode === 'live') return;
    this.log('live', {});
    await this.switchTo('live', null);
  }

  /** Where the live playhead is in the recording being made (seconds from its start): the
   *  segment playing now found by its live media sequence number in the recording's playlist,
   *  or, not there yet, counted on from the playlist's end. A recording names each segment by
   *  its live number (`seg{n}.m4s`), which holds across the gap a lost segment leaves. */
  async livePosition() {
    const variants = parseMaster(await this.fetchText(this.recordingURL, 5000), this.recordingURL);
    if (!variants.length) return null;
    const name = this.variants[this.variant] && this.variants[this.variant].name;
    const v = variants.find((x) => x.name === name) || variants[0];
    const pl = parseMedia(await this.fetchText(v.url, 5000), v.url);
    const last = pl.segments[pl.segments.length - 1];
    if (!last) return null;
    const t = this.video.currentTime;
    const anchor = [...this.anchors].reverse().find((a) => a.time <= t + 0.01);
    if (!anchor) return pl.total;
    const number = (s) => { const m = s.url.match(/\/seg(\d+)\.m4s$/); return m ? Number(m[1]) : s.msn; };
    const seg = pl.segments.find((s) => number(s) === anchor.msn);
    if (seg) return seg.start + (t - anchor.time);
    if (anchor.msn > number(last)) return pl.total + (anchor.msn - number(last) - 1) * pl.targetDuration + (t - anchor.time);
    return null;  // older than the recording: not in it
  }

  /** Stops the loop of the mode playing now and starts `mode`'s on a fresh MediaSource, a
   *  recording at `at` seconds. The rendition, the throughput measured and the token carry over. */
  async switchTo(mode, at) {
    this.generation += 1;
    this.abortRequests();
    this.preferred = this.variants[this.variant] ? this.variants[this.variant].name : this.preferred;
    Object.assign(this, {
      mode, variants: [], playlist: null, vod: null, next: null, appendedMap: null, sourceBuffer: null, codecs: null,
      epoch: null, timelineCheck: true, seekOnAppend: false, smoothBehind: null, anchors: [], runOffsets: new Map(),
      pendingSeek: mode === 'recording' ? at || 0 : null,
    });
    this.video.playbackRate = 1;
    this.setState('loading');
    if (!this.mediaSource) return this.nativeLoad();
    await this.attachMedia();
    this.run(this.generation);
  }

  /** No MSE (an older iPhone): the browser's own HLS player, if it has one. */
  native() {
    if (!this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.setState('error', 'This browser can play neither Media Source Extensions nor HLS.');
      return;
    }
    this.video.addEventListener('playing', () => this.setState('playing'));
    // Offline, or a playlist the browser's player would not take yet: try again in a while.
    this.video.addEventListener('error', () => { this.setState('offline'); setTimeout(() => this.nativeLoad(), 2000); });
    // A recording starts where it was asked to (its own page's `at`, the DVR's position).
    this.video.addEventListener('loadedmetadata', () => {
      if (this.pendingSeek) this.video.currentTime = this.pendingSeek;
      this.pendingSeek = null;
    });
    this.nativeLoad();
  }

  nativeLoad() {
    if (this.stopped) return;
    // No query: a native player may know HLS by the URL's ending (Chromium's does).
    // A private stream's token rides on the URL; its playlists carry it on to every URI, and
    // a reload after an error takes the renewed one.
    const src = this.mode === 'recording' ? this.recordingURL : `${this.base}/live/${encodeURIComponent(this.stream)}/master.m3u8`;
    this.video.src = this.token ? `${src}?token=${encodeURIComponent(this.token)}` : src;
    // The master playlist gives the browser's player a session of its own, carried in every URI:
    // this one is not the player's, so it sends no beacons.
    this.session = null;
    this.video.play().catch(() => {});
  }

  // MARK: Fetching

  /** Bytes of `url`, shared by whoever asks for it while it is on its way (and kept a while
   *  after unless `keep` is false: a recording's segments are large, and asked for once). */
  fetchBytes(url, keep = true) {
    let f = this.fetches.get(url);
    if (!f) {
      const abort = new AbortController();
      const promise = fetch(this.authorized(url), { signal: abort.signal, cache: 'no-store' }).then(async (r) => {
        if (!r.ok) throw new HTTPError(r.status, url);
        // The answer's head arrives when the part exists (a preload hint waits for it): the
        // time from there to the last byte is the transfer, what throughput is made of.
        const head = performance.now();
        const data = new Uint8Array(await r.arrayBuffer());
        this.bandwidth.add(data.byteLength * 8, (performance.now() - head) / 1000);
        return data;
      });
      f = { promise, abort };
      this.fetches.set(url, f);
      const forget = () => { if (this.fetches.get(url) === f) this.fetches.delete(url); };
      promise.then(() => { if (!keep) forget(); }, forget);
      if (this.fetches.size > 64) this.fetches.delete(this.fetches.keys().next().value);
    }
    return f.promise;
  }

  async fetchText(url, timeoutMs) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    this.texts.add(abort);
    try {
      const r = await fetch(this.authorized(url), { signal: abort.signal, cache: 'no-store' });
      if (!r.ok) throw new HTTPError(r.status, url);
      return await r.text();
    } finally {
      clearTimeout(timer);
      this.texts.delete(abort);
    }
  }

  async loadMaster() {
    const text = await this.fetchText(this.masterURL, 5000);
    const variants = parseMaster(text, this.masterURL);
    if (!variants.length) throw new HTTPError(404, this.masterURL);
    const name = this.variants[this.variant] ? this.variants[this.variant].name : this.preferred;
    this.variants = variants;
    const same = variants.findIndex((v) => v.name === name);
    this.variant = same >= 0 ? same : this.firstVariant();
    if (this.onVariants) this.onVariants(variants);
  }

  /** Where to start: the highest rendition the last estimate allows, else the lowest. */
  firstVariant() {
    let best = this.variants.length - 1;
    this.variants.forEach((v, i) => { if (v.bandwidth < this.variants[best].bandwidth) best = i; });
    const fits = this.variants.map((v, i) => [v, i]).filter(([v]) => v.bandwidth <= 0.7 * this.bandwidth.estimate);
    fits.sort((a, b) => b[0].bandwidth - a[0].bandwidth);
    return fits.length ? fits[0][1] : best;
  }

  /** The media playlist of the current rendition; blocking until `at` exists when given. */
  async loadMedia(at) {
    const url = new URL(this.variants[this.variant].url);
    if (at) {
      url.searchParams.set('_HLS_msn', at.msn);
      url.searchParams.set('_HLS_part', at.part);
    }
    const timeout = at ? Math.max(4000, (this.playlist ? this.playlist.targetDuration : 2) * 3000 + 2000) : 5000;
    const pl = parseMedia(await this.fetchText(url.href, timeout), url.href);
    this.playlist = pl;
    this.target = pl.partHoldBack;
    this.partTarget = pl.partTarget;
    return pl;
  }

  // MARK: The loop

  /** The loop of one mode; it ends when the player stops or switches (a new generation). */
  async run(gen) {
    const current = () => !this.stopped && gen === this.generation;
    while (current()) {
      try {
        if (!this.variants.length) {
          this.setState('loading');
          await this.loadMaster();
        }
        if (!current()) return;
        await (this.mode === 'recording' ? this.stepRecording(gen) : this.step(gen));
        this.failures = 0;
      } catch (e) {
        if (!current()) return;
        await this.recover(e);
      }
    }
  }

  /** One round: a playlist (blocking until the next part exists, once started), then every
   *  part in it from there on. */
  async step(gen) {
    if (this.auto) this.wanted = this.pickVariant();
    if (this.wanted !== undefined && this.wanted !== this.variant && this.atIndependentPart()) {
      this.log('switch', { from: this.variants[this.variant].name, to: this.variants[this.wanted].name });
      this.variant = this.wanted;
      this.playlist = null;
      if (this.firstFrameMs !== null) this.beacon('rendition', { rendition: this.renditionName() });
    }
    const pl = this.playlist || await this.loadMedia(this.next);
    this.playlist = null;  // used once: the next round asks again
    if (!pl.segments.length) throw new HTTPError(404, 'empty playlist');
    if (!this.next || this.outOfWindow(pl)) this.resync(pl);
    const items = this.partsFrom(pl, this.next);
    if (!items.length) return pl.ended ? this.ended(pl) : undefined;
    if (pl.hint && !pl.ended) this.fetchBytes(pl.hint.url).catch(() => {});  // the next part, as soon as it is made
    for (const item of items) {
      if (this.stopped || gen !== this.generation) return;
      // Throughput fell: down at the next keyframe, not after the rest of this playlist.
      if (this.auto && item.independent && item !== items[0] && this.lower(this.pickVariant())) break;
      await this.append(item, gen);
      this.next = item.following;
    }
    if (this.seekOnAppend) this.seekToLive();
  }

  /** After a start: the playhead `target` seconds behind the newest media (decoding starts at
   *  the keyframe before it). */
  seekToLive() {
    this.seekOnAppend = false;
    const b = this.video.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1);
    const at = Math.max(b.start(b.length - 1), end - (this.target || 1.5) - (this.partTarget || 0) / 2);
    if (Math.abs(this.video.currentTime - at) > 0.3) this.video.currentTime = at;
  }

  lower(i) { return this.variants[i].bandwidth < this.variants[this.variant].bandwidth; }

  /** Whether the next part starts with a keyframe (a rendition can change there). */
  atIndependentPart() {
    if (!this.next) return true;
    if (this.next.part === 0) return true;
    const item = this.playlist && this.find(this.playlist, this.next);
    return !!(item && item.independent);
  }

  find(pl, at) {
    const seg = pl.segments.find((s) => s.msn === at.msn);
    if (!seg) return null;
    if (at.part < seg.parts.length) return seg.parts[at.part];
    return null;
  }

  /** True when the next part is not in the playlist's window: too old (a stalled tab) or the
   *  stream started again (its sequence numbers went back). */
  outOfWindow(pl) {
    const epoch = epochOf(pl);
    if (epoch && this.epoch && epoch !== this.epoch) {
      this.log('restart', { epoch });
      this.epoch = epoch;
      return true;
    }
    this.epoch = epoch || this.epoch;
    const first = pl.segments[0].msn;
    const last = pl.segments[pl.segments.length - 1].msn;
    if (this.next.msn < first || this.next.msn > last + 1) return true;
    // Parts of segments far back are no longer listed: from there, whole segments only.
    const seg = pl.segments.find((s) => s.msn === this.next.msn);
    return !!(seg && this.next.part > 0 && !seg.parts.length);
  }

  /** Starts at the live edge: the independent part at or before PART-HOLD-BACK from the end. */
  resync(pl) {
    const flat = [];
    for (const s of pl.segments) {
      s.parts.forEach((p, i) => flat.push({ msn: s.msn, part: i, independent: p.independent || i === 0, duration: p.duration }));
    }
    let start = null;
    let behind = 0;
    for (let i = flat.length - 1; i >= 0; i--) {
      behind += flat[i].duration;
      if (flat[i].independent && behind >= Math.min(pl.partHoldBack, 2 * pl.partTarget) - 1e-6) { start = flat[i]; break; }
    }
    start = start || flat.find((p) => p.independent) || { msn: pl.segments[0].msn, part: 0 };
    const jump = this.next !== null;
    this.next = { msn: start.msn, part: start.part };
    this.epoch = epochOf(pl) || this.epoch;
    this.timelineCheck = true;
    this.seekOnAppend = true;
    this.log('resync', { msn: start.msn, part: start.part, jump });
  }

  /** The parts (or, where parts are no longer listed, whole segments) from `at` on. A part
   *  index one past the end of a finished segment means the next segment's first part. */
  partsFrom(pl, at) {
    const seg = pl.segments.find((s) => s.msn === at.msn);
    if (seg && seg.complete && seg.parts.length && at.part >= seg.parts.length) at = this.next = { msn: at.msn + 1, part: 0 };
    const out = [];
    for (const s of pl.segments) {
      if (s.msn < at.msn) continue;
      const from = s.msn === at.msn ? at.part : 0;
      if (!s.parts.length) {
        if (s.complete && from === 0) {
          out.push({ url: s.url, map: s.map, independent: true, discontinuity: s.discontinuity, msn: s.msn, part: 0,
            following: { msn: s.msn + 1, part: 0 } });
        }
        continue;
      }
      for (let i = from; i < s.parts.length; i++) {
        const p = s.parts[i];
        const last = i === s.parts.length - 1 && s.complete;
        out.push({
          url: p.url, map: s.map, independent: p.independent || i === 0, discontinuity: s.discontinuity && i === 0, msn: s.msn, part: i,
          following: last ? { msn: s.msn + 1, part: 0 } : { msn: s.msn, part: i + 1 },
        });
      }
    }
    return out;
  }

  // MARK: Appending

  sourceBufferFor(codecs) {
    const type = `video/mp4; codecs="${codecs}"`;
    if (!this.sourceBuffer) {
      this.sourceBuffer = this.mediaSource.addSourceBuffer(type);
      this.sourceBuffer.mode = 'segments';
      this.codecs = codecs;
    } else if (codecs !== this.codecs && this.sourceBuffer.changeType) {
      this.sourceBuffer.changeType(type);
      this.codecs = codecs;
    }
    return this.sourceBuffer;
  }

  async append(item, gen) {
    const variant = this.variants[this.variant];
    const data = await this.fetchBytes(item.url);
    const sb = await this.withInit(variant, item.map, gen);
    if (item.discontinuity) this.timelineCheck = true;
    const start = fragmentStart(data, this.scales);
    const b = sb.buffered;
    const end = b.length ? b.end(b.length - 1) : null;
    if (this.timelineCheck && start !== null && end !== null) {
      // After a discontinuity, a restart (the timeline went back) or a jump ahead: the new
      // media goes right after what is buffered, so the timeline never overlaps or breaks.
      const placed = start + sb.timestampOffset;
      if (placed < end - 0.1 || placed > end + 1.0) {
        await this.idle(sb);
        sb.timestampOffset += end - placed;
        this.log('timeline', { offset: sb.timestampOffset });
      }
    }
    this.timelineCheck = false;
    await this.appendBuffer(sb, data);
    if (gen !== this.generation) return;
    if (item.part === 0 && start !== null) {
      this.anchors.push({ msn: item.msn, time: start + sb.timestampOffset });
      if (this.anchors.length > 200) this.anchors.shift();
    }
    this.playing();
  }

  /** The SourceBuffer, holding the init segment `mapURL` names (appended if it is not the one
   *  there); throws when a switch made this round's loop (`gen`) stale. */
  async withInit(variant, mapURL, gen) {
    if (gen !== this.generation) throw new Error('superseded');
    const sb = this.sourceBufferFor(variant.codecs);
    // The same init segment from another edge (after a reroute) is not appended again: a new
    // init makes the decoder start over, and it could only go on at the next keyframe.
    const map = new URL(mapURL).pathname;
    if (map !== this.appendedMap) {
      const init = await this.fetchBytes(mapURL);
      if (gen !== this.generation) throw new Error('superseded');
      this.scales = timescales(init);
      await this.appendBuffer(sb, init);
      this.appendedMap = map;
    }
    return sb;
  }

  /** Media appended: playing (or paused where the browser wants a gesture first). */
  playing() {
    if (this.state === 'playing') return;
    this.setState('playing');
    this.video.play().catch(() => this.setState('paused'));
  }

  // MARK: Recordings

  /** One round of a recording: its playlist (reloaded while it grows), then the next segment
   *  from the playhead on that is not buffered yet, while less than `AHEAD` seconds are. */
  async stepRecording(gen) {
    if (this.auto) this.wanted = this.pickVariant();
    if (this.wanted !== undefined && this.wanted !== this.variant) {
      this.log('switch', { from: this.variants[this.variant].name, to: this.variants[this.wanted].name });
      this.variant = this.wanted;
    }
    const pl = await this.recordingPlaylist();
    if (gen !== this.generation) return;
    if (!pl.segments.length) throw new HTTPError(404, 'empty playlist');
    const sb = this.sourceBuffer;
    if (this.flushAhead && sb) {
      this.flushAhead = false;
      const from = this.video.currentTime + 1;
      await this.idle(sb);
      if (this.mediaSource.duration > from) { sb.remove(from, this.mediaSource.duration); await this.idle(sb); }
    }
    const t = this.pendingSeek ?? this.video.currentTime;
    const ahead = this.bufferedFrom(t);
    const seg = pl.segments.find((s) => s.start + s.duration > ahead + 0.25);
    if (!seg) {
      // Buffered to the end: a finished recording's end is the stream's end (the video ends there).
      if (pl.ended && this.mediaSource.readyState === 'open' && sb && !sb.updating) this.mediaSource.endOfStream();
      return this.nap(1000);
    }
    if (ahead - t >= AHEAD) return this.nap(500);
    await this.appendRecorded(seg, gen);
  }

  /** The current rendition's playlist: a finished recording's once, a growing one's again
   *  every target duration. The media's duration follows it (the controls' seek bar). */
  async recordingPlaylist() {
    const v = this.variants[this.variant];
    const old = this.vod;
    if (old && old.variant === v.name && (old.ended || performance.now() - old.loadedAt < old.targetDuration * 1000)) return old;
    const pl = parseMedia(await this.fetchText(v.url, 8000), v.url);
    pl.variant = v.name;
    pl.loadedAt = performance.now();
    this.vod = pl;
    const ms = this.mediaSource;
    const b = this.sourceBuffer ? this.sourceBuffer.buffered : null;
    const end = Math.max(pl.total, b && b.length ? b.end(b.length - 1) : 0);
    if (ms.readyState === 'open' && !(this.sourceBuffer && this.sourceBuffer.updating) && Math.abs((ms.duration || 0) - end) > 0.01) {
      try { ms.duration = end; } catch (e) { /* the next reload sets it */ }
    }
    return pl;
  }

  /** Where buffered media from `t` on ends (`t` when none), over gaps too small to be a segment not fetched yet. */
  bufferedFrom(t) {
    const b = this.sourceBuffer ? this.sourceBuffer.buffered : null;
    let end = t;
    if (!b) return end;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= end + 0.3 && b.end(i) > end) end = b.end(i);
    }
    return end;
  }

  /** A segment of a recording, placed at its start on the playlist's timeline: one offset per
   *  run of segments between discontinuities (and rendition), from the first one fetched, so
   *  that a run's media stays as continuous as it was made. */
  async appendRecorded(seg, gen) {
    const variant = this.variants[this.variant];
    const data = await this.fetchBytes(seg.url, false);
    const sb = await this.withInit(variant, seg.map, gen);
    const key = `${variant.name} ${seg.run}`;
    if (!this.runOffsets.has(key)) {
      const start = fragmentStart(data, this.scales);
      this.runOffsets.set(key, start === null ? 0 : seg.start - start);
    }
    const offset = this.runOffsets.get(key);
    if (sb.timestampOffset !== offset) {
      await this.idle(sb);
      sb.timestampOffset = offset;
    }
    await this.appendBuffer(sb, data);
    if (gen !== this.generation) return;
    // The start asked for (the page's, the DVR's), once the media there can be shown.
    if (this.pendingSeek !== null && this.video.readyState >= 1) {
      this.video.currentTime = this.pendingSeek;
      this.pendingSeek = null;
    }
    this.playing();
  }

  /** Waits `ms`, or less when the viewer seeks. */
  nap(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(timer); this.wake = null; resolve(); };
    });
  }

  idle(sb) {
    return sb.updating ? new Promise((resolve) => sb.addEventListener('updateend', resolve, { once: true })) : Promise.resolve();
  }

  async appendBuffer(sb, data) {
    await this.idle(sb);
    try {
      sb.appendBuffer(data);
    } catch (e) {
      if (e.name !== 'QuotaExceededError') throw e;
      await this.trim(sb, 10);
      sb.appendBuffer(data);
    }
    await new Promise((resolve, reject) => {
      const done = () => { sb.removeEventListener('error', fail); resolve(); };
      const fail = () => { sb.removeEventListener('updateend', done); reject(new Error('append failed')); };
      sb.addEventListener('updateend', done, { once: true });
      sb.addEventListener('error', fail, { once: true });
    });
  }

  /** Drops what lies more than `keep` seconds behind the playhead. */
  async trim(sb, keep) {
    const b = sb.buffered;
    if (!b.length || this.video.currentTime - keep <= b.start(0)) return;
    await this.idle(sb);
    sb.remove(b.start(0), this.video.currentTime - keep);
    await this.idle(sb);
  }

  // MARK: Distance from live, stalls, gaps

  tick() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length || this.state !== 'playing') return;
    const t = v.currentTime;
    const recording = this.mode === 'recording';
    if (recording && v.seeking) return;  // the segment it landed in is on its way
    // Stuck before or between buffered ranges (a gap in the media): on to the next range. In a
    // recording only over a small gap: a larger one is a segment not fetched yet.
    let range = -1;
    for (let i = 0; i < b.length; i++) if (t >= b.start(i) - 0.01 && t < b.end(i)) range = i;
    const stuck = range < 0 || (v.readyState < 3 && b.end(range) - t < 0.2);
    if (stuck) {
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) > t && b.start(i) - t < (recording ? 0.5 : 10)) { v.currentTime = b.start(i) + 0.01; this.log('gap', { at: t }); return; }
      }
    }
    if (v.paused) return;  // the viewer paused: on play, the jump below brings them back to live
    const end = b.end(b.length - 1);
    // Stuck with media ahead (the decoder waits for something it will not get): a nudge
    // forward makes it start again from the keyframe before.
    if (t === this.lastTime && range >= 0 && b.end(range) - t > 0.5) {
      this.stuckTicks = (this.stuckTicks || 0) + 1;
      if (this.stuckTicks >= 4) { v.currentTime = t + 0.1; this.stuckTicks = 0; this.log('nudge', { at: t }); return; }
    } else {
      this.stuckTicks = 0;
    }
    this.lastTime = t;
    if (recording) {
      if (this.sourceBuffer && !this.sourceBuffer.updating && Math.random() < 0.02) this.trim(this.sourceBuffer, 30).catch(() => {});
      return;  // a recording plays at its own pace: no distance from live to hold
    }
    // PART-HOLD-BACK is the least distance from the newest part; the distance grows by a part
    // between two parts, so the mean to hold is half a part above it.
    const target = this.target || 1.5;
    const part = (this.playlist && this.playlist.partTarget) || this.partTarget || 0.5;
    const mean = target + part / 2;
    const behind = end - t;
    // The distance averaged over a few seconds (the parts' sawtooth smoothed out) is what is held.
    this.smoothBehind = this.smoothBehind == null ? behind : 0.9 * this.smoothBehind + 0.1 * behind;
    const held = this.smoothBehind;
    if (behind > Math.max(3 * target, target + 3)) {
      v.currentTime = end - mean;  // far behind (a stalled tab, a slow link): jump
      this.smoothBehind = null;
      this.log('jump', { behind });
    } else if (held > mean + 0.1) {
      v.playbackRate = held > mean + 1 ? 1.15 : 1.05;  // a little faster until back at the target
    } else if (held < mean - 0.15 || behind < target - part) {
      v.playbackRate = 0.95;
    } else if (Math.abs(held - mean) < 0.05) {
      v.playbackRate = 1;
    }
    if (this.sourceBuffer && !this.sourceBuffer.updating && Math.random() < 0.02) this.trim(this.sourceBuffer, 30).catch(() => {});
  }

  /** The rendition the measured throughput and the buffer allow. */
  pickVariant() {
    if (!this.auto) return this.wanted ?? this.variant;
    const estimate = this.bandwidth.estimate;
    if (!estimate) return this.variant;
    const b = this.video.buffered;
    const buffer = b.length ? b.end(b.length - 1) - this.video.currentTime : 0;
    const order = this.variants.map((v, i) => i).sort((x, y) => this.variants[x].bandwidth - this.variants[y].bandwidth);
    let choice = order[0];
    for (const i of order) if (this.variants[i].bandwidth <= 0.7 * estimate) choice = i;
    const now = this.variants[this.variant].bandwidth;
    // Up only with some buffer in hand; down at once.
    if (this.variants[choice].bandwidth > now && buffer < 0.6 * (this.target || 1.5)) return this.variant;
    return choice;
  }

  // MARK: Failures

  /** The broadcast ended: keep the last picture, and look every 2 s whether it comes back
   *  (its playlist goes on after the last segment, with a discontinuity). */
  ended(pl) {
    this.setState('ended');
    this.next = { msn: pl.segments[pl.segments.length - 1].msn + 1, part: 0 };
    this.variants = [];
    return sleep(2000);
  }

  async recover(error) {
    this.failures += 1;
    this.playlist = null;
    const status = error && error.status;
    this.log('error', { message: String(error && error.message), failures: this.failures });
    if (this.mode === 'recording') {
      // Gone (deleted, or never was): said once, asked again now and then; else retried.
      if (status === 403 || status === 404 || status === 410) {
        this.setState('error', status === 403 ? 'This recording is private.' : 'This recording is not available.');
        this.variants = [];
        return sleep(10000);
      }
      return sleep(Math.min(500 * this.failures, 5000));
    }
    if (status === 404 && (this.state === 'loading' || this.state === 'offline' || this.state === 'starting')) {
      this.setState('offline');  // not live yet
      this.variants = [];
      return sleep(2000);
    }
    if (status === 400 || status === 404 || status === 410) {
      // Asked for what will never come (the stream started again from nothing): start over
      // from its playlist as it is now.
      this.next = null;
      return sleep(100);
    }
    if (this.failures >= 2 && await this.reroute()) return;
    return sleep(Math.min(250 * this.failures, 2000));
  }

  /** Asks the nodes it knows for the next healthy edge; true when it moved to another. */
  async reroute() {
    const candidates = [...this.nodes].filter((n) => n !== this.base);
    candidates.push(this.base);
    for (const node of candidates) {
      try {
        const text = await this.fetchText(`${node}/api/route/${encodeURIComponent(this.stream)}`, 2000);
        const answer = JSON.parse(text);
        const next = new URL(answer.playlistURL).origin;
        if (next === this.base && node !== this.base) continue;  // the failed edge, not yet known dead
        this.nodes.add(this.base);
        if (next !== this.base) this.log('reroute', { from: this.base, to: next, edge: answer.edge });
        this.base = next;
        this.variants = [];
        this.failures = 0;
        return true;
      } catch (e) {
        // that node cannot answer either: the next
      }
    }
    return false;
  }
}
