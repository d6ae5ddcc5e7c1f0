// The voice conversation: one tap opens a full-screen view that listens, hears the end of
// the person's turn by itself (the server's voice activity detection), shows both sides'
// words, and plays the answer while it is written; speaking over it stops it (barge-in).
//
// The microphone goes to the server over a web socket as 16 kHz PCM (static/voice_capture.js);
// the answer's sound comes back as PCM per turn and is scheduled through Web Audio. The screen
// stays awake while the view is open (Wake Lock, where the browser has it).
//
// For measuring, each turn's `latencyMs` is the time from the end of the person's speech (the
// moment the frame holding the last speech sample was captured) to the first sound of the
// answer (when its first buffer is scheduled to play); turns are kept in `window.gridlessVoice`.
import { audioContext, stopSpeaking } from '/static/speech.js';
import { _ } from '/static/i18n.js';

const RATE = 16000;
const KEEP_FRAMES = 1000;  // 32 s of capture times, to place the end of speech

export default {
  template: `
    <span>
      <q-btn flat round dense icon="graphic_eq" :aria-label="texts.open" :title="texts.open"
             data-testid="voice-mode-open" @click="open"></q-btn>
      <q-dialog v-model="shown" maximized persistent @hide="closed" @escape-key="shown = false">
        <div class="gl-voice column items-center no-wrap bg-white text-black" role="dialog" aria-modal="true"
             style="width: 100%; height: 100%; max-width: 48rem; margin: 0 auto"
             aria-labelledby="gl-voice-title" data-testid="voice-mode" :data-state="state">
          <div class="row items-center full-width no-wrap q-pa-sm">
            <h2 id="gl-voice-title" class="gl-voice-title col text-h6 q-my-none">{{ texts.title }}</h2>
            <q-btn flat round icon="close" :aria-label="texts.close" data-testid="voice-close"
                   @click="shown = false"></q-btn>
          </div>
          <div class="gl-voice-state text-h5 q-my-md" data-testid="voice-state" role="status" aria-live="polite">{{ stateText }}</div>
          <div class="gl-voice-log col full-width q-px-md" style="overflow-y: auto; font-size: 1.125rem"
               data-testid="voice-log" ref="log">
            <p v-for="line in lines" :key="line.key" :class="'gl-voice-' + line.who"
               :style="line.who === 'you' ? 'text-align: right; color: #1e3a8a' : ''"
               :data-testid="'voice-' + line.who">{{ line.text }}</p>
          </div>
          <p v-if="error" class="gl-voice-error text-negative q-px-md" role="alert" data-testid="voice-error">{{ error }}</p>
          <q-btn round unelevated color="negative" icon="stop" size="xl" class="gl-voice-stop q-my-lg"
                 :aria-label="texts.stop" data-testid="voice-stop" @click="stop"></q-btn>
        </div>
      </q-dialog>
    </span>`,
  props: {
    conversation: String,
    language: String,
  },
  data() {
    return {
      shown: false, state: 'off', lines: [], error: '', conversationId: this.conversation || null,
      texts: {
        open: _('Voice conversation'), title: _('Voice conversation'), close: _('Close the voice conversation'),
        stop: _('Stop'),
      },
    };
  },
  computed: {
    stateText() {
      return {
        off: '', connecting: _('Starting…'), listening: _('Listening…'), hearing: _('Hearing you…'),
        thinking: _('Thinking…'), speaking: _('Speaking — talk to interrupt'),
      }[this.state] || '';
    },
  },
  unmounted() {
    this.teardown();
  },
  methods: {
    async open() {
      this.shown = true;
      this.error = '';
      this.state = 'connecting';
      this.lines = [];  // the server numbers a new session's turns from 1 again
      this.session = null;
      this.silencedTurn = undefined;
      this.lastTurn = 0;
      this.playingTurn = undefined;
      this.playCtx = audioContext();  // within the tap: browsers start audio only after a gesture
      stopSpeaking();
      window.gridlessVoice = window.gridlessVoice || { turns: [] };
      try {
        await this.startMicrophone();
        this.connect();
      } catch (e) {
        this.error = e && e.name === 'NotAllowedError'
          ? _('The microphone is not allowed. Allow it in the browser to talk.')
          : _('The microphone could not be started: {reason}', { reason: (e && e.message) || e });
        this.state = 'off';
        this.teardown();
        return;
      }
      this.keepAwake();
    },
    async startMicrophone() {
      if (!navigator.mediaDevices || !window.AudioWorkletNode) {
        throw new Error(_('this browser cannot record here (a secure https address is needed)'));
      }
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      const Ctx = window.AudioContext || window.webkitAudioContext;
      // at 16 kHz the browser's own resampler brings the microphone down (band-limited, unlike the
      // worklet's averaging, which aliases what lies above 8 kHz into the speech); a browser that
      // cannot connect a microphone to a context at another rate gets one at the device's rate
      let source;
      try {
        this.micCtx = new Ctx({ sampleRate: RATE });
        source = this.micCtx.createMediaStreamSource(this.stream);
      } catch (e) {
        if (this.micCtx) this.micCtx.close().catch(() => {});
        this.micCtx = new Ctx();
        source = this.micCtx.createMediaStreamSource(this.stream);
      }
      await this.micCtx.audioWorklet.addModule('/static/voice_capture.js');
      this.node = new AudioWorkletNode(this.micCtx, 'gridless-voice-capture');
      this.captured = [];
      this.samples = 0;
      this.node.port.onmessage = (event) => this.captureFrame(event.data);
      source.connect(this.node);
    },
    captureFrame(data) {
      this.samples += data.pcm.byteLength / 2;
      this.captured.push([this.samples, performance.now()]);
      if (this.captured.length > KEEP_FRAMES) this.captured.splice(0, this.captured.length - KEEP_FRAMES);
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(data.pcm);
    },
    capturedAt(sample) {
      // the wall time when `sample` was captured: the frame that held it, less what came after it
      for (const [end, at] of this.captured) {
        if (end >= sample) return at - ((end - sample) * 1000) / RATE;
      }
      return performance.now();
    },
    connect() {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const query = new URLSearchParams();
      if (this.conversationId) query.set('conversation', this.conversationId);
      if (this.language) query.set('language', this.language);
      this.socket = new WebSocket(`${scheme}://${location.host}/api/voice?${query}`);
      this.socket.binaryType = 'arraybuffer';
      this.socket.onmessage = (event) => {
        if (typeof event.data === 'string') this.onEvent(JSON.parse(event.data));
        else this.onAudio(event.data);
      };
      this.socket.onclose = () => {
        if (this.shown && this.state !== 'off') {
          this.error = this.error || _('The connection to gridless was lost.');
          this.state = 'off';
        }
      };
    },
    onEvent(event) {
      const turns = window.gridlessVoice.turns;
      const turn = () => {
        let found = turns.find((t) => t.id === this.turnKey(event.turn));
        if (!found) {
          found = { id: this.turnKey(event.turn), turn: event.turn };
          turns.push(found);
        }
        return found;
      };
      switch (event.type) {
        case 'listening':
          if (this.state !== 'speaking' || !this.playingSources().length) this.state = 'listening';
          break;
        case 'hearing':
          this.silence();  // barge-in: the person speaks, the answer stops
          this.state = 'hearing';
          break;
        case 'thinking':
          this.state = 'thinking';
          this.lastTurn = Math.max(this.lastTurn || 0, event.turn);
          turn().endOfSpeechAt = this.capturedAt(event.speech_end);
          break;
        case 'nothing_heard':
          this.state = 'listening';
          break;
        case 'heard':
          turn().heard = event.text;
          this.say('you', event.text, `you-${this.turnKey(event.turn)}`);
          break;
        case 'conversation':
          this.conversationId = event.id;
          this.$emit('conversation', { id: event.id });
          break;
        case 'answer':
          turn().answer = event.text;
          this.say('gridless', event.text, `answer-${this.turnKey(event.turn)}`);
          break;
        case 'answered':
          turn().status = event.status;
          if (event.error) this.error = event.error;
          this.$emit('answered', { message_id: event.message_id });
          break;
        case 'timings':
          turn().server = event;
          break;
        case 'stopped':
          this.silence();
          break;
        case 'error':
          this.error = event.message;
          if (event.turn === undefined) this.state = 'off';
          break;
        default:
          break;
      }
    },
    turnKey(number) {
      if (!this.session) this.session = Math.random().toString(36).slice(2, 8);
      return `${this.session}-${number}`;
    },
    say(who, text, key) {
      const line = this.lines.find((l) => l.key === key);
      if (line) line.text = text;
      else this.lines.push({ who, text, key });
      this.$nextTick(() => { const log = this.$refs.log; if (log) log.scrollTop = log.scrollHeight; });
    },
    onAudio(buffer) {
      const view = new DataView(buffer);
      const number = view.getUint32(0, true);
      const rate = view.getUint32(4, true);
      if (this.silencedTurn !== undefined && number <= this.silencedTurn) return;  // stopped or talked over
      const samples = new Int16Array(buffer, 8, (buffer.byteLength - 8) >> 1);
      if (!samples.length) return;
      const ctx = this.playCtx;
      const audio = ctx.createBuffer(1, samples.length, rate);
      const channel = audio.getChannelData(0);
      for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
      const source = ctx.createBufferSource();
      source.buffer = audio;
      source.connect(ctx.destination);
      this.at = Math.max(this.at || 0, ctx.currentTime + 0.02);
      source.start(this.at);
      const record = window.gridlessVoice.turns.find((t) => t.id === this.turnKey(number));
      if (record && record.firstSoundAt === undefined) {
        record.firstSoundAt = performance.now() + (this.at - ctx.currentTime) * 1000;
        if (record.endOfSpeechAt !== undefined) record.latencyMs = record.firstSoundAt - record.endOfSpeechAt;
      }
      this.at += audio.duration;
      this.sources = (this.sources || []).filter((s) => s.endsAt > ctx.currentTime);
      source.endsAt = this.at;
      source.turn = number;
      this.sources.push(source);
      this.playingTurn = number;
      this.state = 'speaking';
      clearTimeout(this.doneTimer);
      this.doneTimer = setTimeout(() => {
        if (this.state === 'speaking') this.state = 'listening';
      }, (this.at - ctx.currentTime) * 1000 + 50);
    },
    playingSources() {
      const now = this.playCtx ? this.playCtx.currentTime : 0;
      return (this.sources || []).filter((s) => s.endsAt > now);
    },
    silence() {
      (this.sources || []).forEach((s) => { try { s.stop(); } catch (e) { /* ended */ } });
      this.sources = [];
      this.at = 0;
      const latest = Math.max(this.lastTurn || 0, this.playingTurn || 0);
      if (latest) this.silencedTurn = latest;
      clearTimeout(this.doneTimer);
    },
    stop() {
      this.silence();
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'stop' }));
      if (this.state !== 'off') this.state = 'listening';
    },
    async keepAwake() {
      try {
        if (navigator.wakeLock && this.shown) {
          const lock = await navigator.wakeLock.request('screen');
          if (!this.shown) { lock.release().catch(() => {}); return; }  // closed while it was asked for
          this.wakeLock = lock;
        }
      } catch (e) { /* not allowed here (battery saver, no https): the screen may sleep */ }
      if (!this.shown) return;
      if (!this.onVisible) {
        this.onVisible = () => { if (document.visibilityState === 'visible' && this.shown) this.keepAwake(); };
        document.addEventListener('visibilitychange', this.onVisible);
      }
    },
    closed() {
      this.teardown();
      this.state = 'off';
      this.$emit('closed', { conversation: this.conversationId });
    },
    teardown() {
      this.silence();
      if (this.socket) { try { this.socket.close(); } catch (e) { /* closed */ } this.socket = null; }
      if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); this.node = null; }
      if (this.stream) { this.stream.getTracks().forEach((t) => t.stop()); this.stream = null; }
      if (this.micCtx) { this.micCtx.close().catch(() => {}); this.micCtx = null; }
      if (this.wakeLock) { this.wakeLock.release().catch(() => {}); this.wakeLock = null; }
      if (this.onVisible) { document.removeEventListener('visibilitychange', this.onVisible); this.onVisible = null; }
    },
  },
};
