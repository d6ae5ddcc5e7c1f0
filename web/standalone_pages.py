"""The pages a browser shows outside the app, in the browser's language: pairing a tablet
(`static/pair.html`), the page the service worker shows when the server is not running
(`static/offline.html`) and the guide to the certificate for secure mode (`static/ca.html`, also
served by the plain-HTTP listener beside an HTTPS share, which serves nothing else).

They are static files (the offline page must work with no server at all), so each carries its own
translations. Its elements name their text: `data-i18n="key"` is replaced as text,
`data-i18n-html="key"` as markup, and `data-i18n-next` holds the sentence with a link that the
server puts in the certificate guide. A small script at the end of each page, between
`<!-- i18n -->` and `<!-- /i18n -->`, picks the language as the app does (the choice this browser
keeps in its cookie, else its own language list), puts the texts in place and sets `lang`; on the
pairing page it also gives `static/pair.js` the translations of its own texts (as
`window.gridlessText`, the table `static/i18n.js` reads).

The texts are marked here, so they are extracted and translated with all the others. The scripts
are written from the catalogs by `.venv/bin/python -m web.standalone_pages`: run it after the
catalogs change (a test fails while a page's script is out of date).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from babel.messages.pofile import read_po

from backend.core.i18n import COOKIE, DEFAULT, LANGUAGES, LOCALES_DIR, _, use_locale
from backend.core.resources import STATIC_DIR

__all__ = ["PAGES", "block", "keys_of", "main", "render", "texts"]

PAGES = ("pair.html", "offline.html", "ca.html")
SCRIPTS = {"pair.html": "static/pair.js"}
"""A page's own script, whose marked texts the page's table carries too."""
NEXT_KEY = "ca.next"
"""The sentence the server puts in the certificate guide (`backend/api/pairing.py`), its link as `{link}`."""
BLOCK = re.compile(r"<!-- i18n -->.*?<!-- /i18n -->", re.DOTALL)
KEY = re.compile(r'\sdata-i18n(?:-html)?="([^"]+)"')


def texts() -> dict[str, str]:
    """Each key's text in the current language (the keys marked `-html` in a page hold markup)."""
    return {
        "pair.title": _("Pair with gridless"),
        "pair.asking": _("Asking the phone…"),
        "pair.code": _("Code"),
        "offline.title": _("gridless is not running"),
        "offline.why": _("The app lives in a small server on your phone (or laptop), and it is not answering right "
                         "now. Your conversations are safe: they are kept on the device."),
        "offline.phone": _("<strong>On the phone (Termux):</strong> open Termux and start it again:"),
        "offline.laptop": _("<strong>On a laptop:</strong> run <code>.venv/bin/gridless serve</code> in the gridless "
                            "folder."),
        "offline.tablet": _("<strong>On a tablet using a phone's gridless:</strong> check that the phone is sharing "
                            "on this network and that both are on the same Wi-Fi or hotspot."),
        "offline.again": _("Try again"),
        "offline.checking": _("Checking every few seconds…"),
        "ca.title": _("Trust gridless on this device"),
        "ca.why": _("The phone made its own small certificate authority so that this device can talk to it over "
                    "HTTPS, which the browser needs before it lets the page use the camera, the microphone or "
                    "“Install app”. You do this once per device."),
        "ca.download": _("Download the certificate"),
        "ca.check": _("Before you install it, check that its SHA-256 fingerprint is the one the phone shows on its "
                      "<em>Share</em> page:"),
        "ca.scope": _("It can only vouch for addresses on private networks (like 192.168.x.x) and <code>.local</code> "
                      "names, never for websites on the internet."),
        "ca.android.download": _("Download the certificate above."),
        "ca.android.settings": _("Open <em>Settings → Security &amp; privacy → More security settings → Encryption "
                                 "&amp; credentials → Install a certificate → CA certificate</em> (names vary by "
                                 "maker; search Settings for “CA certificate”)."),
        "ca.android.choose": _("Choose <code>gridless-ca.crt</code> from Downloads and confirm."),
        "ca.apple": _("iPhone and iPad"),
        "ca.apple.download": _("Open this page in Safari and download the certificate; allow the configuration "
                               "profile."),
        "ca.apple.profile": _("<em>Settings → General → VPN &amp; Device Management</em>: tap the gridless profile, "
                              "<em>Install</em>."),
        "ca.apple.trust": _("<em>Settings → General → About → Certificate Trust Settings</em>: turn on full trust "
                            "for “gridless local CA”."),
        "ca.computer.chrome": _("Chrome and Edge: <em>Settings → Privacy and security → Security → Manage "
                                "certificates → Authorities → Import</em>, choose the file, tick “Trust this "
                                "certificate for identifying websites”."),
        "ca.computer.firefox": _("Firefox: <em>Settings → Privacy &amp; Security → Certificates → View Certificates "
                                 "→ Authorities → Import</em>."),
        "ca.computer.mac": _("Mac: open the file in Keychain Access, then set it to “Always Trust”."),
        "ca.untrust": _("To stop trusting it later, remove “gridless local CA” from the same settings."),
        NEXT_KEY: _("Then open {link} or scan the pairing QR code again."),
    }


SCRIPT = """<script>
// The page in the browser's language. Written by `python -m web.standalone_pages` from the
// catalogs (backend/locales): do not edit by hand.
(function () {
  var TEXTS = %s;
  var chosen = (document.cookie.match(/(?:^|;\\s*)%s=([^;]*)/) || [])[1];
  var wanted = (chosen ? [chosen] : []).concat(navigator.languages || [navigator.language || '']);
  var language = '%s';
  for (var i = 0; i < wanted.length; i++) {
    var base = String(wanted[i]).toLowerCase().split(/[-_]/)[0];
    if (base === language || Object.prototype.hasOwnProperty.call(TEXTS, base)) { language = base; break; }
  }
  var table = TEXTS[language] || { texts: {}, scripts: {} };
  document.documentElement.lang = language;
  window.gridlessLanguage = language;
  window.gridlessText = table.scripts;
  var found = document.querySelectorAll('[data-i18n], [data-i18n-html]');
  for (var j = 0; j < found.length; j++) {
    var element = found[j], key = element.getAttribute('data-i18n');
    if (key !== null) {
      if (table.texts[key]) element.textContent = table.texts[key];
    } else if (table.texts[key = element.getAttribute('data-i18n-html')]) {
      element.innerHTML = table.texts[key];
    }
  }
  var next = document.querySelector('[data-i18n-next] p'), link = next && next.querySelector('a');
  var sentence = table.texts['%s'];
  if (link && sentence && sentence.indexOf('{link}') >= 0) {
    var parts = sentence.split('{link}');
    next.textContent = '';
    next.appendChild(document.createTextNode(parts[0]));
    next.appendChild(link);
    next.appendChild(document.createTextNode(parts.slice(1).join('')));
  }
})();
</script>"""


def keys_of(page_html: str) -> list[str]:
    """The keys a page names, in order (each once)."""
    elements = BLOCK.sub("", page_html)  # not the script, which names the attributes too
    keys = list(dict.fromkeys(KEY.findall(elements)))
    return [*keys, NEXT_KEY] if re.search(r"\sdata-i18n-next[\s>]", elements) else keys


def _script_texts(language: str, source: str) -> dict[str, str]:
    """The translations of the texts marked in `source` (a script), as `static/i18n.js` wants them."""
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return {str(m.id): str(m.string) for m in catalog
            if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string and m.string != m.id
            and any(place == source for place, _line in m.locations)}


def block(page: str, page_html: str) -> str:
    """The script block for `page` (a name in PAGES) whose HTML is `page_html`."""
    keys = keys_of(page_html)
    with use_locale(DEFAULT):
        english = texts()
    unknown = [key for key in keys if key not in english]
    if unknown:
        raise KeyError(f"{page} names texts that are not marked in {__name__}: {unknown}")
    tables = {}
    for language in sorted(set(LANGUAGES) - {DEFAULT}):
        with use_locale(language):
            translated = texts()
        tables[language] = {
            "texts": {key: translated[key] for key in keys if translated[key] != english[key]},
            "scripts": _script_texts(language, SCRIPTS[page]) if page in SCRIPTS else {},
        }
    data = json.dumps(tables, ensure_ascii=False, sort_keys=True, indent=2).replace("</", "<\\/")
    data = data.replace("\n", "\n  ")
    return "<!-- i18n -->\n" + SCRIPT % (data, COOKIE, DEFAULT, NEXT_KEY) + "\n<!-- /i18n -->"


def render(page: str, page_html: str) -> str:
    """`page_html` with its script block written afresh."""
    if not BLOCK.search(page_html):
        raise ValueError(f"{page} has no <!-- i18n --> … <!-- /i18n --> block")
    return BLOCK.sub(lambda _match: block(page, page_html), page_html, count=1)


def main(folder: Path = STATIC_DIR) -> list[str]:
    """Writes each page's script afresh; the names of the pages that changed."""
    changed = []
    for page in PAGES:
        path = folder / page
        before = path.read_text(encoding="utf-8")
        after = render(page, before)
        if after != before:
            path.write_text(after, encoding="utf-8")
            changed.append(page)
    return changed


if __name__ == "__main__":
    for name in main():
        print(f"updated static/{name}")
