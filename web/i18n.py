"""The page's language: the person's choice (a cookie this browser keeps), else the browser's
own language list, resolved once per page and used by `_()` in the page's build and in its
event handlers. See `backend/core/i18n.py`."""

from __future__ import annotations

import json
import weakref

from nicegui import Client, context, ui

from backend.core.i18n import COOKIE, LANGUAGES, current_locale, js_catalog, negotiate, set_resolver

__all__ = ["head_html", "install", "language_of", "set_language_script"]

_languages: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()


def language_of(client: Client) -> str:
    found = _languages.get(client)
    if found is None:
        request = client.request
        found = negotiate(request.headers.get("accept-language") if request is not None else None,
                          request.cookies.get(COOKIE) if request is not None else None)
        _languages[client] = found
    return found


def _page_language() -> str | None:
    try:
        client = context.client
    except (RuntimeError, AttributeError, IndexError):  # no page is being built or handled
        return None
    return language_of(client)


def install() -> None:
    set_resolver(_page_language)


def head_html() -> str:
    """The page's language for the browser: `<html lang>` (screen readers pick their voice by
    it) and the translations the scripts use (`static/i18n.js`)."""
    language = current_locale()
    texts = json.dumps(js_catalog(language), ensure_ascii=False).replace("</", "<\\/")
    return (f"<script>document.documentElement.lang={json.dumps(language)};"
            f"window.gridlessLanguage={json.dumps(language)};window.gridlessText={texts};</script>")


def set_language_script(language: str) -> str:
    """JavaScript that keeps `language` as this browser's choice and reloads the page in it."""
    if language not in LANGUAGES:
        raise ValueError(language)
    return (f"document.cookie={json.dumps(f'{COOKIE}={language}; path=/; max-age=31536000; SameSite=Lax')};"
            "location.reload();")


def choose_language(language: str) -> None:
    ui.run_javascript(set_language_script(language))
