// The speaker under an answer: tap to hear it, tap again to stop. The playing is shared by the
// page (static/speech.js); this button shows whether its answer is the one playing, and when
// its first sound was scheduled (`data-first-audio-ms`, how long after the tap).
import { adopt, autoRead, isPlaying, speak, stopSpeaking, usedBefore, warm } from '/static/speech.js';

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
  unmounted() {
    if (isPlaying(this)) stopSpeaking();
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
