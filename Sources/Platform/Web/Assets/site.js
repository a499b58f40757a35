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
