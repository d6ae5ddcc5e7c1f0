from __future__ import annotations

import base64

import pytest

from backend.attachments.data_url import parse_data_url
from backend.core.errors import AppError

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def test_base64_data_url_gives_its_bytes_and_type() -> None:
    inline = parse_data_url("data:image/png;base64," + base64.b64encode(PNG).decode(), 1024)
    assert inline.mime == "image/png" and inline.data == PNG


@pytest.mark.parametrize("url,scheme", [
    ("http://127.0.0.1/photo.jpg", "http"), ("https://example.org/a.png", "https"),
    ("file:///etc/passwd", "file"), ("ftp://host/x.png", "ftp"),
])
def test_other_urls_are_refused_by_scheme(url: str, scheme: str) -> None:
    with pytest.raises(AppError) as caught:
        parse_data_url(url, 1024)
    assert caught.value.code == "unsupported_image_url"
    assert f"a {scheme}: URL" in caught.value.message and "never fetches" in caught.value.message


@pytest.mark.parametrize("url,code", [
    ("data:image/png,rawtext", "invalid_image_url"),
    ("data:image/png;base64,@@@@", "invalid_image_url"),
    ("data:image/png;base64,", "invalid_image_url"),
    ("not a url at all", "unsupported_image_url"),
])
def test_damaged_data_urls(url: str, code: str) -> None:
    with pytest.raises(AppError) as caught:
        parse_data_url(url, 1024)
    assert caught.value.code == code


def test_size_is_checked_before_decoding() -> None:
    big = "data:image/jpeg;base64," + "A" * 20_000
    with pytest.raises(AppError) as caught:
        parse_data_url(big, 1000)
    assert caught.value.code == "image_too_large"
