// Pairing a tablet: the code comes in the URL fragment (never sent to the server in a
// URL, so it reaches no log), goes out in a POST body, and the fragment is removed at once.
//
// Its texts go through `_`, which reads the page's table of translations when it has one (see
// static/i18n.js; a classic script cannot import it) and is otherwise the English text.
(() => {
  const _ = (text) => {
    const table = window.gridlessText || {};
    return Object.prototype.hasOwnProperty.call(table, text) ? table[text] : text;
  };
  const code = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  const $ = (id) => document.getElementById(id);

  function show(state, message, hint = "") {
    $("state").dataset.state = state;
    $("message").textContent = message;
    $("hint").textContent = hint;
    $("confirm-box").hidden = state !== "waiting";
  }

  function deviceName() {
    const ua = navigator.userAgent;
    const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
      : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
    const system = /iPad/.test(ua) ? "iPad" : /iPhone/.test(ua) ? "iPhone"
      : /Android/.test(ua) ? (/Mobile/.test(ua) ? "Android phone" : "Android tablet")
      : /Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "Mac" : /CrOS/.test(ua) ? "Chromebook"
      : /Linux/.test(ua) ? "Linux" : "a device";
    return `${browser} on ${system}`;
  }

  async function answer(response) {
    let body = {};
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    return body;
  }

  function paired() {
    show("approved", _("Approved. Opening gridless…"));
    setTimeout(() => location.replace("/"), 400);
  }

  async function poll() {
    let response;
    try {
      response = await fetch("/api/pair/status", { credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      show("waiting", _("Waiting for approval…"), _("The phone is not answering; still trying."));
      return setTimeout(poll, 2000);
    }
    const body = await answer(response);
    if (!response.ok) return show("error", body.error ? body.error.message : _("Pairing failed."));
    if (body.state === "approved") return paired();
    if (body.state === "denied") return show("denied", _("The phone's owner did not allow this device."));
    if (body.state === "expired") {
      return show("expired", _("Nobody answered in time."), _("Scan the QR code on the phone again."));
    }
    $("confirm").textContent = body.confirm;
    show("waiting", _("Waiting for approval on the phone…"),
         _("Allow it there only if the phone shows the same code."));
    setTimeout(poll, 1000);
  }

  async function ask() {
    if (!code) {
      // a reload while waiting: the request is remembered in a cookie
      return poll();
    }
    let response;
    try {
      response = await fetch("/api/pair", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code, name: deviceName() }),
      });
    } catch (e) {
      return show("error", _("Cannot reach the phone."), _("Check that this device is on the phone's hotspot or Wi-Fi."));
    }
    const body = await answer(response);
    if (!response.ok) {
      return show("error", body.error ? body.error.message
        : _("Pairing failed ({status}).").replace("{status}", String(response.status)));
    }
    if (body.state === "approved") return paired();
    $("confirm").textContent = body.confirm;
    show("waiting", _("Waiting for approval on the phone…"),
         _("Allow it there only if the phone shows the same code."));
    setTimeout(poll, 1000);
  }

  ask();
})();
