// The microphone button: dictation into the message box.
//
// Recording uses MediaRecorder (WebM/Opus or MP4, as the browser offers) where the page is a
// secure context; elsewhere (a tablet on plain http) browsers allow no live recording, so the
// same button opens the device's own recorder through a file input. Either way the audio goes
// out through the upload helper and the transcript's segments come back as NDJSON while Whisper
// decodes them; each is emitted as `transcribed` {text}. When all have come, `finished` is
// emitted and the button shows "Done" only once the server answers `showDone()`, after the page
// has put every word in the box. The state (and the level meter) is shown by the status
// element given as `status`, and as `data-state` on the button.
import { _ } from '/static/i18n.js';
import { sendRaw } from '/static/upload.js';

const MIME_CHOICES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4', 'audio/ogg;codecs=opus'];
const LANGUAGE_KEY = 'gridless.dictationLanguage';
const HOLD_MS = 600;  // held longer than this, the button stops recording when released

function pickMime() {
  if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) return '';
  return MIME_CHOICES.find((m) => MediaRecorder.isTypeSupported(m)) || '';
}

function clock(seconds) {
  const s = Math.floor(seconds);
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
}

export default {
  inheritAttrs: false,
  template: `
    <span class="gl-contents">
      <q-btn v-bind="$attrs" icon="mic" :disable="disable" :data-state="state"
             :aria-pressed="state === 'recording' ? 'true' : 'false'"
             @pointerdown="down" @pointerup="up" @click="clicked" @keydown="key"><slot></slot></q-btn>
      <input ref="input" type="file" accept="audio/*" capture hidden data-testid="mic-file" @change="chosen">
    </span>`,
  props: {
    url: String,
    warmUrl: String,
    language: String,  // a fixed language ('en' for English-only models), or '' for the person's choice
    status: Number,
    disable: Boolean,
  },
  data() {
    return { state: 'idle' };
  },
  unmounted() {
    this.stopClock();
    if (this.recorder && this.recorder.state !== 'inactive') { this.recorder.onstop = null; this.recorder.stop(); }
    this.releaseDevices();
  },
  methods: {
    show(state, text, level) {
      this.state = state;
      const status = getElement(this.status);
      if (status) status.show(state, text || '', level || 0);
    },
    live() {
      return window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder;
    },
    chosenLanguage() {
      return this.language || localStorage.getItem(LANGUAGE_KEY) || '';
    },
    setLanguage(code) {
      localStorage.setItem(LANGUAGE_KEY, code);
    },
    // live recording starts on press (so holding works); the device's recorder opens on click,
    // which browsers count as the gesture a file picker needs
    down(event) {
      if (event.button === 0 && !this.disable && this.live()) this.press();
    },
    up() {
      if (this.state === 'recording' && this.pressedAt && performance.now() - this.pressedAt > HOLD_MS) this.stop();
      this.pressedAt = 0;
    },
    clicked() {
      if (!this.disable && !this.live()) this.press();
    },
    key(event) {
      if ((event.key === 'Enter' || event.key === ' ') && !this.disable && this.live()) {
        event.preventDefault();
        this.press();
      }
    },
    // tap: start, tap again: stop
    press() {
      if (this.state === 'recording') { this.stop(); return; }
      if (this.state === 'starting' || this.state === 'transcribing') return;
      if (!this.live()) { this.$refs.input.click(); return; }
      this.pressedAt = performance.now();
      this.start();
    },
    chosen() {
      const file = this.$refs.input.files && this.$refs.input.files[0];
      this.$refs.input.value = '';
      if (file) this.transcribe(file, file.name);
    },
    async start() {
      this.show('starting', _('Starting the microphone…'));
      fetch(this.warmUrl, { method: 'POST', credentials: 'same-origin' }).catch(() => {});  // loads while one speaks
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      } catch (err) {
        this.show('error', err && err.name === 'NotAllowedError'
          ? _('The microphone is blocked for this page; allow it in the browser settings.')
          : _('No microphone could be opened ({error}).', { error: (err && err.name) || err }));
        return;
      }
      const mime = pickMime();
      const chunks = [];
      const recorder = new MediaRecorder(this.stream, mime ? { mimeType: mime } : undefined);
      this.recorder = recorder;
      recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
      recorder.onstop = () => {
        this.releaseDevices();
        const blob = new Blob(chunks, { type: recorder.mimeType || mime || 'audio/webm' });
        this.recorder = null;
        if (blob.size === 0) { this.show('error', _('Nothing was recorded.')); return; }
        this.transcribe(blob, _('Recording'));
      };
      const level = this.meter(this.stream);
      const startedAt = performance.now();
      recorder.start(250);
      this.show('recording', _('Recording {time}', { time: clock(0) }), 0);
      this.clock = setInterval(() => {
        const seconds = (performance.now() - startedAt) / 1000;
        this.show('recording', _('Recording {time} · tap to stop', { time: clock(seconds) }), level());
      }, 100);
    },
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
    },
    stopClock() {
      if (this.clock) { clearInterval(this.clock); this.clock = null; }
    },
    stop() {
      this.stopClock();
      if (this.recorder && this.recorder.state !== 'inactive') {
        this.show('transcribing', _('Transcribing…'));
        this.recorder.stop();
      }
    },
    releaseDevices() {
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
      if (this.audio) { this.audio.close().catch(() => {}); this.audio = null; }
    },
    async transcribe(blob, name) {
      this.show('transcribing', _('Transcribing…'));
      const params = { stream: '1', name: (name || '').slice(0, 200) };
      const language = this.chosenLanguage();
      if (language) params.language = language;
      let buffer = '';
      let outcome = null;  // the stream's last word: done or error
      const result = await sendRaw(this.url, blob, {
        params,
        onText: (piece) => {
          buffer += piece;
          let newline;
          while ((newline = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, newline);
            buffer = buffer.slice(newline + 1);
            if (line.trim()) outcome = this.heard(JSON.parse(line)) || outcome;
          }
        },
      });
      if (result.error) this.show('error', result.error.message);
      else if (!outcome) this.show('error', _('The connection ended before the transcript was complete.'));
      else if (outcome.type === 'error') this.show('error', outcome.message || _('Transcribing failed.'));
      else {
        this.doneText = outcome.text ? _('Done') : _('No speech was heard.');
        this.$emit('finished', { heard: Boolean(outcome.text) });
      }
    },
    heard(event) {
      if (event.type === 'segment') {
        this.$emit('transcribed', { text: event.text });
        this.show('transcribing', _('Transcribing… {time}', { time: clock(event.end) }));
        return null;
      }
      return event.type === 'done' || event.type === 'error' ? event : null;
    },
    // the server put every word in the box
    showDone() {
      if (this.state !== 'transcribing') return;
      this.show('done', this.doneText || _('Done'));
      setTimeout(() => { if (this.state === 'done') this.show('idle'); }, 2500);
    },
  },
};
