// The player pages' shared wiring (the watch page, the embed page and a recording's page):
// starts `Player` on the page's #video and keeps the status line, the live badge, the unmute
// button, the quality menu, the stats overlay and the seek bar in step with it. Each of those
// but #video and #status is optional: the embed page has fewer. A recording's page names it
// (`data-recording`); a live page names the recording being made (`data-dvr`, or asks
// `/watch/{id}/recording` once the stream plays), and its seek bar goes back over the broadcast
// so far, with "Back to live" to return. The page's own one-line module script (with its CSP nonce) imports both
// files under their versions and calls `attach(Player)`; this file imports nothing, so one
// `Player` module is ever loaded.
const messages = {
  loading: 'Loading…',
  offline: 'This stream is offline. It will start here as soon as the broadcaster goes live.',
  ended: 'The broadcast has ended. It will go on here if the broadcaster comes back.',
  paused: 'Press play to watch.',
};

/** Seconds as m:ss, or h:mm:ss from an hour on. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${two(Math.floor(s % 3600 / 60))}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}

export function attach(Player) {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const status = $('status');
  const state = $('state');
  const unmute = $('unmute');
  const quality = $('quality');
  const stats = $('stats');
  const toggle = $('toggle-stats');
  const nodes = (video.dataset.nodes || '').split(' ').filter(Boolean);
  // A private stream's page carries a playback token: the player adds it to every request and renews it.
  // A recording's page renews for its recording (a ticket for it alone gets a token for it alone).
  const renewFor = video.dataset.recording ? `?recording=${encodeURIComponent(video.dataset.recording)}` : '';
  const token = video.dataset.token ? { token: video.dataset.token, expiresIn: Number(video.dataset.tokenExpiresIn),
    renewURL: `/watch/${encodeURIComponent(video.dataset.stream)}/token${renewFor}` } : null;
  const recording = video.dataset.recording || null;
  const at = Number(new URLSearchParams(location.search).get('t')) || 0;
  const player = new Player(video, { stream: video.dataset.stream, nodes, token, recording: recording || video.dataset.dvr, live: !recording, at });
  window.streamtubePlayer = player;
  const seekBar = $('seek') ? new SeekBar(player, video, $, recording ? null : video.dataset) : null;

  // The live viewer count (the watch page has a place for it): the whole cluster's, every 5 s.
  const viewers = $('viewers');
  if (viewers && !recording) {
    const countURL = `/streams/${encodeURIComponent(video.dataset.stream)}/viewers`;
    const count = async () => {
      try {
        const r = await fetch(player.token ? `${countURL}?token=${encodeURIComponent(player.token)}` : countURL);
        if (!r.ok) return;
        // This player counts too, before the cluster's figures (a few seconds behind) have it.
        const n = Math.max((await r.json()).viewers, video.paused || video.readyState < 2 ? 0 : 1);
        viewers.textContent = n === 1 ? '1 watching' : `${n} watching`;
        viewers.hidden = false;
      } catch (e) { /* the count is no reason to trouble the viewer */ }
    };
    count();
    setInterval(count, 5000);
    // The first count is asked before the picture starts: ask again once it plays.
    video.addEventListener('playing', count, { once: true });
  }

  // A scheduled stream counts down while it is offline; the player turns live by itself.
  const starts = Number(video.dataset.starts) * 1000;
  let current = null;
  const countdown = () => {
    const left = Math.round((starts - Date.now()) / 1000);
    if (!starts || left <= 0 || current !== 'offline') return false;
    const d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60), sec = left % 60;
    status.textContent = 'Starts in ' + (d ? d + ' d ' : '') + (d || h ? h + ' h ' : '') + (d || h || m ? m + ' min ' : '') + (d ? '' : sec + ' s');
    return true;
  };
  setInterval(countdown, 1000);
  player.onState((s, detail) => {
    current = s;
    const playing = s === 'playing';
    const live = playing && player.mode === 'live';
    // A recording that played to its end keeps its picture and controls: seek back, or play again.
    status.hidden = playing || (player.mode === 'recording' && s === 'ended');
    status.textContent = detail || messages[s] || '';
    countdown();
    if (state && !recording) {
      state.textContent = live ? '● LIVE' : player.mode === 'recording' ? 'Behind live' : (s === 'ended' ? 'Ended' : (s === 'offline' ? 'Offline' : ''));
      state.className = live ? 'live' : '';
    }
    if (unmute) unmute.hidden = !(playing && video.muted);
    if (seekBar) seekBar.update();
  });
  if (unmute) unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; });

  if (quality) {
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
  }

  if (stats && toggle) {
    const show = () => {
      const s = player.stats();
      const kbps = (b) => b ? `${Math.round(b / 1000)} kbit/s` : '–';
      stats.textContent = [
        s.mode === 'recording' ? `position     ${clock(s.position)} of ${clock(s.duration)}`
          : `behind live  ${s.latency === null ? '–' : s.latency.toFixed(2) + ' s'} (target ${s.target ? s.target.toFixed(2) : '–'} s)`,
        `rendition    ${s.rendition || '–'}${s.auto ? ' (auto)' : ''}`,
        `bandwidth    ${kbps(s.bandwidth)}`,
        `buffer       ${s.buffer.toFixed(2)} s`,
        `dropped      ${s.dropped} of ${s.decoded} frames`,
        `rate         ${s.rate.toFixed(2)}×`,
      ].join('\n');
    };
    let timer = null;
    toggle.addEventListener('click', () => {
      const on = stats.hidden;
      stats.hidden = !on;
      toggle.setAttribute('aria-pressed', String(on));
      clearInterval(timer);
      if (on) { show(); timer = setInterval(show, 500); }
    });
  }
  player.start();
  return player;
}

/**
 * The seek bar (#seek, a range input: arrows, Page Up/Down, Home and End work as for any slider)
 * with its read-out (#position) and, on a live page, "Back to live" (#golive, shown while behind).
 * Its scale is seconds from the recording's start. On a live page its end is the live edge,
 * estimated from how long the recording has run (`dvrSeconds` when the page was made, counted
 * on); moved back, the player goes over to the recording that far behind what it plays now;
 * moved to the end (or "Back to live"), back to the live edge. On a recording's page it is the
 * recording's playlist, and a move seeks. Changes are announced by #state (aria-live); the
 * slider's value reads as text ("0:20 behind live").
 */
class SeekBar {
  constructor(player, video, $, live) {
    Object.assign(this, { player, video, seek: $('seek'), golive: $('golive'), position: $('position'), box: $('dvr') });
    this.live = live;  // the video's dataset on a live page, null on a recording's
    this.loaded = performance.now();
    this.edgeSeconds = live ? Number(live.dvrSeconds) || 0 : 0;
    this.touched = 0;
    this.timer = null;
    this.seek.addEventListener('input', () => {
      this.touched = performance.now();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.go(), 400);  // one move for a run of key presses or a drag
      this.show();
    });
    if (this.golive) {
      this.golive.addEventListener('click', () => {
        this.player.live();
        this.seek.focus();  // the button hides: focus stays on the bar
      });
    }
    setInterval(() => this.update(), 500);
    this.update();
  }

  /** The live edge in the recording (seconds from its start); a recording's length on its page. */
  edge() {
    if (!this.live) return this.player.duration() || this.video.duration || 0;
    return this.edgeSeconds + (performance.now() - this.loaded) / 1000;
  }

  go() {
    const at = Number(this.seek.value);
    if (!this.live) return this.player.seek(at);
    const behind = Number(this.seek.max) - at;
    if (behind < 3) return this.player.live();
    if (this.player.mode === 'live') return this.player.back(behind);
    return this.player.seek(at);
  }

  update() {
    if (this.live && !this.player.recording) this.findRecording();
    // On a live page: offered while the stream plays (or loads, after a switch) and has a recording.
    const usable = !this.live || (this.player.recording && (this.player.mode === 'recording'
      || ['playing', 'loading', 'paused'].includes(this.player.state)));
    if (this.box) this.box.hidden = !usable;
    if (!usable) return;
    const max = Math.max(0, Math.floor(this.edge()));
    this.seek.max = String(max);
    // Not moved under the viewer's hand.
    if (performance.now() - this.touched > 1500) {
      this.seek.value = String(this.player.mode === 'live' ? max : Math.min(max, Math.floor(this.video.currentTime)));
    }
    if (this.golive) this.golive.hidden = this.player.mode === 'live';
    this.show();
  }

  show() {
    const at = Number(this.seek.value), max = Number(this.seek.max);
    const text = !this.live ? `${clock(at)} of ${clock(max)}` : this.player.mode === 'live' && max - at < 3 ? 'Live' : `${clock(max - at)} behind live`;
    this.seek.setAttribute('aria-valuetext', text);
    if (this.position) this.position.textContent = text;
  }

  /** A live page made before the stream went live: the recording it makes, once there is one. */
  findRecording() {
    if (this.asking || this.player.state !== 'playing' || performance.now() - (this.asked || -1e9) < 10000) return;
    this.asking = true;
    this.asked = performance.now();
    fetch(`/watch/${encodeURIComponent(this.player.stream)}/recording`, { cache: 'no-store', credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : null))
      .then((answer) => {
        if (!answer) return;
        this.player.recording = answer.id;
        this.edgeSeconds = answer.seconds;
        this.loaded = performance.now();
      })
      .catch(() => {})
      .finally(() => { this.asking = false; });
  }
}
