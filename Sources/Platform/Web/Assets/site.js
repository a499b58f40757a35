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
