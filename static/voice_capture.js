// The microphone for the voice conversation, as an AudioWorklet: 16 kHz mono posted to the page in
// frames of 512 16-bit samples (32 ms), each with the audio clock time at its end. The page runs it
// in a 16 kHz context where it can (samples pass through); in a context at the device's rate the
// input is brought down by averaging the samples each output sample stands for.
const OUT_RATE = 16000;
const FRAME = 512;

class VoiceCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE;
    this.acc = 0;
    this.count = 0;
    this.until = this.step;
    this.position = 0;
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.acc += channel[i];
      this.count += 1;
      this.position += 1;
      if (this.position >= this.until) {
        this.until += this.step;
        const value = Math.max(-1, Math.min(1, this.acc / this.count));
        this.acc = 0;
        this.count = 0;
        this.frame[this.filled++] = value < 0 ? value * 32768 : value * 32767;
        if (this.filled === FRAME) {
          this.port.postMessage({ pcm: this.frame.buffer, time: currentTime }, [this.frame.buffer]);
          this.frame = new Int16Array(FRAME);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('gridless-voice-capture', VoiceCapture);
