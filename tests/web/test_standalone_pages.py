"""The pages outside the app (pairing, offline, the certificate guide): each text they show is
marked for translation as written, and each page carries the translations the catalogs hold now."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.api import pairing
from backend.core.i18n import use_locale
from backend.core.resources import STATIC_DIR
from web import standalone_pages
from web.standalone_pages import NEXT_KEY, PAGES, block, keys_of, render, texts

ELEMENT = re.compile(r'<(\w+)\b[^>]*?\sdata-i18n(-html)?="([^"]+)"[^>]*>(.*?)</\1>', re.DOTALL)


def _english() -> dict[str, str]:
    with use_locale("en"):
        return texts()


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("page", PAGES)
def test_each_text_of_a_page_is_marked_as_it_is_written(page: str) -> None:
    source = (STATIC_DIR / page).read_text(encoding="utf-8")
    english = _english()
    found = ELEMENT.findall(source)
    assert found, f"{page} names no texts"
    for _tag, as_html, key, content in found:
        assert key in english, f"{page}: {key} is not marked in web/standalone_pages.py"
        assert _words(content) == english[key], f"{page}: {key} differs from its marked text"
        if not as_html:
            assert "<" not in content and "&" not in content, f"{page}: {key} holds markup: mark it data-i18n-html"
    assert set(keys_of(source)) <= set(english)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_carries_the_translations_of_the_catalogs(page: str) -> None:
    source = (STATIC_DIR / page).read_text(encoding="utf-8")
    assert render(page, source) == source, \
        f"static/{page} is out of date with the catalogs: run .venv/bin/python -m web.standalone_pages"
    written = block(page, source)
    assert "{{" not in written and "}}" not in written  # the guide's placeholders are the server's
    assert "Riprova" in block("offline.html", (STATIC_DIR / "offline.html").read_text(encoding="utf-8"))


def test_the_sentence_the_server_adds_to_the_guide_is_the_one_translated() -> None:
    class Certificates:
        @staticmethod
        def fingerprint() -> str:
            return "AB:CD"

    guide = pairing._guide(Certificates(), "https://192.168.43.1:8766")  # type: ignore[arg-type]
    found = re.search(r"<div data-i18n-next>\s*<p>(.*?)</p>\s*</div>", guide, re.DOTALL)
    assert found, "the guide's next step is not where the page's script looks for it"
    sentence = re.sub(r"<a\b[^>]*>.*?</a>", "{link}", found.group(1))
    assert _words(sentence) == _english()[NEXT_KEY]


def test_writing_the_pages_again_changes_nothing(tmp_path: Path) -> None:
    for page in PAGES:
        (tmp_path / page).write_text((STATIC_DIR / page).read_text(encoding="utf-8"), encoding="utf-8")
    assert standalone_pages.main(tmp_path) == []
