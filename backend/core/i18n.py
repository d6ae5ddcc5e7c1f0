"""Languages: what a person reads, in their language, through gettext catalogs (Babel).

Every text a person reads is written in English in the code, marked with `_()` (or
`ngettext()` when it depends on a count), and translated from the catalogs in
`backend/locales/<language>/LC_MESSAGES/messages.po` — the standard format any translator's
tool opens. `scripts/i18n` extracts the marked texts from the code (Python and the browser's
JavaScript, see `babel.cfg`) and updates each catalog; a test fails when a marked text has no
translation.

Texts carry named placeholders in braces, filled after translation so a translator may move
them: `_("Deleted {name}", name=title)`.

Which language: `use_locale()` sets it for a piece of work (a request, a task); otherwise a
resolver installed by the web layer answers for the page or event being handled (the
person's choice, else their browser's language); else English. Dates and numbers follow the
same language (`format_*`, through Babel's CLDR data).
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

__all__ = ["COOKIE", "DEFAULT", "LANGUAGES", "_", "current_locale", "format_date", "format_datetime",
           "format_decimal", "format_number", "format_percent", "format_time", "format_timedelta", "js_catalog",
           "negotiate", "ngettext", "set_resolver", "translations", "use_locale"]

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DEFAULT = "en"
LANGUAGES: dict[str, str] = {"en": "English", "it": "Italiano"}
"""The languages the interface speaks, each named in itself (as a language menu shows them)."""
COOKIE = "gridless_lang"
"""The browser's choice of language, when a person made one (else its Accept-Language)."""

_locale: ContextVar[str | None] = ContextVar("gridless_locale", default=None)
_resolver: Callable[[], str | None] | None = None
_lock = threading.Lock()


def set_resolver(resolver: Callable[[], str | None] | None) -> None:
    """The web layer's answer to "whose page is this?" (its language), asked when no
    `use_locale` is in force."""
    global _resolver
    _resolver = resolver


def current_locale() -> str:
    chosen = _locale.get()
    if chosen:
        return chosen
    if _resolver is not None:
        resolved = _resolver()
        if resolved:
            return resolved
    return DEFAULT


@contextlib.contextmanager
def use_locale(language: str | None) -> Iterator[None]:
    token = _locale.set(language if language in LANGUAGES else None)
    try:
        yield
    finally:
        _locale.reset(token)


def negotiate(accept_language: str | None, chosen: str | None = None) -> str:
    """The language for a browser: its person's choice if it is one we speak, else the first of
    its Accept-Language list we speak (`it-IT,it;q=0.9,en;q=0.8` → it), else English."""
    if chosen in LANGUAGES:
        return str(chosen)
    wanted: list[tuple[float, str]] = []
    for n, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _sep, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag:
            wanted.append((-weight + n * 1e-6, tag.strip().replace("_", "-").lower()))
    for _weight, tag in sorted(wanted):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT


@functools.cache
def _catalog(language: str) -> tuple[NullTranslations, frozenset[str]]:
    """The language's translations, and the texts the browser's scripts use (those whose
    source is a .js file)."""
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not path.is_file():
        return NullTranslations(), frozenset()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    js = frozenset(str(m.id if isinstance(m.id, str) else m.id[0]) for m in catalog
                   if m.id and any(str(place).endswith(".js") for place, _line in m.locations))
    return Translations(buffer), js


def translations(language: str | None = None) -> NullTranslations:
    with _lock:
        return _catalog(language or current_locale())[0]


def _fill(text: str, values: dict[str, Any]) -> str:
    if not values:
        return text
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):  # a translation that lost a placeholder: the words, unfilled
        return text


def _(message: str, **values: Any) -> str:
    """`message` in the current language, its `{placeholders}` filled from `values`."""
    return _fill(translations().gettext(message), values)


def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
    """The form for `n` (which is also given to the text as `{n}`, written in the language's way)."""
    text = translations().ngettext(singular, plural, n)
    return _fill(text, {"n": format_number(n), **values})


def js_catalog(language: str | None = None) -> dict[str, str]:
    """The translations of the texts the browser's scripts show (for `static/i18n.js`)."""
    language = language or current_locale()
    with _lock:
        found, ids = _catalog(language)
    return {text: found.gettext(text) for text in sorted(ids) if found.gettext(text) != text}


def _babel_locale() -> Locale:
    try:
        return Locale.parse(current_locale())
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT)


def format_number(value: int | float) -> str:
    return babel_numbers.format_decimal(value, locale=_babel_locale())


def format_decimal(value: float, digits: int = 1) -> str:
    """`value` with `digits` decimals (1.5 → "1,5" in Italian)."""
    pattern = "#,##0." + "0" * digits if digits > 0 else "#,##0"
    return babel_numbers.format_decimal(value, format=pattern, locale=_babel_locale())


def format_percent(value: float) -> str:
    return babel_numbers.format_percent(value, locale=_babel_locale())


def format_date(value: date | datetime, form: str = "medium") -> str:
    return babel_dates.format_date(value, format=form, locale=_babel_locale())


def format_time(value: datetime, form: str = "short") -> str:
    return babel_dates.format_time(value, format=form, locale=_babel_locale())


def format_datetime(value: datetime, form: str = "medium") -> str:
    return babel_dates.format_datetime(value, format=form, locale=_babel_locale())


def format_timedelta(value: timedelta | int, *, add_direction: bool = False) -> str:
    """"3 minutes", or with `add_direction` "3 minutes ago" / "tra 3 minuti"."""
    return babel_dates.format_timedelta(value, add_direction=add_direction, locale=_babel_locale())
