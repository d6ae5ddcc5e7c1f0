// What every page of the app does in the browser, beside its elements: copy buttons on code
// blocks, the keyboard shortcuts and their list, what a screen reader hears of an answer being
// written, the offline service worker, and reading a QR code with the camera.
//
// A classic script (not a module), so its texts go through a local `_` that reads the same table
// as `static/i18n.js` (see web/i18n.py): `_('Copy')` is extracted like any other call.
(function () {
  'use strict';

  function _(text, values) {
    const table = window.gridlessText || {};
    const found = Object.prototype.hasOwnProperty.call(table, text) ? table[text] : text;
    if (!values) return found;
    return found.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }

  // The page's language on <html lang> (a screen reader picks its voice by it): Quasar's language
  // pack writes its own there when it starts; the page's is put back.
  function keepLanguage() {
    const wanted = window.gridlessLanguage;
    if (wanted && document.documentElement.lang !== wanted) document.documentElement.lang = wanted;
  }
  keepLanguage();
  new MutationObserver(keepLanguage).observe(document.documentElement, { attributes: true, attributeFilter: ['lang'] });

  // What a screen reader hears ------------------------------------------------------------------
  // Two visually hidden regions: one read when the reader is free (an answer, "Copied"), one read
  // at once (what went wrong). `window.gridlessAnnounce` lets the page's elements use them too.

  let politeRegion = null;
  let alertRegion = null;

  function regions() {
    if (!politeRegion || !politeRegion.isConnected) {
      politeRegion = document.createElement('div');
      politeRegion.className = 'gl-sr-only';
      politeRegion.setAttribute('aria-live', 'polite');
      politeRegion.setAttribute('data-testid', 'live-polite');
      alertRegion = document.createElement('div');
      alertRegion.className = 'gl-sr-only';
      alertRegion.setAttribute('role', 'alert');
      alertRegion.setAttribute('data-testid', 'live-alert');
      document.body.append(politeRegion, alertRegion);
    }
  }

  function announce(text, urgent) {
    text = String(text || '').trim();
    if (!text || !document.body) return;
    regions();
    const region = urgent ? alertRegion : politeRegion;
    // a new node each time: the same words said twice are still read twice
    const line = document.createElement('p');
    line.textContent = text;
    region.replaceChildren(line);
  }
  window.gridlessAnnounce = announce;

  // Copy buttons on code blocks in answers. Answers are re-rendered while they stream, so a
  // MutationObserver adds the button to every new <pre> instead of wiring it once.

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement('textarea');
    area.value = text; area.style.position = 'fixed'; area.style.opacity = '0';
    document.body.appendChild(area); area.select();
    try { document.execCommand('copy'); } finally { area.remove(); }
    return Promise.resolve();
  }

  function decorate(root) {
    root.querySelectorAll('.gl-answer pre').forEach(function (pre) {
      if (pre.querySelector('.gl-copy-code')) return;
      // its words are drawn from `data-label` (CSS), so they are no part of the answer's text
      const button = document.createElement('button');
      const label = (text) => { button.dataset.label = text; };
      button.className = 'gl-copy-code'; button.type = 'button';
      button.setAttribute('aria-label', _('Copy code'));
      label(_('Copy'));
      button.addEventListener('click', function () {
        const code = pre.querySelector('code') || pre;
        copyText(code.innerText).then(function () {
          label(_('Copied'));
          announce(_('Copied'));
          setTimeout(function () { label(_('Copy')); }, 1500);
        });
      });
      pre.appendChild(button);
    });
  }

  // Answers, told politely ----------------------------------------------------------------------
  // The answer being written is the `.gl-answer` with the caret (`gl-caret`) inside an
  // `assistant-message`; when it is finished the page draws the same message (its
  // `data-message-id`) again without the caret, with `answer-error` if it failed. A screen reader
  // hears the answer once it is complete, and for a long one its finished sentences every few
  // seconds while it is written — never each word.

  const SENTENCES_EVERY_MS = 6000;
  const ANSWER = '[data-testid=assistant-message]';
  let following = null;  // {id, said: characters already read out, text}

  function messageBox(id) {
    return Array.from(document.querySelectorAll(ANSWER)).find((box) => box.dataset.messageId === id) || null;
  }

  function finishedSentences(text) {
    // up to the end of the last sentence or line that is complete
    const ends = /[.!?…。！？:;](?=\s)|\n/g;
    let last = -1;
    let match;
    while ((match = ends.exec(text)) !== null) last = match.index + match[0].length;
    return last > 0 ? text.slice(0, last) : '';
  }

  function followAnswers() {
    const live = document.querySelector(`${ANSWER} .gl-answer.gl-caret`);
    if (live) {
      const id = live.closest(ANSWER).dataset.messageId;
      if (!following || following.id !== id) following = { id, said: 0, text: '', since: Date.now() };
      following.text = live.innerText || '';
      return;
    }
    if (!following) return;
    const box = messageBox(following.id);
    if (!box) {
      // between two drawings of the messages, or the page went elsewhere
      if (!document.querySelector(ANSWER) && Date.now() - following.since > 60000) following = null;
      return;
    }
    const done = following;
    following = null;
    const answer = box.querySelector('.gl-answer');
    const rest = ((answer && answer.innerText) || '').slice(done.said).trim();
    const error = box.querySelector('[data-testid=answer-error]');
    if (rest) announce(rest);
    else if (!error) announce(_('The answer is complete.'));
    if (error) announce(error.innerText, true);
  }

  setInterval(function () {
    if (!following) return;
    const fresh = finishedSentences(following.text.slice(following.said));
    if (fresh.trim() && Date.now() - following.since >= SENTENCES_EVERY_MS) {
      following.said += fresh.length;
      announce(fresh);
    }
  }, SENTENCES_EVERY_MS);

  // Keyboard shortcuts --------------------------------------------------------------------------

  const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

  function typingIn(target) {
    return target instanceof Element
      && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function shown(el) {
    return !!el && el.isConnected && (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);
  }

  function dialogOpen() {
    // one of the page's own dialogs or menus: keys are theirs while it is open
    return Array.from(document.querySelectorAll('.q-dialog, .q-menu, .gl-camera, [data-gl-overlay]')).some(shown);
  }

  function newChat() {
    const button = document.querySelector('[data-testid=new-chat]');
    if (button) button.click();
    else location.assign('/');
  }

  function searchConversations() {
    const field = document.querySelector('input[data-testid=search]');
    if (!field) return;
    const content = field.closest('.q-drawer__content');
    const drawer = content && content.parentElement;
    if (drawer && drawer.classList.contains('q-layout--prevent-focus') && content.id && window.getElement) {
      const element = window.getElement(content);
      if (element && typeof element.show === 'function') element.show();
    }
    let tries = 0;
    const focus = () => {
      field.focus({ preventScroll: false });
      field.select();
      if (document.activeElement !== field && ++tries < 30) setTimeout(focus, 50);
    };
    focus();
  }

  function stopAnswer() {
    const stop = document.querySelector('[data-testid=stop]');
    if (!shown(stop)) return false;
    stop.click();
    return true;
  }

  function key(name) {
    const kbd = document.createElement('kbd');
    kbd.textContent = name;
    return kbd;
  }

  const MOD = MAC ? '⌘' : 'Ctrl';

  function shortcutList() {
    return [
      [[MOD, _('Shift'), 'O'], _('New chat')],
      [[MOD, 'K'], _('Search conversations')],
      [[_('Enter')], _('Send the message')],
      [[MOD, _('Enter')], _('Send the message')],
      [[_('Shift'), _('Enter')], _('New line in the message')],
      [[_('Esc')], _('Stop the answer being written')],
      [['?'], _('Show the keyboard shortcuts')],
      [[MOD, '/'], _('Show the keyboard shortcuts')],
    ];
  }

  let shortcutsDialog = null;

  function closeShortcuts() {
    if (!shortcutsDialog) return;
    const { backdrop, returnTo, hidden } = shortcutsDialog;
    shortcutsDialog = null;
    hidden.forEach((el) => { el.inert = false; });
    backdrop.remove();
    if (returnTo && returnTo.isConnected) returnTo.focus();
  }

  function showShortcuts() {
    if (shortcutsDialog) return;
    const backdrop = document.createElement('div');
    backdrop.className = 'gl-shortcuts-backdrop';
    backdrop.setAttribute('data-gl-overlay', '');
    const dialog = document.createElement('div');
    dialog.className = 'gl-shortcuts';
    dialog.setAttribute('role', 'dialog');
    dialog.setAttribute('aria-modal', 'true');
    dialog.setAttribute('aria-labelledby', 'gl-shortcuts-title');
    dialog.setAttribute('data-testid', 'shortcuts');
    const title = document.createElement('h2');
    title.id = 'gl-shortcuts-title';
    title.textContent = _('Keyboard shortcuts');
    const list = document.createElement('dl');
    for (const [keys, action] of shortcutList()) {
      const row = document.createElement('div');
      const what = document.createElement('dt');
      what.textContent = action;
      const how = document.createElement('dd');
      keys.forEach((name, i) => {
        if (i) how.append(' + ');
        how.append(key(name));
      });
      row.append(what, how);
      list.append(row);
    }
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'gl-shortcuts-close';
    close.textContent = _('Close');
    close.setAttribute('data-testid', 'shortcuts-close');
    close.addEventListener('click', closeShortcuts);
    dialog.append(title, list, close);
    backdrop.append(dialog);
    backdrop.addEventListener('mousedown', (e) => { if (e.target === backdrop) closeShortcuts(); });
    dialog.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeShortcuts(); return; }
      if (e.key === 'Tab') {  // the focus stays in the dialog
        const focusable = Array.from(dialog.querySelectorAll('button, [href], input, [tabindex]:not([tabindex="-1"])'));
        const first = focusable[0];
        const last = focusable[focusable.length - 1];
        if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      }
    });
    // everything else on the page is out of reach (and out of a screen reader's) while it is open
    const hidden = Array.from(document.body.children).filter((el) => !el.inert && el.tagName !== 'SCRIPT'
      && el !== politeRegion && el !== alertRegion);
    shortcutsDialog = { backdrop, returnTo: document.activeElement, hidden };
    hidden.forEach((el) => { el.inert = true; });
    document.body.append(backdrop);
    close.focus();
  }

  function onKey(e) {
    if (e.defaultPrevented || e.isComposing || e.repeat) return;
    const mod = e.ctrlKey || e.metaKey;
    const letter = (e.code || '').startsWith('Key') ? e.code.slice(3).toLowerCase() : (e.key || '').toLowerCase();
    if (shortcutsDialog) {
      if (e.key === 'Escape') { e.preventDefault(); closeShortcuts(); }
      return;
    }
    if (e.key === 'Escape') {
      if (!dialogOpen() && stopAnswer()) e.preventDefault();
      return;
    }
    if (dialogOpen()) return;
    if (mod && e.shiftKey && !e.altKey && letter === 'o') {
      e.preventDefault();
      newChat();
    } else if (mod && !e.shiftKey && !e.altKey && letter === 'k') {
      e.preventDefault();
      searchConversations();
    } else if ((mod && !e.altKey && (e.key === '/' || e.code === 'Slash'))
               || (e.key === '?' && !mod && !e.altKey && !typingIn(e.target))) {
      e.preventDefault();
      showShortcuts();
    } else if (mod && e.key === 'Enter' && e.target instanceof HTMLTextAreaElement
               && e.target.dataset.testid !== 'composer') {
      // a message being edited: Ctrl+Enter sends it again (Enter in the message box sends by itself)
      const card = e.target.closest('.q-card');
      const send = card && card.querySelector('[data-testid=edit-send]');
      if (send) { e.preventDefault(); send.click(); }
    }
  }

  document.addEventListener('keydown', onKey);
  window.gridlessShortcuts = showShortcuts;

  // Roles Quasar gets wrong -----------------------------------------------------------------------
  // A menu's entries are drawn as list items (role=listitem) with no list around them: in a menu
  // they are menu items. The loading bar at the top of the page is a nameless progressbar that
  // only shows that something is on its way: it is hidden from screen readers.

  function repairRoles() {
    document.querySelectorAll('.q-menu[role=menu] .q-item[role=listitem]').forEach((item) => {
      item.setAttribute('role', item.classList.contains('q-item--clickable') ? 'menuitem' : 'none');
    });
    document.querySelectorAll('.q-loading-bar:not([aria-hidden])').forEach((bar) => {
      bar.setAttribute('aria-hidden', 'true');
    });
  }

  // Watching the page ---------------------------------------------------------------------------

  let pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      repairRoles();
      decorate(document);
      followAnswers();
    });
  }).observe(document.documentElement, { childList: true, subtree: true, characterData: true, attributes: true,
    attributeFilter: ['class'] });
  document.addEventListener('DOMContentLoaded', function () { regions(); decorate(document); followAnswers(); });

  // Installable app: the service worker serves the offline page when the server is not running.
  if ('serviceWorker' in navigator && window.isSecureContext) {
    window.addEventListener('load', function () {
      navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(function (error) {
        console.warn('gridless: the service worker could not be registered', error);
      });
    });
  }

  // Read a QR code with the camera where the browser can (BarcodeDetector): resolves with its text, "" when
  // closed, or null when this browser cannot read QR codes at all.
  window.gridlessScanQr = async function () {
    if (!('BarcodeDetector' in window) || !navigator.mediaDevices?.getUserMedia) return null;
    const formats = await window.BarcodeDetector.getSupportedFormats?.() ?? ['qr_code'];
    if (!formats.includes('qr_code')) return null;
    const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    } catch (err) {
      return '';
    }
    const returnTo = document.activeElement;
    const overlay = document.createElement('div');
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    overlay.setAttribute('aria-label', _('Reading a QR code'));
    overlay.setAttribute('data-gl-overlay', '');
    overlay.style.cssText = 'position:fixed;inset:0;z-index:9999;background:#000d;display:flex;flex-direction:column;' +
      'align-items:center;justify-content:center;gap:1rem';
    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.style.cssText = 'max-width:90vw;max-height:70vh';
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = _('Cancel');
    close.style.cssText = 'padding:.6rem 1.4rem;font-size:1rem';
    overlay.append(video, close);
    document.body.append(overlay);
    close.focus();
    video.srcObject = stream;
    await video.play().catch(() => {});
    try {
      return await new Promise((resolve) => {
        close.onclick = () => resolve('');
        overlay.addEventListener('keydown', (e) => {
          if (e.key === 'Escape') { e.preventDefault(); resolve(''); }
          if (e.key === 'Tab') { e.preventDefault(); close.focus(); }  // the one thing to reach
        });
        const look = async () => {
          if (!overlay.isConnected) return;
          try {
            const found = await detector.detect(video);
            if (found.length) return resolve(found[0].rawValue || '');
          } catch (err) { /* a frame not ready yet */ }
          setTimeout(look, 200);
        };
        look();
      });
    } finally {
      stream.getTracks().forEach((track) => track.stop());
      overlay.remove();
      if (returnTo && returnTo.isConnected) returnTo.focus();
    }
  };
})();
