// What the microphone is doing, above the message box: recording (with a level meter and the
// seconds), transcribing, done, or what went wrong. The microphone button drives it by calling
// `show`, about ten times a second while it records. A screen reader hears each new state once
// (not the seconds ticking), and what went wrong at once (static/app.js: `gridlessAnnounce`).
export default {
  template: `
    <div class="gl-mic-status" data-testid="mic-status" :data-state="state" :hidden="state === 'idle'">
      <span class="gl-mic-text" data-testid="mic-text">{{ text }}</span>
      <span class="gl-mic-meter" aria-hidden="true"><span class="gl-mic-level" :style="{ width: level + '%' }"></span></span>
    </div>`,
  data() {
    return { state: 'idle', text: '', level: 0 };
  },
  methods: {
    show(state, text, level) {
      const changed = state !== this.state;
      this.state = state;
      if (changed && state !== 'idle' && text && window.gridlessAnnounce) window.gridlessAnnounce(text, state === 'error');
      this.text = text;
      this.level = Math.round(Math.min(1, level) * 100);
    },
  },
};
