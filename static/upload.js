// The one way the app sends a file to the server: its bytes as the raw request body (no
// multipart, no base64 over the websocket), with upload progress, and every failure turned
// into the shape the server itself answers errors in under /api: {error: {code, message}}.
// Callers show `message` as it is, so each message is a sentence that stands alone after
// "<file name>: ".
//
// XMLHttpRequest rather than fetch: fetch reports no upload progress. A response that
// streams (a transcript's NDJSON) is handed over piece by piece through `onText` as it
// arrives.

import { _ } from '/static/i18n.js';

/** The helper's own failures, in the page's language. */
const MESSAGES = {
  connection_lost: () => _('The connection was lost while the file was being sent.'),
  cancelled: () => _('The upload was stopped.'),
  request_too_large: () => _('The file is larger than the server accepts.'),
};

/** A failure in the server's shape; `code` is the server's code, or one of MESSAGES' keys. */
export function failure(code, message) {
  return { error: { code, message } };
}

function refusal(xhr) {
  let body = null;
  try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a page, or nothing */ }
  const error = body && body.error;
  if (error && typeof error.message === 'string' && error.message) {
    return failure(String(error.code || 'http_' + xhr.status), error.message);
  }
  // the size gate may answer before the route does, and not every answer is the app's own
  if (xhr.status === 413) return failure('request_too_large', MESSAGES.request_too_large());
  const status = xhr.statusText ? `${xhr.status} ${xhr.statusText}` : String(xhr.status);
  return failure('http_' + xhr.status, _('The server did not take the file (HTTP {status}).', { status }));
}

/**
 * Sends `body` (a File or Blob) to `url` with `params` as its query string.
 * Resolves to {status, data} (data: the JSON answer, or null when `onText` took the text) or to
 * {error: {code, message}}; it never rejects.
 * - onProgress(loaded, total): while the body goes out
 * - onText(piece): each new piece of a successful answer, as it arrives
 * - signal: an AbortSignal that stops the upload (answered as code "cancelled")
 */
export function sendRaw(url, body, { method = 'POST', params = {}, onProgress = null, onText = null, signal = null } = {}) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) { resolve(failure('cancelled', MESSAGES.cancelled())); return; }
    const query = new URLSearchParams(params).toString();
    const xhr = new XMLHttpRequest();
    xhr.open(method, query ? `${url}?${query}` : url);
    xhr.setRequestHeader('Content-Type', (body && body.type) || 'application/octet-stream');
    const succeeded = () => xhr.status >= 200 && xhr.status < 300;
    let given = 0;
    const giveText = () => {
      const text = xhr.responseText;
      if (text.length > given) { const piece = text.slice(given); given = text.length; onText(piece); }
    };
    if (onProgress) {
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    }
    if (onText) xhr.onprogress = () => { if (succeeded()) giveText(); };
    xhr.onload = () => {
      if (!succeeded()) { resolve(refusal(xhr)); return; }
      let data = null;
      if (onText) giveText();
      else { try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; } }
      resolve({ status: xhr.status, data });
    };
    xhr.onerror = () => resolve(failure('connection_lost', MESSAGES.connection_lost()));
    xhr.onabort = () => resolve(failure('cancelled', MESSAGES.cancelled()));
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/**
 * Sends one file and tells the element about it with NiceGUI events: `started` {name}, then
 * `uploaded` {name, data} or `failed` {name, error: {code, message}}. Used by every element
 * that uploads a file (the file chooser, paste and drop, the camera's shutter).
 */
export async function sendFile(element, url, file, { method = 'POST', name, nameParam = 'name', params = {}, onProgress = null } = {}) {
  const shown = (name || file.name || 'file').slice(0, 200);
  element.$emit('started', { name: shown });
  const result = await sendRaw(url, file, { method, params: { ...params, [nameParam]: shown }, onProgress });
  if (result.error) element.$emit('failed', { name: shown, error: result.error });
  else element.$emit('uploaded', { name: shown, data: result.data });
  return result;
}

/** A local time stamp for names of things made on the device (photo-20260101-093000.jpg). */
export function timestamp() {
  const d = new Date();
  const two = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}
