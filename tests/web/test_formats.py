"""Figures in words on the pages, in the page's language."""

from __future__ import annotations

import pytest

from backend.core.i18n import use_locale
from backend.core.units import format_bytes
from web.formats import ago, duration, seconds, size, speed


@pytest.mark.parametrize("n", [0, 5, 999, 1000, 1500, 12_345, 3_400_000, 30_000_000, 120_000_000, 1_500_000_000])
def test_sizes_in_english_are_as_the_phone_shows_them(n: int) -> None:
    with use_locale("en"):
        assert size(n) == format_bytes(n)


def test_sizes_speeds_and_spans_in_italian() -> None:
    with use_locale("it"):
        assert [size(3_400_000), size(1_500_000_000), size(120_000_000)] == ["3,4 MB", "1,5 GB", "120 MB"]
        assert speed(2_500_000) == "2,5 MB/s"
        assert duration(5400) == "1,5 h" and duration(42) == "42 s" and duration(None) == ""
        assert seconds(2.25) == "2,2 s" and seconds(73.4) == "1 min 13 s"


def test_a_size_that_rounds_up_to_the_next_unit_is_shown_in_it() -> None:
    with use_locale("en"):
        assert [size(999.5), size(999_999), size(999_960_000)] == ["1 KB", "1.0 MB", "1.0 GB"]


def test_how_long_ago() -> None:
    now = 1_000_000.0
    with use_locale("en"):
        assert [ago(now - 30, now), ago(now - 300, now), ago(now - 3600, now), ago(now - 7200, now),
                ago(now - 86400, now), ago(now - 3 * 86400, now)] == \
            ["just now", "5 min ago", "1 hour ago", "2 hours ago", "1 day ago", "3 days ago"]
    with use_locale("it"):
        assert [ago(now - 30, now), ago(now - 7200, now), ago(now - 86400, now)] == \
            ["poco fa", "2 ore fa", "1 giorno fa"]
