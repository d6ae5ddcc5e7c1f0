"""The manifest as the new device reads it (untrusted), and the Range arithmetic of serving files."""

from __future__ import annotations

from typing import Any

import pytest

from backend.move.files import BadManifest, MoveFile, RangeNotSatisfiable, parse_range

SHA = "ab" * 32


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "m1", "kind": "model", "name": "tiny.gguf", "size": 10, "sha256": SHA,
                            "model": {"id": "tiny", "job": "chat", "name": "Tiny", "role": "model", "format": "gguf"}}
    return base | changes


@pytest.mark.parametrize(("header", "size", "span"), [
    (None, 100, None),
    ("bytes=0-", 100, (0, 99)),
    ("bytes=10-19", 100, (10, 19)),
    ("bytes=90-500", 100, (90, 99)),
    ("bytes=-5", 100, (95, 99)),
    ("bytes=-500", 100, (0, 99)),
    ("Bytes = 3-3", 100, (3, 3)),
])
def test_ranges_served(header: str | None, size: int, span: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == span


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=100-", 100), ("bytes=150-200", 100), ("bytes=5-2", 100), ("bytes=-0", 100), ("bytes=0-", 0),
    ("bytes=0-1,4-5", 100), ("items=0-5", 100), ("bytes=abc", 100), ("bytes=-", 100), ("bytes=1-x", 100),
])
def test_bad_ranges_refused(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_manifest_entry_round_trips() -> None:
    file = MoveFile.from_json(entry())
    assert file.to_json() == entry()
    assert MoveFile.from_json({"id": "archive", "kind": "archive", "name": "gridless-move.tar", "size": 0,
                               "sha256": SHA, "model": None}).kind == "archive"


@pytest.mark.parametrize("changes", [
    {"id": "../x"}, {"id": ""}, {"kind": "script"}, {"name": "../../etc/passwd"}, {"name": "a/b.gguf"},
    {"name": "..\\evil.gguf"}, {"name": ""}, {"size": -1}, {"size": "10"}, {"size": True}, {"size": 1 << 50},
    {"sha256": "AB" * 32}, {"sha256": "ab" * 31}, {"model": None},
    {"model": {"id": "t", "job": "speech", "name": "T", "role": "model"}},
    {"model": {"id": "t", "job": "chat", "name": "T", "role": "weights"}},
    {"model": {"id": "t", "job": "chat", "name": "T", "role": "model", "path": "/etc/passwd"}},
    {"model": {"id": "t", "job": "chat", "name": "T", "role": "model", "context_choice": 10 ** 9}},
    {"kind": "archive"},  # an archive carries no model details
])
def test_bad_entries_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(BadManifest):
        MoveFile.from_json(entry(**changes))


def test_not_an_object_refused() -> None:
    with pytest.raises(BadManifest):
        MoveFile.from_json(["m1"])
