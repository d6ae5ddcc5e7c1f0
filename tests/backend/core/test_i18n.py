"""The interface's languages: choosing one, translating, and every marked text translated."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from backend.core import i18n
from backend.core.i18n import _, format_decimal, format_number, js_catalog, negotiate, ngettext, use_locale

ROOT = Path(__file__).resolve().parents[3]
PLACEHOLDER = re.compile(r"\{(\w*)[^}]*\}")


def _catalog(language: str):
    with (ROOT / "backend" / "locales" / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def _marked() -> dict[str, list[str]]:
    """Every text marked in the code (as scripts/i18n extracts it), with where it is."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS):
        key = message if isinstance(message, str) else message[0]
        found.setdefault(key, []).append(f"{filename}:{line}")
    return found


@pytest.mark.parametrize(("header", "chosen", "expected"), [
    ("it-IT,it;q=0.9,en-US;q=0.8,en;q=0.7", None, "it"),
    ("en-US,en;q=0.9,it;q=0.8", None, "en"),
    ("de-DE,de;q=0.9,it;q=0.5", None, "it"),
    ("fr;q=0.2,it;q=0.9", None, "it"),
    ("", None, "en"),
    (None, None, "en"),
    ("de-DE", None, "en"),
    ("it_IT", None, "it"),
    ("en-US", "it", "it"),
    ("it-IT", "en", "en"),
    ("it-IT", "xx", "it"),
    ("it;q=abc,en", None, "en"),
])
def test_the_language_of_a_browser(header: str | None, chosen: str | None, expected: str) -> None:
    assert negotiate(header, chosen) == expected


def test_every_marked_text_is_translated_into_every_language() -> None:
    marked = _marked()
    assert len(marked) > 50, "the interface's texts are marked for translation"
    for language in (d.name for d in (ROOT / "backend" / "locales").iterdir() if d.is_dir()):
        catalog = _catalog(language)
        missing, broken = [], []
        for text, places in marked.items():
            message = catalog.get(text)
            strings = ([message.string] if isinstance(message.string, str) else list(message.string)) \
                if message is not None else []
            if message is None or not all(strings):
                missing.append(f"{places[0]}: {text!r}")
                continue
            wanted = set(PLACEHOLDER.findall(text))
            for translated in strings:
                if set(PLACEHOLDER.findall(translated)) - wanted - {"n"}:
                    broken.append(f"{places[0]}: {text!r} → {translated!r}")
        assert not missing, f"{len(missing)} texts have no {language} translation (run scripts/i18n):\n" \
                            + "\n".join(missing[:40])
        assert not broken, f"{language} translations name placeholders the text does not have:\n" + "\n".join(broken)


def test_translations_follow_the_language_in_use() -> None:
    text = next(iter(m for m in _catalog("it") if m.id and isinstance(m.id, str) and m.string
                     and "{" not in m.id))
    with use_locale("it"):
        assert _(text.id) == text.string
    with use_locale("en"):
        assert _(text.id) == text.id
    assert _("A text no catalog has") == "A text no catalog has"


def test_placeholders_are_filled_after_translation_and_a_lost_one_does_not_fail() -> None:
    assert _("{count} of {total}", count=2, total=3) == "2 of 3"
    assert _("Missing {name}") == "Missing {name}"
    assert _("Missing {name}", other=1) == "Missing {name}"


def test_counts_pick_their_form_and_are_written_in_the_language() -> None:
    with use_locale("en"):
        assert ngettext("{n} file", "{n} files", 1) == "1 file"
        assert ngettext("{n} file", "{n} files", 1200) == "1,200 files"
    with use_locale("it"):
        assert ngettext("{n} file", "{n} files", 1200) == "1.200 files"


def test_numbers_and_dates_in_the_language() -> None:
    moment = datetime(2026, 3, 14, 15, 9)
    with use_locale("it"):
        assert format_decimal(1234.5) == "1.234,5"
        assert format_number(1_000_000) == "1.000.000"
        assert "marzo" in i18n.format_date(moment, "long")
    with use_locale("en"):
        assert format_decimal(1234.5) == "1,234.5"
        assert "March" in i18n.format_date(moment, "long")


def test_the_scripts_get_only_their_own_texts() -> None:
    catalog = _catalog("it")
    from_scripts = {m.id for m in catalog if m.id and m.string
                    and any(str(place).endswith(".js") for place, _line in m.locations)}
    texts = js_catalog("it")
    assert set(texts) <= from_scripts
    assert all(texts[k] for k in texts)
    assert js_catalog("en") == {}


def test_a_resolver_answers_when_no_language_is_set() -> None:
    i18n.set_resolver(lambda: "it")
    try:
        assert i18n.current_locale() == "it"
        with use_locale("en"):
            assert i18n.current_locale() == "en"
        with use_locale("xx"):  # not one we speak: the resolver's
            assert i18n.current_locale() == "it"
    finally:
        i18n.set_resolver(None)
    assert i18n.current_locale() == "en"
