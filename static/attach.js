// Photos and files for a chat message: the camera's viewfinder, the file chooser, and the upload.
//
// Everything is wired by delegation on `document`, so the buttons work from the moment the
// page shows them. A file goes to POST /api/attachments as the raw body; the page's server
// side hears about it through NiceGUI events: gl_attach_started {name}, gl_attached
// {attachment}, gl_attach_failed {name, message}.
(function () {
  'use strict';
  const gridless = (window.gridless = window.gridless || {});

  function emit(name, payload) {
    if (typeof window.emitEvent === 'function') window.emitEvent(name, payload);
  }

  async function upload(file, name) {
    name = (name || file.name || 'file').slice(0, 200);
    emit('gl_attach_started', { name });
    let response;
    try {
      response = await fetch('/api/attachments?name=' + encodeURIComponent(name), {
        method: 'POST', body: file, credentials: 'same-origin',
        headers: { 'Content-Type': file.type || 'application/octet-stream' },
      });
    } catch (e) {
      emit('gl_attach_failed', { name, message: 'The file could not be sent: the connection was lost.' });
      return;
    }
    let body = {};
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const message = (body.error && body.error.message) ||
        (response.status === 413 ? 'The file is too large.' : 'The file could not be attached (HTTP ' + response.status + ').');
      emit('gl_attach_failed', { name, message });
      return;
    }
    emit('gl_attached', body);
  }
  gridless.attachFile = upload;

  function chooser(kind) {
    return document.querySelector('input[data-gl-attach="' + kind + '"]');
  }

  document.addEventListener('change', (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.matches('input[data-gl-attach]')) return;
    const files = Array.from(input.files || []);
    input.value = '';
    for (const file of files) upload(file, file.name);
  });

  // a picture pasted into the message box, or files dropped anywhere on a chat page
  function composerPage() {
    return document.querySelector('input[data-gl-attach="files"]') !== null;
  }
  document.addEventListener('paste', (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    if (!files.length || !composerPage()) return;
    event.preventDefault();  // not the file's name as text
    for (const file of files) upload(file, file.name && file.name !== 'image.png' ? file.name : 'pasted-' + timestamp() + '.png');
  });
  document.addEventListener('dragover', (event) => {
    if (composerPage() && event.dataTransfer && Array.from(event.dataTransfer.types || []).includes('Files')) {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    }
  });
  document.addEventListener('drop', (event) => {
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
    if (!files.length || !composerPage()) return;
    event.preventDefault();  // the browser would otherwise open the file in place of the app
    for (const file of files) upload(file, file.name);
  });

  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const pick = target.closest('[data-gl-pick]');
    if (pick) {  // data-gl-pick names the input to open (default: the message's files)
      const name = pick.getAttribute('data-gl-pick');
      const input = chooser(name && name !== 'true' ? name : 'files');
      if (input) input.click();
    } else if (target.closest('[data-gl-camera]')) {
      openCamera();
    }
  });

  // --- the camera -----------------------------------------------------------------------------

  function timestamp() {
    const d = new Date();
    const two = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
  }

  function button(label, icon, testid, extra) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'gl-camera-button ' + (extra || '');
    b.setAttribute('aria-label', label);
    b.dataset.testid = testid;
    if (icon) {
      const i = document.createElement('i');
      i.className = 'material-icons';
      i.textContent = icon;
      b.appendChild(i);
    }
    return b;
  }

  let open = null;

  async function openCamera() {
    const live = window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
    if (!live) {  // plain HTTP on another device: the system camera through the file input
      const input = chooser('camera');
      if (input) input.click();
      return;
    }
    if (open) return;
    let facing = localStorage.getItem('gl-camera-facing') || 'environment';
    let stream = null;
    const overlay = document.createElement('div');
    overlay.className = 'gl-camera';
    overlay.dataset.testid = 'camera';
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-label', 'Camera');
    const video = document.createElement('video');
    video.autoplay = true; video.muted = true; video.playsInline = true;
    video.dataset.testid = 'camera-view';
    const message = document.createElement('div');
    message.className = 'gl-camera-message';
    message.dataset.testid = 'camera-message';
    const bar = document.createElement('div');
    bar.className = 'gl-camera-bar';
    const close = button('Close camera', 'close', 'camera-close');
    const shutter = button('Take photo', '', 'camera-shutter', 'gl-shutter');
    const flip = button('Switch camera', 'cameraswitch', 'camera-switch');
    shutter.disabled = true;
    bar.append(close, shutter, flip);
    overlay.append(video, message, bar);
    document.body.appendChild(overlay);
    open = overlay;

    function stop() {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      stream = null;
    }
    function finish() {
      stop();
      overlay.remove();
      document.removeEventListener('keydown', onKey);
      open = null;
    }
    function onKey(e) { if (e.key === 'Escape') finish(); }
    document.addEventListener('keydown', onKey);

    async function start() {
      stop();
      shutter.disabled = true;
      message.textContent = '';
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: false, video: { facingMode: { ideal: facing }, width: { ideal: 1920 }, height: { ideal: 1080 } },
        });
      } catch (e) {
        const refused = e && (e.name === 'NotAllowedError' || e.name === 'SecurityError');
        message.textContent = refused
          ? 'Camera access was refused. Allow it in the browser’s site settings, or choose a photo with the paperclip.'
          : 'No camera could be opened (' + ((e && e.name) || 'error') + '). Choose a photo with the paperclip instead.';
        return;
      }
      video.srcObject = stream;
      video.classList.toggle('gl-mirror', facing === 'user');
      try { await video.play(); } catch (e) { /* autoplay of a muted video is allowed */ }
      shutter.disabled = false;
      const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
      flip.hidden = cameras.length < 2;
    }

    close.addEventListener('click', finish);
    flip.addEventListener('click', () => {
      facing = facing === 'user' ? 'environment' : 'user';
      localStorage.setItem('gl-camera-facing', facing);
      start();
    });
    shutter.addEventListener('click', () => {
      const width = video.videoWidth, height = video.videoHeight;
      if (!width || !height) return;
      const canvas = document.createElement('canvas');
      canvas.width = width; canvas.height = height;
      canvas.getContext('2d').drawImage(video, 0, 0, width, height);  // as the sensor sees it, not mirrored
      shutter.disabled = true;
      overlay.classList.add('gl-flash');
      canvas.toBlob((blob) => {
        finish();
        if (blob) upload(blob, 'photo-' + timestamp() + '.jpg');
      }, 'image/jpeg', 0.92);
    });
    start();
  }
  gridless.openCamera = openCamera;
})();
