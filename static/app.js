// Copy buttons on code blocks in answers. Answers are re-rendered while they stream, so a
// MutationObserver adds the button to every new <pre> instead of wiring it once.
(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement('textarea');
    area.value = text; area.style.position = 'fixed'; area.style.opacity = '0';
    document.body.appendChild(area); area.select();
    try { document.execCommand('copy'); } finally { area.remove(); }
    return Promise.resolve();
  }
  function decorate(root) {
    root.querySelectorAll('.gl-answer pre').forEach(function (pre) {
      if (pre.querySelector('.gl-copy-code')) return;
      const button = document.createElement('button');
      button.className = 'gl-copy-code'; button.type = 'button'; button.textContent = 'Copy';
      button.addEventListener('click', function () {
        const code = pre.querySelector('code') || pre;
        copyText(code.innerText).then(function () {
          button.textContent = 'Copied';
          setTimeout(function () { button.textContent = 'Copy'; }, 1500);
        });
      });
      pre.appendChild(button);
    });
  }
  new MutationObserver(function () { decorate(document); })
    .observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener('DOMContentLoaded', function () { decorate(document); });
})();

// Installable app: the service worker serves the offline page when the server is not running.
if ('serviceWorker' in navigator && window.isSecureContext) {
  window.addEventListener('load', function () {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(function (error) {
      console.warn('gridless: the service worker could not be registered', error);
    });
  });
}
