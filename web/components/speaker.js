// The speaker under an answer: tap to hear it, tap again to stop. The playing is shared by the
// page (static/speech.js); this button shows whether its answer is the one playing, and when
// its first sound was scheduled (`data-first-audio-ms`, how long after the tap).
import { adopt, autoRead, isPlaying, speak, stopSpeaking, usedBefore, warm } from '/static/speech.js';

const REDRAW_MS = 1000;

export default {
  template: `
    <q-btn :icon="playing ? 'stop' : 'volume_up'" :data-state="playing ? 'playing' : 'idle'"
           :aria-pressed="playing ? 'true' : 'false'"
           :data-first-audio-ms="firstAudioMs" @click="toggle"><slot></slot></q-btn>`,
  props: {
    url: String,
    warmUrl: String,
  },
  data() {
    return { playing: false, firstAudioMs: null };
  },
  mounted() {
    // the answer may be playing already: read while it was written, by the switch or by this answer's
    // button before the page was redrawn; this button shows it now
    if (adopt(this.url, this)) this.playing = true;
  },
  unmounted() {
    // a redraw puts a new button for the same answer in its place, which takes the playing over;
    // if none does (the answer is gone from the page), it stops
    if (isPlaying(this)) setTimeout(() => { if (isPlaying(this)) stopSpeaking(); }, REDRAW_MS);
  },
  methods: {
    toggle() {
      if (isPlaying(this)) { stopSpeaking(); return; }
      this.start();
    },
    start() {
      this.playing = true;
      speak(this.url, this);
    },
    // called by the page when this answer has just been written
    readNew() {
      if (autoRead()) {
        if (adopt(this.url, this)) this.playing = true;  // read as it was written: this button now shows it
        else this.start();
      } else if (usedBefore()) warm(this.warmUrl);  // a tap is likely: be ready
    },
    // the player's news
    firstAudio(ms) {
      this.firstAudioMs = Math.round(ms);
    },
    ended() {
      this.playing = false;
    },
    failed(message) {
      this.$emit('failed', { message });
    },
  },
};
