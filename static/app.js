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

// Read a QR code with the camera where the browser can (BarcodeDetector): resolves with its text, "" when
// closed, or null when this browser cannot read QR codes at all.
window.gridlessScanQr = async function () {
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices?.getUserMedia) return null;
  const formats = await window.BarcodeDetector.getSupportedFormats?.() ?? ["qr_code"];
  if (!formats.includes("qr_code")) return null;
  const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch (err) {
    return "";
  }
  const overlay = document.createElement("div");
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-label", "Reading a QR code");
  overlay.style.cssText = "position:fixed;inset:0;z-index:9999;background:#000d;display:flex;flex-direction:column;" +
    "align-items:center;justify-content:center;gap:1rem";
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.style.cssText = "max-width:90vw;max-height:70vh";
  const close = document.createElement("button");
  close.textContent = "Cancel";
  close.style.cssText = "padding:.6rem 1.4rem;font-size:1rem";
  overlay.append(video, close);
  document.body.append(overlay);
  video.srcObject = stream;
  await video.play().catch(() => {});
  try {
    return await new Promise((resolve) => {
      close.onclick = () => resolve("");
      const look = async () => {
        if (!overlay.isConnected) return;
        try {
          const found = await detector.detect(video);
          if (found.length) return resolve(found[0].rawValue || "");
        } catch (err) { /* a frame not ready yet */ }
        setTimeout(look, 200);
      };
      look();
    });
  } finally {
    stream.getTracks().forEach((track) => track.stop());
    overlay.remove();
  }
};
