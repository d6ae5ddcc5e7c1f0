// A file from the device sent as the raw request body: chosen in a file input, pasted, or dropped.
//
// A tap on anything the element wraps opens the chooser in the browser, within the tap: a
// chooser opened later by the server may be refused as not coming from the person. With
// `auto` the file is sent as soon as it is chosen; otherwise `send(params)` sends it (the
// Models page: choose, then Upload). What happens is reported by the events of `sendFile`.
import { _ } from '/static/i18n.js';
import { failure, sendFile, timestamp } from '/static/upload.js';

export default {
  template: `
    <div class="gl-contents">
      <div class="gl-contents" @click="pick"><slot></slot></div>
      <input ref="input" type="file" :accept="accept || null" :multiple="multiple" :hidden="!visible"
             :aria-label="label || texts.choose" :data-testid="testid || null" @change="chosen">
      <progress v-if="sent !== null" class="gl-upload-progress" max="1" :value="sent" :aria-label="texts.sending"></progress>
    </div>`,
  props: {
    url: String,
    method: { type: String, default: 'POST' },
    accept: String,
    multiple: Boolean,
    visible: Boolean,
    testid: String,
    nameParam: { type: String, default: 'name' },
    params: { type: Object, default: () => ({}) },
    auto: { type: Boolean, default: true },
    paste: Boolean,
    drop: Boolean,
    showProgress: Boolean,
    label: String,  // the name of the file input where it is shown (`visible`)
  },
  data() {
    return { sent: null, texts: { choose: _('Choose a file'), sending: _('Sending the file') } };
  },
  mounted() {
    this.listeners = [];
    if (this.paste) this.listen('paste', this.pasted);
    if (this.drop) { this.listen('dragover', this.dragging); this.listen('drop', this.dropped); }
  },
  unmounted() {
    this.listeners.forEach(([type, handler]) => document.removeEventListener(type, handler));
  },
  methods: {
    listen(type, handler) {
      document.addEventListener(type, handler);
      this.listeners.push([type, handler]);
    },
    pick() {
      this.$refs.input.click();
    },
    chosen() {
      if (!this.auto) return;
      const files = Array.from(this.$refs.input.files || []);
      this.$refs.input.value = '';
      for (const file of files) this.upload(file, file.name, {});
    },
    send(params) {
      const file = this.$refs.input.files && this.$refs.input.files[0];
      if (!file) {
        this.$emit('failed', { name: '', error: failure('no_file', _('Choose a file first.')).error });
        return;
      }
      this.upload(file, file.name, params || {}).then((result) => { if (!result.error) this.$refs.input.value = ''; });
    },
    upload(file, name, params) {
      const onProgress = this.showProgress ? (loaded, total) => { this.sent = loaded / total; } : null;
      if (this.showProgress) this.sent = 0;
      const options = { method: this.method, name, nameParam: this.nameParam, params: { ...this.params, ...params }, onProgress };
      return sendFile(this, this.url, file, options)
        .finally(() => { this.sent = null; });
    },
    // a picture pasted into the page, or files dropped anywhere on it
    pasted(event) {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (!files.length) return;
      event.preventDefault();  // not the file's name as text
      for (const file of files) {
        this.upload(file, file.name && file.name !== 'image.png' ? file.name : `pasted-${timestamp()}.png`, {});
      }
    },
    dragging(event) {
      if (event.dataTransfer && Array.from(event.dataTransfer.types || []).includes('Files')) {
        event.preventDefault();
        event.dataTransfer.dropEffect = 'copy';
      }
    },
    dropped(event) {
      const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
      if (!files.length) return;
      event.preventDefault();  // the browser would otherwise open the file in place of the app
      for (const file of files) this.upload(file, file.name, {});
    },
  },
};
