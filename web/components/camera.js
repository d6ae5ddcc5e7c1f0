// The camera: a tap on what the element wraps opens a live viewfinder (shutter, front/back
// switch, close) where the page is a secure context; elsewhere (a tablet on plain http)
// browsers allow no live camera, so the same tap opens the device's own camera through a file
// input. The shutter draws the video frame to a canvas and sends a JPEG; either way the photo
// goes out through the upload helper, with its events (`started`, `uploaded`, `failed`).
//
// The viewfinder is teleported to <body>: the page's footer, where the button sits, is a
// transformed box, inside which a fixed overlay could not cover the screen.
import { _ } from '/static/i18n.js';
import { sendFile, timestamp } from '/static/upload.js';

const FACING_KEY = 'gl-camera-facing';

export default {
  template: `
    <div class="gl-contents">
      <div class="gl-contents" @click="open"><slot></slot></div>
      <input ref="input" type="file" hidden accept="image/*" capture="environment" data-testid="camera-input"
             @change="chosen">
      <Teleport to="body">
        <div v-if="shown" ref="dialog" class="gl-camera" :class="{ 'gl-flash': flash }" data-testid="camera"
             role="dialog" aria-modal="true" :aria-label="texts.camera" @keydown="trap">
          <video ref="video" autoplay muted playsinline data-testid="camera-view"
                 :class="{ 'gl-mirror': facing === 'user' }"></video>
          <div class="gl-camera-message" role="alert" data-testid="camera-message">{{ message }}</div>
          <div class="gl-camera-bar">
            <button ref="closeButton" type="button" class="gl-camera-button" :aria-label="texts.close"
                    data-testid="camera-close" @click="close"><i class="material-icons" aria-hidden="true">close</i></button>
            <button type="button" class="gl-camera-button gl-shutter" :aria-label="texts.shoot"
                    data-testid="camera-shutter" :disabled="!ready" @click="shoot"></button>
            <button type="button" class="gl-camera-button" :aria-label="texts.flip" data-testid="camera-switch"
                    :hidden="cameras < 2" @click="flip"><i class="material-icons" aria-hidden="true">cameraswitch</i></button>
          </div>
        </div>
      </Teleport>
    </div>`,
  props: {
    url: String,
  },
  data() {
    return {
      shown: false, ready: false, flash: false, message: '', cameras: 0, facing: 'environment',
      texts: { camera: _('Camera'), close: _('Close camera'), shoot: _('Take photo'), flip: _('Switch camera') },
    };
  },
  unmounted() {
    this.close();
  },
  methods: {
    live() {
      return window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
    },
    open() {
      if (!this.live()) { this.$refs.input.click(); return; }
      if (this.shown) return;
      this.facing = localStorage.getItem(FACING_KEY) || 'environment';
      this.flash = false;
      this.returnTo = document.activeElement;
      this.shown = true;
      this.onKey = (e) => { if (e.key === 'Escape') this.close(); };
      document.addEventListener('keydown', this.onKey);
      this.$nextTick(() => {
        if (this.$refs.closeButton) this.$refs.closeButton.focus();
        this.start();
      });
    },
    close() {
      this.stopStream();
      const wasShown = this.shown;
      this.shown = false;
      this.ready = false;
      if (this.onKey) { document.removeEventListener('keydown', this.onKey); this.onKey = null; }
      if (wasShown && this.returnTo && this.returnTo.isConnected) this.returnTo.focus();
      this.returnTo = null;
    },
    // the focus stays in the viewfinder while it is open
    trap(event) {
      if (event.key !== 'Tab' || !this.$refs.dialog) return;
      const buttons = Array.from(this.$refs.dialog.querySelectorAll('button')).filter((b) => !b.disabled && !b.hidden);
      if (!buttons.length) return;
      const first = buttons[0];
      const last = buttons[buttons.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
      else if (!buttons.includes(document.activeElement)) { event.preventDefault(); first.focus(); }
    },
    stopStream() {
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
    },
    async start() {
      this.stopStream();
      this.ready = false;
      this.message = '';
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: false, video: { facingMode: { ideal: this.facing }, width: { ideal: 1920 }, height: { ideal: 1080 } },
        });
      } catch (e) {
        const refused = e && (e.name === 'NotAllowedError' || e.name === 'SecurityError');
        this.message = refused
          ? _('Camera access was refused. Allow it in the browser’s site settings, or choose a photo with the paperclip.')
          : _('No camera could be opened ({error}). Choose a photo with the paperclip instead.',
              { error: (e && e.name) || 'error' });
        return;
      }
      if (!this.shown) { stream.getTracks().forEach((t) => t.stop()); return; }  // closed meanwhile
      this.stream = stream;
      const video = this.$refs.video;
      video.srcObject = stream;
      try { await video.play(); } catch (e) { /* autoplay of a muted video is allowed */ }
      this.ready = true;
      const devices = await navigator.mediaDevices.enumerateDevices();
      this.cameras = devices.filter((d) => d.kind === 'videoinput').length;
    },
    flip() {
      this.facing = this.facing === 'user' ? 'environment' : 'user';
      localStorage.setItem(FACING_KEY, this.facing);
      this.start();
    },
    shoot() {
      const video = this.$refs.video;
      const width = video.videoWidth, height = video.videoHeight;
      if (!width || !height) return;
      const canvas = document.createElement('canvas');
      canvas.width = width; canvas.height = height;
      canvas.getContext('2d').drawImage(video, 0, 0, width, height);  // as the sensor sees it, not mirrored
      this.ready = false;
      this.flash = true;
      canvas.toBlob((blob) => {
        this.close();
        if (blob) sendFile(this, this.url, blob, { name: `photo-${timestamp()}.jpg` });
      }, 'image/jpeg', 0.92);
    },
    chosen() {
      const file = this.$refs.input.files && this.$refs.input.files[0];
      this.$refs.input.value = '';
      if (file) sendFile(this, this.url, file, { name: file.name });
    },
  },
};
