// Voice in the browser: dictation into the message box, and answers read aloud.
//
// Dictation records with MediaRecorder (WebM/Opus or MP4, as the browser offers) where the
// page is a secure context; elsewhere (a tablet on plain http) browsers allow no live
// recording, so the same button opens the device's own recorder through a file input.
// Either way the audio goes to /api/transcripts as the raw request body and the segments
// come back as NDJSON while Whisper decodes them; each one is added to the message box.
//
// Reading aloud fetches a WAV stream and plays its PCM through Web Audio as it arrives,
// so the first sentence plays while the rest is still being spoken.
window.gridless = window.gridless || {};

(function () {
  function warm(url) {
    fetch(url, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  }

  const MIME_CHOICES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4', 'audio/ogg;codecs=opus'];

  function pickMime() {
    if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) return '';
    return MIME_CHOICES.find((m) => MediaRecorder.isTypeSupported(m)) || '';
  }

  function clock(seconds) {
    const s = Math.floor(seconds);
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  // the message box is a NiceGUI textarea: set its value the way typing would, so the
  // server side sees it too
  function appendToBox(selector, text) {
    const box = document.querySelector(selector + ' textarea') || document.querySelector(selector);
    if (!box || !text) return;
    const current = box.value;
    const piece = text.trim();
    if (!piece) return;
    box.value = current && !/\s$/.test(current) ? current + ' ' + piece : current + piece;
    box.dispatchEvent(new Event('input', { bubbles: true }));
  }

  class Dictation {
    constructor(options) {
      this.button = options.buttonEl || document.querySelector(options.button);
      this.status = document.querySelector(options.status);
      this.box = options.box;
      this.language = options.language || '';
      this.state = 'idle';
      this.recorder = null;
      this.stream = null;
      this.startedAt = 0;
      this.timer = null;
      this.pressedAt = 0;
      this.fileInput = null;
    }

    show(state, text, level) {
      this.state = state;
      if (this.button) this.button.dataset.state = state;
      if (!this.status) return;
      this.status.dataset.state = state;
      this.status.hidden = state === 'idle';
      const label = this.status.querySelector('.gl-mic-text');
      if (label) label.textContent = text || '';
      const meter = this.status.querySelector('.gl-mic-level');
      if (meter) meter.style.width = Math.round(Math.min(1, level || 0) * 100) + '%';
    }

    live() {
      return window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder;
    }

    // tap: start, tap again: stop. Hold: stop on release.
    press() {
      if (this.state === 'recording') { this.stop(); return; }
      if (this.state === 'starting' || this.state === 'transcribing') return;
      if (!this.live()) { this.pickFile(); return; }
      this.pressedAt = performance.now();
      this.start();
    }

    release() {
      if (this.state === 'recording' && this.pressedAt && performance.now() - this.pressedAt > 600) this.stop();
      this.pressedAt = 0;
    }

    pickFile() {
      if (!this.fileInput) {
        this.fileInput = document.createElement('input');
        this.fileInput.type = 'file';
        this.fileInput.accept = 'audio/*';
        this.fileInput.setAttribute('capture', '');
        this.fileInput.hidden = true;
        this.fileInput.dataset.testid = 'mic-file';
        this.fileInput.addEventListener('change', () => {
          const file = this.fileInput.files && this.fileInput.files[0];
          this.fileInput.value = '';
          if (file) this.upload(file, file.name);
        });
        document.body.appendChild(this.fileInput);
      }
      this.fileInput.click();
    }

    async start() {
      this.show('starting', 'Starting the microphone…');
      warm('/api/transcripts/warm');  // the model loads while the person speaks
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      } catch (err) {
        this.show('error', err && err.name === 'NotAllowedError'
          ? 'The microphone is blocked for this page; allow it in the browser settings.'
          : 'No microphone could be opened (' + (err && err.name || err) + ').');
        return;
      }
      const mime = pickMime();
      const chunks = [];
      this.recorder = new MediaRecorder(this.stream, mime ? { mimeType: mime } : undefined);
      this.recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
      this.recorder.onstop = () => {
        this.release_devices();
        const blob = new Blob(chunks, { type: this.recorder.mimeType || mime || 'audio/webm' });
        this.recorder = null;
        if (blob.size === 0) { this.show('error', 'Nothing was recorded.'); return; }
        this.upload(blob, 'Recording');
      };
      const levels = this.meter(this.stream);
      this.startedAt = performance.now();
      this.recorder.start(250);
      this.show('recording', 'Recording 0:00', 0);
      this.timer = setInterval(() => {
        const seconds = (performance.now() - this.startedAt) / 1000;
        this.show('recording', 'Recording ' + clock(seconds) + ' · tap to stop', levels());
      }, 100);
    }

    meter(stream) {
      try {
        const Ctx = window.AudioContext || window.webkitAudioContext;
        this.audio = new Ctx();
        const analyser = this.audio.createAnalyser();
        analyser.fftSize = 512;
        this.audio.createMediaStreamSource(stream).connect(analyser);
        const data = new Uint8Array(analyser.fftSize);
        return () => {
          analyser.getByteTimeDomainData(data);
          let peak = 0;
          for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
          return peak / 128;
        };
      } catch (e) {
        return () => 0;
      }
    }

    stop() {
      if (this.timer) { clearInterval(this.timer); this.timer = null; }
      if (this.recorder && this.recorder.state !== 'inactive') {
        this.show('transcribing', 'Transcribing…');
        this.recorder.stop();
      }
    }

    release_devices() {
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
      if (this.audio) { this.audio.close().catch(() => {}); this.audio = null; }
    }

    async upload(blob, name) {
      this.show('transcribing', 'Transcribing…');
      const params = new URLSearchParams({ stream: '1', name: name || '' });
      if (this.language) params.set('language', this.language);
      let response;
      try {
        response = await fetch('/api/transcripts?' + params, {
          method: 'POST', body: blob, credentials: 'same-origin',
          headers: { 'Content-Type': blob.type || 'application/octet-stream' },
        });
      } catch (e) {
        this.show('error', 'The recording could not be sent: the connection was lost.');
        return;
      }
      if (!response.ok) {
        let message = 'Transcribing failed (HTTP ' + response.status + ').';
        try { const body = await response.json(); message = body.error.message || message; } catch (e) { /* keep */ }
        this.show('error', message);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      let finished = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line);
          if (event.type === 'segment') {
            appendToBox(this.box, event.text);
            this.show('transcribing', 'Transcribing… ' + clock(event.end));
          } else if (event.type === 'done') {
            finished = true;
            this.show('done', event.text ? 'Done' : 'No speech was heard.');
            setTimeout(() => { if (this.state === 'done') this.show('idle'); }, 2500);
          } else if (event.type === 'error') {
            finished = true;
            this.show('error', event.message || 'Transcribing failed.');
          }
        }
      }
      if (!finished) this.show('error', 'The connection ended before the transcript was complete.');
    }
  }

  // The microphone button is found by its data attributes when it is pressed, so it works
  // from the moment the page shows it, before the page's own connection is up.
  const LANGUAGE_KEY = 'gridless.dictationLanguage';
  const dictations = new WeakMap();

  function dictationFor(button) {
    let dictation = dictations.get(button);
    if (!dictation) {
      dictation = new Dictation({ buttonEl: button, status: button.dataset.glStatus, box: button.dataset.glBox });
      dictations.set(button, dictation);
    }
    dictation.language = button.dataset.glLanguage === 'en' ? 'en' : (localStorage.getItem(LANGUAGE_KEY) || '');
    window.gridless.currentDictation = dictation;
    return dictation;
  }

  function micOf(event) {
    const button = event.target && event.target.closest ? event.target.closest('[data-gl-mic]') : null;
    return button && !button.disabled && button.getAttribute('aria-disabled') !== 'true' ? button : null;
  }

  // live recording starts on press (so holding works); the device's recorder opens on
  // click, which browsers count as the gesture a file picker needs
  document.addEventListener('pointerdown', (e) => {
    const button = micOf(e);
    if (button && e.button === 0) { const d = dictationFor(button); if (d.live()) d.press(); }
  });
  document.addEventListener('pointerup', (e) => { const button = micOf(e); if (button) dictationFor(button).release(); });
  document.addEventListener('click', (e) => {
    const button = micOf(e);
    if (button) { const d = dictationFor(button); if (!d.live()) d.press(); }
  });
  document.addEventListener('keydown', (e) => {
    const button = micOf(e);
    if (button && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); dictationFor(button).press(); }
  });
  window.gridless.setDictationLanguage = function (code) {
    localStorage.setItem(LANGUAGE_KEY, code);
    if (window.gridless.currentDictation) window.gridless.currentDictation.language = code;
  };

  // reading aloud -------------------------------------------------------------------------

  const AUTO_KEY = 'gridless.autoRead';
  const USED_KEY = 'gridless.usedVoice';
  let context = null;
  let playing = null;

  function audioContext() {
    if (!context) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      context = new Ctx();
    }
    if (context.state === 'suspended') context.resume().catch(() => {});
    return context;
  }

  // browsers start audio only after a gesture: unlock on the first one when reading aloud
  // automatically is on, so an answer that finishes later may play
  ['pointerdown', 'keydown'].forEach((type) => document.addEventListener(type, () => {
    if (localStorage.getItem(AUTO_KEY) === '1') audioContext();
  }, { capture: true }));

  function setIcon(button, name) {
    const icon = button && button.querySelector('.q-icon');
    if (icon) icon.textContent = name;
    if (button) button.dataset.state = name === 'stop' ? 'playing' : 'idle';
  }

  function stopPlaying() {
    if (!playing) return;
    playing.abort.abort();
    playing.sources.forEach((s) => { try { s.stop(); } catch (e) { /* already ended */ } });
    setIcon(playing.button, 'volume_up');
    playing = null;
  }

  async function speak(messageId, button) {
    localStorage.setItem(USED_KEY, '1');
    const wasThis = playing && playing.messageId === messageId;
    stopPlaying();
    if (wasThis) return;
    const ctx = audioContext();
    const abort = new AbortController();
    const session = { messageId, button, abort, sources: [], firstAudioAt: 0, requestedAt: performance.now() };
    playing = session;
    setIcon(button, 'stop');
    let response;
    try {
      response = await fetch('/api/speech/messages/' + encodeURIComponent(messageId),
        { credentials: 'same-origin', signal: abort.signal, cache: 'no-store' });
    } catch (e) {
      if (playing === session) stopPlaying();
      return;
    }
    if (!response.ok) {
      let message = 'Reading aloud failed (HTTP ' + response.status + ').';
      try { const body = await response.json(); message = body.error.message || message; } catch (e) { /* keep */ }
      if (playing === session) stopPlaying();
      window.dispatchEvent(new CustomEvent('gridless-speak-error', { detail: message }));
      return;
    }
    const reader = response.body.getReader();
    let header = null;
    let pending = new Uint8Array(0);
    let at = 0;
    let lastEnd = 0;
    for (;;) {
      let chunk;
      try { chunk = await reader.read(); } catch (e) { break; }
      if (chunk.done || playing !== session) break;
      const joined = new Uint8Array(pending.length + chunk.value.length);
      joined.set(pending); joined.set(chunk.value, pending.length);
      let bytes = joined;
      if (!header) {
        if (bytes.length < 44) { pending = bytes; continue; }
        header = { rate: new DataView(bytes.buffer, bytes.byteOffset).getUint32(24, true) };
        bytes = bytes.subarray(44);
      }
      const usable = bytes.length - (bytes.length % 2);
      pending = bytes.slice(usable);
      if (usable === 0) continue;
      const samples = new Int16Array(bytes.slice(0, usable).buffer);
      const buffer = ctx.createBuffer(1, samples.length, header.rate);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(ctx.destination);
      at = Math.max(at, ctx.currentTime + 0.05);
      source.start(at);
      if (!session.firstAudioAt) {
        session.firstAudioAt = performance.now();
        window.gridless.lastSpeech = { firstAudioMs: session.firstAudioAt - session.requestedAt };
      }
      at += buffer.duration;
      lastEnd = at;
      session.sources.push(source);
    }
    if (playing === session) {
      const left = Math.max(0, lastEnd - ctx.currentTime);
      setTimeout(() => { if (playing === session) { playing = null; setIcon(button, 'volume_up'); } }, left * 1000);
    }
  }

  window.gridless.speak = function (messageId, buttonSelector) {
    return speak(messageId, document.querySelector(buttonSelector));
  };
  window.gridless.stopSpeaking = stopPlaying;
  window.gridless.autoRead = function (enabled) {
    if (enabled === undefined) return localStorage.getItem(AUTO_KEY) === '1';
    localStorage.setItem(AUTO_KEY, enabled ? '1' : '0');
    if (enabled) { audioContext(); warm('/api/speech/warm'); }
    return enabled;
  };
  // a page that will read answers aloud loads the voice before the first answer ends
  document.addEventListener('DOMContentLoaded', () => {
    if (localStorage.getItem(AUTO_KEY) === '1') warm('/api/speech/warm');
  });
  window.gridless.readNew = function (messageId, buttonSelector) {
    if (localStorage.getItem(AUTO_KEY) === '1') speak(messageId, document.querySelector(buttonSelector));
    else if (localStorage.getItem(USED_KEY) === '1') warm('/api/speech/warm');  // a tap is likely: be ready
  };
})();

// The Transcripts page: an audio file from the device, sent as the raw body.
window.gridless.uploadAudio = async function (selector) {
  const input = document.querySelector(selector);
  const file = input && input.files && input.files[0];
  if (!file) return { error: 'Choose an audio file first' };
  input.value = '';
  let response;
  try {
    response = await fetch('/api/transcripts?name=' + encodeURIComponent(file.name.slice(0, 200)), {
      method: 'POST', body: file, credentials: 'same-origin',
      headers: { 'Content-Type': file.type || 'application/octet-stream' },
    });
  } catch (e) {
    return { error: 'The file could not be sent: the connection was lost.' };
  }
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) return { error: (body.error && body.error.message) || ('HTTP ' + response.status) };
  return body;
};
