"""Names from outside (hub listings, uploads) are checked before any path is built from them."""

from __future__ import annotations

import ntpath
import posixpath
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.models.names import UnsafeName, model_id_from, safe_relative_path, safe_repo_id

GOOD_PATHS = [
    "Qwen3-0.6B-Q4_K_M.gguf",
    "en/en_US/lessac/medium/en_US-lessac-medium.onnx",
    "mmproj-model-f16.gguf",
    "model.bin",
    "sub folder/model (1).gguf",
    "_private/model+v2[final].safetensors",
]

BAD_PATHS = [
    "../evil",
    "a/../b",
    "..\\evil",
    "a\\b.gguf",
    "/etc/passwd",
    "C:\\evil.gguf",
    "C:evil",
    "c:/evil.gguf",
    "",
    "a//b",
    "./a",
    "a/./b",
    "a/",
    "..",
    ".",
    "a\x00b.gguf",
    "model.gguf\x00.txt",
    "a\nb.gguf",
    "tab\there.gguf",
    "bell\x07.gguf",
    "del\x7f.gguf",
    "model\u2024gguf",  # one dot leader
    "\u2025/evil",  # two dot leader
    "Qwen3\u20100.6B.gguf",  # hyphen, not '-'
    "\uff0fetc\uff0fpasswd",  # fullwidth solidus
    "\u0430pple.gguf",  # Cyrillic a
    "cafe\u0301.gguf",  # combining accent
    "model.gguf.",
    "model.gguf ",
    "dir./model.gguf",
    "dir /model.gguf",
    "-rf.gguf",
    ".hidden.gguf",
    "a:b.gguf",
    "~/model.gguf",
    "$HOME.gguf",
    "a" * 513,
    "a" * 201,
    "/".join(["d"] * 9),
]


@pytest.mark.parametrize("name", GOOD_PATHS)
def test_plain_hub_file_names_pass_unchanged(name: str) -> None:
    assert safe_relative_path(name) == name


@pytest.mark.parametrize("name", BAD_PATHS)
def test_unsafe_file_names_are_rejected(name: str) -> None:
    with pytest.raises(UnsafeName):
        safe_relative_path(name)


def test_unsafe_name_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"'\.\.' part"):
        safe_relative_path("a/../b")
    with pytest.raises(UnsafeName, match="absolute"):
        safe_relative_path("/etc/passwd")
    with pytest.raises(UnsafeName, match="backslash"):
        safe_relative_path("..\\evil")
    with pytest.raises(UnsafeName, match="ASCII"):
        safe_relative_path("\u0430pple.gguf")


def test_length_limits_are_at_the_edges() -> None:
    assert safe_relative_path("a" * 200) == "a" * 200
    deep = "/".join(["d"] * 7 + ["m.gguf"])
    assert safe_relative_path(deep) == deep
    long_path = "/".join(["a" * 63] * 8)
    assert len(long_path) == 511 and safe_relative_path(long_path) == long_path


@pytest.mark.parametrize("repo", ["Qwen/Qwen3-0.6B-GGUF", "ggml-org/SmolVLM-256M-Instruct-GGUF", "a/b",
                                  "unsloth/Qwen3-0.6B-GGUF", "user_1/model.v2"])
def test_repo_ids_of_the_form_owner_name_pass(repo: str) -> None:
    assert safe_repo_id(repo) == repo


@pytest.mark.parametrize("repo", ["../x", "a/b/c", "a", "a/..", "../..", "./x", "a/.", "a/b..c", "/a", "a/", "",
                                  "a\\b/c", "a b/c", "-a/b", "a/-b", ".a/b", "a/b\x00", "\u0430/b",
                                  "x/" + "a" * 97])
def test_bad_repo_ids_are_rejected(repo: str) -> None:
    with pytest.raises(UnsafeName, match="owner/name"):
        safe_repo_id(repo)


@pytest.mark.parametrize(("text", "expected"), [
    ("SmolLM2-135M-Instruct.Q4_1", "smollm2-135m-instruct.q4_1"),
    ("Qwen3 0.6B (Q4_K_M)", "qwen3-0.6b-q4_k_m"),
    ("../../etc/passwd", "etc-passwd"),
    ("///", "model"),
    ("..", "model"),
    ("", "model"),
    ("Ünïcödé", "n-c-d"),
])
def test_model_id_from_makes_a_plain_slug(text: str, expected: str) -> None:
    assert model_id_from(text) == expected


_ALPHABET = st.sampled_from(["a", "Z", "0", "_", "-", ".", "..", "/", "\\", ":", " ", "+", "(", "[", "~",
                             "\x00", "\n", "\u2024", "\u0430", "\uff0f", "é", "C:", "//"])
_NAMES = st.one_of(st.lists(_ALPHABET, max_size=24).map("".join), st.text(max_size=40))


@settings(max_examples=400, deadline=None)
@given(_NAMES)
def test_accepted_names_stay_inside_the_folder(name: str) -> None:
    """Whatever passes the check, joined under a base folder, stays strictly inside it on
    POSIX and on Windows path rules alike."""
    try:
        checked = safe_relative_path(name)
    except UnsafeName:
        return
    assert checked == name
    base = "/srv/models"
    joined = posixpath.normpath(posixpath.join(base, name))
    assert joined.startswith(base + "/") and ".." not in joined.split("/")
    win_base = "D:\\models"
    win_joined = ntpath.normpath(ntpath.join(win_base, name))
    assert win_joined.startswith(win_base + "\\") and ".." not in win_joined.split("\\")
    assert ntpath.splitdrive(name)[0] == "" and not name.endswith((".", " "))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_model_ids_are_always_plain(text: str) -> None:
    slug = model_id_from(text)
    assert re.fullmatch(r"[a-z0-9._-]{1,80}", slug)
    assert not slug.startswith(("-", ".")) and slug not in (".", "..")
