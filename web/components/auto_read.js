// The switch that reads each new answer aloud on this device. The choice is kept in the
// browser. While it is on, the first gesture on the page unlocks audio (browsers start audio
// only after one), so an answer that finishes later may play, and the voice is loaded early.
// While it is on, a new answer is read as it is being written (`readLive`): the switch, which
// outlives the page's redraws, owns that playing.
import { audioContext, autoRead, isPlaying, setAutoRead, speak, stopSpeaking, warm } from '/static/speech.js';

export default {
  template: `<q-btn :class="{ 'gl-on': on }" :aria-pressed="on ? 'true' : 'false'" @click="toggle"><slot></slot></q-btn>`,
  props: {
    warmUrl: String,
  },
  data() {
    return { on: autoRead() };  // drawn as it is from the first frame
  },
  mounted() {
    if (this.on) warm(this.warmUrl);
    this.unlock = () => { if (autoRead()) audioContext(); };
    ['pointerdown', 'keydown'].forEach((type) => document.addEventListener(type, this.unlock, { capture: true }));
  },
  unmounted() {
    ['pointerdown', 'keydown'].forEach((type) => document.removeEventListener(type, this.unlock, { capture: true }));
    if (isPlaying(this)) stopSpeaking();
  },
  methods: {
    toggle() {
      this.on = !this.on;
      setAutoRead(this.on);
      if (this.on) { audioContext(); warm(this.warmUrl); }
      else if (isPlaying(this)) stopSpeaking();
    },
    // called by the page when an answer starts being written: read it as it comes, if this device reads answers
    readLive(url) {
      if (autoRead()) speak(url, this);
    },
    // the player's news
    firstAudio(ms) {
      this.$el.dataset.firstAudioMs = String(Math.round(ms));
    },
    ended() {},
    failed(message) {
      this.$emit('failed', { message });
    },
  },
};
