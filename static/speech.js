// Reading answers aloud: one player for the page, shared by every speaker button and the
// switch that reads new answers by itself.
//
// An answer is fetched as a WAV stream and its PCM is played through Web Audio as it arrives,
// so the first sentence plays while the rest is still being spoken. One answer plays at a
// time: starting another stops the one playing. Whether this device reads new answers aloud
// is kept in the browser (a tablet may want it, the phone not).

import { _ } from '/static/i18n.js';

const AUTO_KEY = 'gridless.autoRead';
const USED_KEY = 'gridless.usedVoice';
const WAV_HEADER_BYTES = 44;

let context = null;
let playing = null;

/** The page's audio context, resumed: browsers start audio only after a gesture. */
export function audioContext() {
  if (!context) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    context = new Ctx();
  }
  if (context.state === 'suspended') context.resume().catch(() => {});
  return context;
}

/** Loads a model before it is needed (the voice, or the speech model), so nobody waits for a cold start. */
export function warm(url) {
  if (url) fetch(url, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
}

export function autoRead() {
  return localStorage.getItem(AUTO_KEY) === '1';
}

export function setAutoRead(on) {
  localStorage.setItem(AUTO_KEY, on ? '1' : '0');
}

/** Whether the speaker was used on this device: a tap is then likely, worth being ready for. */
export function usedBefore() {
  return localStorage.getItem(USED_KEY) === '1';
}

/** Stops what is playing, if anything; its owner hears `ended`. */
export function stopSpeaking() {
  if (!playing) return;
  const session = playing;
  playing = null;
  session.abort.abort();
  session.sources.forEach((s) => { try { s.stop(); } catch (e) { /* already ended */ } });
  session.owner.ended();
}

/**
 * The answer at `url` is being read already (it was read as it was written): `owner` takes the
 * playing over, hearing `firstAudio` if it has begun; false when that answer is not playing.
 */
export function adopt(url, owner) {
  if (!playing || playing.url !== url) return false;
  const before = playing.owner;
  playing.owner = owner;
  if (before && before !== owner) before.ended();
  if (playing.firstAudioMs !== undefined) owner.firstAudio(playing.firstAudioMs);
  return true;
}

/** Whether `owner` is the one playing now. */
export function isPlaying(owner) {
  return playing !== null && playing.owner === owner;
}

async function answerError(response) {
  let message = _('Reading aloud failed (HTTP {status}).', { status: response.status });
  try { const body = await response.json(); message = body.error.message || message; } catch (e) { /* keep */ }
  return message;
}

/**
 * Plays the WAV stream at `url` for `owner`, which hears `firstAudio(ms)` when the first sound is
 * scheduled (ms since the request), `ended()` when it stops for any reason, and `failed(message)`
 * when the server refuses.
 */
export async function speak(url, owner) {
  localStorage.setItem(USED_KEY, '1');
  stopSpeaking();
  const ctx = audioContext();
  const session = { owner, url, abort: new AbortController(), sources: [], requestedAt: performance.now() };
  playing = session;
  let response;
  try {
    response = await fetch(url, { credentials: 'same-origin', signal: session.abort.signal, cache: 'no-store' });
  } catch (e) {
    if (playing === session) stopSpeaking();
    return;
  }
  if (!response.ok) {
    const message = await answerError(response);
    if (playing === session) stopSpeaking();
    session.owner.failed(message);
    return;
  }
  const reader = response.body.getReader();
  let rate = 0;
  let pending = new Uint8Array(0);
  let at = 0;
  let first = true;
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (e) { break; }
    if (chunk.done || playing !== session) break;
    let bytes = new Uint8Array(pending.length + chunk.value.length);
    bytes.set(pending); bytes.set(chunk.value, pending.length);
    if (!rate) {
      if (bytes.length < WAV_HEADER_BYTES) { pending = bytes; continue; }
      rate = new DataView(bytes.buffer, bytes.byteOffset).getUint32(24, true);
      bytes = bytes.subarray(WAV_HEADER_BYTES);
    }
    const usable = bytes.length - (bytes.length % 2);
    pending = bytes.slice(usable);
    if (usable === 0) continue;
    const samples = new Int16Array(bytes.slice(0, usable).buffer);
    const buffer = ctx.createBuffer(1, samples.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    at = Math.max(at, ctx.currentTime + 0.05);
    source.start(at);
    at += buffer.duration;
    session.sources.push(source);
    if (first) {
      first = false;
      session.firstAudioMs = performance.now() - session.requestedAt;
      session.owner.firstAudio(session.firstAudioMs);
    }
  }
  if (playing === session) {  // the last sound is scheduled; it ends when it has played
    const left = Math.max(0, at - ctx.currentTime);
    setTimeout(() => { if (playing === session) { playing = null; session.owner.ended(); } }, left * 1000);
  }
}
