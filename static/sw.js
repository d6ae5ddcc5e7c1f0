// gridless service worker.
// - The app's own static files: cache first (the cache name changes with each release); the
//   offline page and what it shows come from here.
// - NiceGUI's versioned assets (/_nicegui/<version>/…, the elements' modules among them) are
//   left to the browser's own cache: they are sent as immutable for a year and their addresses
//   change with each version, and looking each up in the worker's cache made a repeat load
//   slower than not having the worker at all.
// - Pages: network first; when the server cannot be reached, the offline page. Pages are
//   never stored: they carry conversations and per-client ids.
// - Everything else (the API, uploads, media, the websocket) goes to the network untouched.
const VERSION = '__VERSION__';
const STATIC_CACHE = 'gridless-static-' + VERSION;
const OFFLINE_URL = '/static/offline.html';
const PRECACHE = [OFFLINE_URL, '/static/standalone.css', '/static/app.css', '/static/app.js', '/static/icons/icon-192.png',
  '/static/icons/icon-512.png', '/static/icons/maskable-512.png', '/manifest.webmanifest'];
const CACHE_FIRST = ['/static/'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(STATIC_CACHE)
    .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: 'reload' }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n.startsWith('gridless-') && n !== STATIC_CACHE)
      .map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

async function cacheFirst(request) {
  const cache = await caches.open(STATIC_CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.type === 'basic') cache.put(request, response.clone());
  return response;
}

async function pageOrOffline(request) {
  try {
    return await fetch(request);
  } catch (error) {
    const offline = await caches.match(OFFLINE_URL);
    return offline || new Response('gridless is not running', { status: 503, headers: { 'Content-Type': 'text/plain' } });
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate') {
    event.respondWith(pageOrOffline(request));
    return;
  }
  if (CACHE_FIRST.some((prefix) => url.pathname.startsWith(prefix)) && !url.search) {
    event.respondWith(cacheFirst(request));
  }
});
