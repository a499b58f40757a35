// The player pages' shared wiring (the watch page and the embed page): starts `Player` on the
// page's #video and keeps the status line, the live badge, the unmute button, the quality menu
// and the stats overlay in step with it. Each of those but #video and #status is optional: the
// embed page has fewer. The page's own one-line module script (with its CSP nonce) imports both
// files under their versions and calls `attach(Player)`; this file imports nothing, so one
// `Player` module is ever loaded.
const messages = {
  loading: 'Loading…',
  offline: 'This stream is offline. It will start here as soon as the broadcaster goes live.',
  ended: 'The broadcast has ended. It will go on here if the broadcaster comes back.',
  paused: 'Press play to watch.',
};

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
  const token = video.dataset.token ? { token: video.dataset.token, expiresIn: Number(video.dataset.tokenExpiresIn),
    renewURL: `/watch/${encodeURIComponent(video.dataset.stream)}/token` } : null;
  const player = new Player(video, { stream: video.dataset.stream, nodes, token });
  window.streamtubePlayer = player;

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
    const live = s === 'playing';
    status.hidden = live;
    status.textContent = detail || messages[s] || '';
    countdown();
    if (state) {
      state.textContent = live ? '● LIVE' : (s === 'ended' ? 'Ended' : (s === 'offline' ? 'Offline' : ''));
      state.className = live ? 'live' : '';
    }
    if (unmute) unmute.hidden = !(live && video.muted);
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
        `behind live  ${s.latency === null ? '–' : s.latency.toFixed(2) + ' s'} (target ${s.target ? s.target.toFixed(2) : '–'} s)`,
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
