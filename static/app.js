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

// Model upload: the chosen file goes to the server as the raw request body (no base64 over
// the websocket), with the progress shown next to the file input.
window.gridless = window.gridless || {};
window.gridless.uploadModel = function (selector, url, job) {
  return new Promise(function (resolve) {
    const input = document.querySelector(selector);
    const file = input && input.files && input.files[0];
    if (!file) { resolve({ error: 'Choose a model file first' }); return; }
    let bar = input.parentElement.querySelector('progress');
    if (!bar) { bar = document.createElement('progress'); bar.max = 1; bar.value = 0; input.after(bar); }
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url + '?job=' + encodeURIComponent(job) + '&filename=' + encodeURIComponent(file.name));
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = function () {
      bar.remove();
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status >= 200 && xhr.status < 300) { input.value = ''; resolve(body); return; }
      const message = (body.error && body.error.message) || ('the upload failed (HTTP ' + xhr.status + ')');
      resolve({ error: message });
    };
    xhr.onerror = function () { bar.remove(); resolve({ error: 'the connection was lost during the upload' }); };
    xhr.send(file);
  });
};

// Installable app: the service worker serves the offline page when the server is not running.
if ('serviceWorker' in navigator && window.isSecureContext) {
  window.addEventListener('load', function () {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(function (error) {
      console.warn('gridless: the service worker could not be registered', error);
    });
  });
}
