// chat.js: the chat panel of a stream's page (live, over a WebSocket to this node) and of a
// recording's page (the kept messages, shown as the video reaches their time). Every text from
// the chat is put in the page with textContent, never as HTML.
(() => {
  'use strict';
  const panel = document.getElementById('chat');
  if (!panel) return;
  const log = document.getElementById('chat-log');
  const status = document.getElementById('chat-status');
  const stream = panel.dataset.stream;
  const token = panel.dataset.token || '';
  const keep = 200; // messages shown at most

  function line(m, moderator, send) {
    const li = document.createElement('li');
    li.dataset.id = m.id;
    li.dataset.user = m.user;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.name;
    const text = document.createElement('span');
    text.className = 'chat-text';
    text.textContent = m.text;
    li.append(who, text);
    if (moderator && send) {
      for (const [label, command] of [['Delete', { type: 'delete', id: m.id }],
                                      ['Time out 5 min', { type: 'timeout', user: m.user, minutes: 5 }],
                                      ['Ban', { type: 'ban', user: m.user }]]) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = label;
        b.setAttribute('aria-label', `${label}: ${m.name}`);
        b.addEventListener('click', () => send(command));
        li.append(b);
      }
    }
    return li;
  }

  function scrollDown() {
    const box = log.parentElement;
    box.scrollTop = box.scrollHeight;
  }

  if (panel.dataset.mode === 'replay') {
    replay();
  } else {
    live();
  }

  function live() {
    const form = document.getElementById('chat-form');
    const input = document.getElementById('chat-input');
    const tools = document.getElementById('chat-tools');
    const slow = document.getElementById('chat-slow');
    const followers = document.getElementById('chat-followers');
    const reactions = document.getElementById('chat-reactions');
    let socket = null;
    let moderator = false;
    let attempt = 0;
    let stopped = false;

    const send = (command) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(command));
    };

    function add(m) {
      log.append(line(m, moderator, send));
      while (log.children.length > keep) log.firstElementChild.remove();
      scrollDown();
    }

    function counts(c) {
      if (!reactions) return;
      for (const b of reactions.querySelectorAll('button[data-reaction]')) {
        b.querySelector('.count').textContent = String((c && c[b.dataset.reaction]) || 0);
      }
    }

    function rules(slowSeconds, followersOnly) {
      const parts = ['Connected.'];
      if (slowSeconds) parts.push(`Slow mode: ${slowSeconds} s between messages.`);
      if (followersOnly) parts.push('Followers-only mode: only followers of this channel may post.');
      return parts.join(' ');
    }

    function connect() {
      const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      const query = new URLSearchParams();
      if (panel.dataset.csrf) query.set('csrf', panel.dataset.csrf);
      if (token) query.set('token', token);
      socket = new WebSocket(`${scheme}${location.host}/chat/${encodeURIComponent(stream)}?${query}`);
      socket.addEventListener('message', (e) => {
        let event;
        try { event = JSON.parse(e.data); } catch { return; }
        switch (event.type) {
          case 'hello':
            attempt = 0;
            moderator = !!event.moderator;
            log.replaceChildren();
            for (const m of event.messages || []) add(m);
            if (form) form.hidden = !event.canPost;
            if (tools) tools.hidden = !moderator;
            if (slow) slow.value = String(event.slow || 0);
            if (followers) followers.checked = !!event.followersOnly;
            counts(event.reactions);
            status.textContent = rules(event.slow, event.followersOnly);
            panel.dataset.state = 'open';
            break;
          case 'message':
            add(event.message);
            break;
          case 'deleted':
            for (const li of log.querySelectorAll('li')) if (li.dataset.id === event.id) li.remove();
            break;
          case 'slow':
            status.textContent = event.seconds ? `Slow mode: ${event.seconds} s between messages.` : 'Slow mode is off.';
            if (slow) slow.value = String(event.seconds || 0);
            break;
          case 'followers':
            status.textContent = event.on ? 'Followers-only mode: only followers of this channel may post.' : 'Followers-only mode is off.';
            if (followers) followers.checked = !!event.on;
            break;
          case 'reactions':
            counts(event.reactions);
            break;
          case 'notice':
            status.textContent = event.text;
            break;
        }
      });
      socket.addEventListener('close', (e) => {
        panel.dataset.state = 'closed';
        if (stopped) return;
        if (e.code === 4403 || e.code === 4404) {
          status.textContent = e.reason || 'The chat is not available.';
          return;
        }
        // Back off: 0.5 s, 1 s, 2 s … at most 8 s, with jitter so that a room's viewers do not return at once.
        const delay = Math.min(8000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
        attempt += 1;
        status.textContent = 'Reconnecting to the chat…';
        setTimeout(connect, delay);
      });
    }

    if (form) {
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        send({ type: 'post', text });
        input.value = '';
        input.focus();
      });
    }
    if (slow) slow.addEventListener('change', () => send({ type: 'slow', seconds: Number(slow.value) }));
    if (followers) followers.addEventListener('change', () => send({ type: 'followers', on: followers.checked }));
    if (reactions) {
      for (const b of reactions.querySelectorAll('button[data-reaction]')) {
        b.addEventListener('click', () => send({ type: 'react', reaction: b.dataset.reaction }));
      }
    }
    window.addEventListener('pagehide', () => { stopped = true; if (socket) socket.close(); });
    connect();
  }

  function replay() {
    const video = document.getElementById('video');
    const start = Number(panel.dataset.start);
    const span = 60; // seconds asked at a time
    const asked = new Map(); // window start -> messages (or null while asked)
    let shown = -1;

    async function load(from) {
      if (asked.has(from)) return;
      asked.set(from, null);
      const query = new URLSearchParams({ from: String(from), to: String(from + span) });
      if (token) query.set('token', token);
      try {
        const r = await fetch(`/chat/${encodeURIComponent(stream)}/messages?${query}`, { credentials: 'same-origin' });
        if (!r.ok) throw new Error(String(r.status));
        asked.set(from, (await r.json()).messages || []);
        shown = -1;
        render();
      } catch {
        asked.delete(from);
      }
    }

    function render() {
      if (!video || !Number.isFinite(start)) return;
      const now = start + (video.currentTime || 0);
      const here = Math.floor(now / span) * span;
      load(here);
      load(here + span);
      if (here > start) load(here - span);
      const due = [];
      for (const list of asked.values()) for (const m of list || []) if (m.at >= start && m.at <= now) due.push(m);
      due.sort((a, b) => a.at - b.at);
      const last = due.slice(-keep);
      const key = last.length ? last[last.length - 1].id + ':' + last.length : '';
      if (key === shown) return;
      shown = key;
      log.replaceChildren(...last.map((m) => line(m, false, null)));
      status.textContent = last.length ? '' : 'No chat messages yet at this point.';
      scrollDown();
    }

    if (video) {
      video.addEventListener('timeupdate', render);
      video.addEventListener('seeked', render);
    }
    render();
  }
})();
