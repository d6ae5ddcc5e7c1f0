// Documents for a collection: several files chosen at once, each sent in turn as the raw request
// body, each with its own progress bar while it goes out.
//
// One at a time: on a phone the files share one connection and one disk, and the first is ready
// sooner. The progress stays in the browser (no message to the server per step); the server
// hears `started`, then `uploaded` or `failed` for each file (see `sendFile` in static/upload.js).
import { _, language } from '/static/i18n.js';
import { sendFile } from '/static/upload.js';

export default {
  template: `
    <div class="gl-contents">
      <div class="gl-contents" @click="pick"><slot></slot></div>
      <input ref="input" type="file" multiple :accept="accept || null" hidden
             :data-testid="testid || null" @change="chosen">
      <div v-if="files.length" class="column q-gutter-y-xs full-width" data-testid="uploads">
        <div v-for="file in files" :key="file.key" class="column full-width" data-testid="upload">
          <div class="row no-wrap items-center q-gutter-x-sm text-caption">
            <span class="ellipsis col" style="min-width: 0" data-testid="upload-name">{{ file.name }}</span>
            <span class="text-grey-8">{{ file.waiting ? waitingText : percent(file.sent) }}</span>
          </div>
          <progress max="1" :value="file.sent" :aria-label="file.name" style="width: 100%; height: 6px"></progress>
        </div>
      </div>
    </div>`,
  props: {
    url: String,
    accept: String,
    testid: String,
    waitingText: { type: String, default: () => _('Waiting') },
  },
  data() {
    return { files: [], queue: Promise.resolve(), count: 0 };
  },
  methods: {
    percent(share) {
      return new Intl.NumberFormat(language(), { style: 'percent', maximumFractionDigits: 0 }).format(share);
    },
    pick() {
      this.$refs.input.click();
    },
    chosen() {
      const chosen = Array.from(this.$refs.input.files || []);
      this.$refs.input.value = '';
      for (const file of chosen) {
        this.files.push({ key: ++this.count, name: file.name, sent: 0, waiting: true });
        const entry = this.files[this.files.length - 1];  // the reactive one: changes to it are shown
        this.queue = this.queue.then(() => this.upload(file, entry));
      }
    },
    async upload(file, entry) {
      entry.waiting = false;
      const onProgress = (loaded, total) => { entry.sent = total ? loaded / total : 1; };
      try {
        await sendFile(this, this.url, file, { name: file.name, onProgress });
      } finally {
        this.files = this.files.filter((f) => f.key !== entry.key);
      }
    },
  },
};
