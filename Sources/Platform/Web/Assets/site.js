// The platform pages' small script: copy-to-clipboard buttons (`data-copy="text"` or
// `data-copy-from="element id"`), saying what happened in the button's own words.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-copy], button[data-copy-from]');
  if (!button) return;
  const from = button.dataset.copyFrom && document.getElementById(button.dataset.copyFrom);
  const text = from ? from.textContent.trim() : button.dataset.copy;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch (e) {
    // No clipboard (an insecure origin, say): select the text so the person can copy it.
    if (from) { const r = document.createRange(); r.selectNodeContents(from); getSelection().removeAllRanges(); getSelection().addRange(r); }
    button.textContent = 'Select and copy';
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

// An empty time zone field takes the browser's own (the broadcaster's, most likely).
for (const input of document.querySelectorAll('input[data-local-zone]')) {
  if (!input.value) {
    try { input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { /* left empty: UTC */ }
  }
}

// Forms that undo something ask first.
document.addEventListener('submit', (event) => {
  const form = event.target.closest('form[data-confirm]');
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// The studio's thumbnail: a form (`form.thumbnail-upload`, `data-stream` its stream) PUTs the
// chosen image to the API, with the page's anti-forgery token; "Use the live picture"
// (`data-thumbnail-live`) DELETEs it. The page is reloaded with the new picture fetched anew. The
// token is the new-stream form's `csrf` field (the form itself carries none: it is never sent).
// A recording's form says where its picture goes and is shown (`data-api`, `data-picture`).
const thumbnailLimit = 5 * 1024 * 1024;

async function thumbnailRequest(id, options, status, form) {
  const csrf = document.querySelector('input[name=csrf]');
  options.headers = Object.assign({ 'X-CSRF-Token': csrf ? csrf.value : '' }, options.headers || {});
  options.credentials = 'same-origin';
  const api = form && form.dataset.api ? form.dataset.api : '/api/v1/streams/' + encodeURIComponent(id) + '/thumbnail';
  const picture = form && form.dataset.picture ? form.dataset.picture : '/thumbnails/' + encodeURIComponent(id) + '.jpg';
  const response = await fetch(api, options);
  if (response.ok) {
    status.textContent = 'Saved. Reloading…';
    try { await fetch(picture, { cache: 'reload' }); } catch (e) { /* none to show */ }
    location.reload();
    return;
  }
  let detail = '';
  try { detail = (await response.json()).detail || ''; } catch (e) { /* not a problem document */ }
  status.textContent = detail ? 'Not saved: ' + detail : 'Not saved (error ' + response.status + ').';
}

document.addEventListener('submit', async (event) => {
  const form = event.target.closest('form.thumbnail-upload');
  if (!form) return;
  event.preventDefault();
  const status = form.querySelector('[role=status]');
  const file = form.querySelector('input[type=file]').files[0];
  if (!file) { status.textContent = 'Choose an image first.'; return; }
  if (file.size > thumbnailLimit) { status.textContent = 'This image is larger than 5 MiB: choose a smaller one.'; return; }
  status.textContent = 'Uploading…';
  try {
    await thumbnailRequest(form.dataset.stream, { method: 'PUT', headers: { 'Content-Type': file.type || 'application/octet-stream' }, body: file }, status, form);
  } catch (e) {
    status.textContent = 'Not saved: the upload failed (' + e.message + ').';
  }
});

document.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-thumbnail-live]');
  if (!button) return;
  const form = button.closest('form');
  const status = form.querySelector('[role=status]');
  status.textContent = form.dataset.api ? 'Switching to a frame of the recording…' : 'Switching to the live picture…';
  try {
    await thumbnailRequest(button.dataset.thumbnailLive, { method: 'DELETE' }, status, form);
  } catch (e) {
    status.textContent = 'Not changed: ' + e.message;
  }
});

// The studio's viewer figures (`data-analytics`: the JSON to read): the numbers and the plot
// follow the cluster's every 5 s while the page is open.
const analytics = document.querySelector('[data-analytics]');
if (analytics) {
  const refresh = async () => {
    try {
      const r = await fetch(analytics.dataset.analytics, { cache: 'no-store', credentials: 'same-origin' });
      if (!r.ok) return;
      const live = await r.json();
      for (const [name, text] of Object.entries(live.text)) {
        const el = analytics.querySelector(`[data-figure="${name}"]`);
        if (el) el.textContent = text;
      }
      const plot = analytics.querySelector('[data-plot]');
      const svg = new DOMParser().parseFromString(live.plot, 'image/svg+xml').documentElement;
      if (plot && svg.nodeName === 'svg') plot.replaceChildren(document.importNode(svg, true));
    } catch (e) { /* the next round tries again */ }
  };
  setInterval(refresh, 5000);
}
