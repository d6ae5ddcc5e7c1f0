// The switch that reads each new answer aloud on this device. The choice is kept in the
// browser. While it is on, the first gesture on the page unlocks audio (browsers start audio
// only after one), so an answer that finishes later may play, and the voice is loaded early.
import { audioContext, autoRead, setAutoRead, warm } from '/static/speech.js';

export default {
  template: `<q-btn :class="{ 'gl-on': on }" @click="toggle"><slot></slot></q-btn>`,
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
  },
  methods: {
    toggle() {
      this.on = !this.on;
      setAutoRead(this.on);
      if (this.on) { audioContext(); warm(this.warmUrl); }
    },
  },
};
