"""The GGUF header reader against files made to stop it: counts that fit the file but no real
model has, text that would fill the memory, names that never end. Each is refused with its
own reason; the ones an unbounded reader would walk for hours are read in a child process
that a hang cannot outlive."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.models import gguf_limits as cap
from backend.models.gguf_info import GgufError, read_gguf_info
from tests.hostile_ggufs import (
    ARRAY,
    HOSTILE,
    LANGUAGE_MODEL,
    STRING,
    UINT8,
    f32_tensor,
    gguf_head,
    gguf_string,
    kv_string,
    write_long_strings,
    write_sparse,
)

ROOT = Path(__file__).resolve().parents[3]
HANG_GUARD_S = 30


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A folder for hostile files, emptied after the test: the sparse ones claim a tebibyte each."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()


def refusal(path: Path) -> str:
    """read_gguf_info's refusal of `path`, read in a child process (killed after HANG_GUARD_S)."""
    code = ("import sys\nfrom backend.models.gguf_info import GgufError, read_gguf_info\n"
            "try:\n    read_gguf_info(__import__('pathlib').Path(sys.argv[1]))\n"
            "except GgufError as exc:\n    print(exc)\nelse:\n    print('accepted')\n")
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=HANG_GUARD_S, check=True)
    return result.stdout.strip()


def error_for(path: Path) -> str:
    with pytest.raises(GgufError) as caught:
        read_gguf_info(path)
    return str(caught.value)


@pytest.mark.parametrize("name", ["entries-2e36.gguf", "vocabulary-2e36.gguf", "entries-2e24.gguf"])
def test_counts_that_fit_the_file_but_no_model_has_are_refused(scratch: Path, name: str) -> None:
    """2^36 entries or tokens in a 1 TiB sparse file, 2^24 entries in a real 256 MiB file: each fits
    the bytes, so only a cap on the count stops a reader from walking them for hours."""
    write, reason = HOSTILE[name]
    path = write(scratch / name)
    assert path.stat().st_blocks * 512 < 300 * cap.MIB, "the sparse files take no real space"
    message = refusal(path)
    assert reason in message and "damaged" in message, message


def test_a_tensor_count_over_the_cap(scratch: Path) -> None:
    path = write_sparse(scratch / "tensors.gguf", gguf_head(*LANGUAGE_MODEL, tensors=cap.MAX_TENSORS + 1), 1 << 30)
    assert f"claims {cap.MAX_TENSORS + 1} tensors, more than the {cap.MAX_TENSORS}" in error_for(path)


def test_lists_over_the_cap_in_all(scratch: Path) -> None:
    """Each list under the cap for one list, together over the cap for all."""
    each = cap.MAX_ARRAY_ITEMS_TOTAL // 2
    lists = [gguf_string(f"general.list{i}") + struct.pack("<IIQ", ARRAY, UINT8, each) + bytes(each)
             for i in range(3)]
    path = scratch / "lists.gguf"
    path.write_bytes(gguf_head(*LANGUAGE_MODEL, *lists) + f32_tensor("w", 16) + bytes(4096))
    message = error_for(path)
    assert f"more than {cap.MAX_ARRAY_ITEMS_TOTAL} items in all (at 'general.list2')" in message, message


def test_text_kept_from_the_metadata_is_capped_in_all(scratch: Path) -> None:
    """A thousand strings of 256 KiB: each short enough to keep, all together 250 MiB."""
    write, reason = HOSTILE["strings-1000.gguf"]
    message = error_for(write(scratch / "strings.gguf"))
    assert reason in message and "damaged" in message, message


def test_a_header_longer_than_the_cap(scratch: Path) -> None:
    """Strings too long to keep cost nothing but a step; the header's length still ends the walk."""
    path = write_long_strings(scratch / "long.gguf", count=600, length=cap.MAX_STRING_KEPT + 1)
    message = error_for(path)
    assert f"goes on past {cap.MAX_HEADER_BYTES // cap.MIB} MiB" in message and "general.note." in message, message


def test_a_10_mb_architecture_name_is_refused_as_such(scratch: Path) -> None:
    write, reason = HOSTILE["architecture-10mb.gguf"]
    message = error_for(write(scratch / "arch.gguf"))
    assert reason in message and f"more than the {cap.MAX_ARCHITECTURE_NAME} allowed" in message, message
    assert "does not say" not in message


@pytest.mark.parametrize("depth", [2, 3, 40])
def test_lists_of_lists_are_refused_as_such(scratch: Path, depth: int) -> None:
    nested = struct.pack("<IQ", UINT8, 1) + b"\x01"
    for _ in range(depth - 1):
        nested = struct.pack("<IQ", ARRAY, 1) + nested
    entry = gguf_string("general.nested") + struct.pack("<I", ARRAY) + nested
    path = write_sparse(scratch / "nested.gguf", gguf_head(*LANGUAGE_MODEL, entry) + f32_tensor("w", 16), 4096)
    message = error_for(path)
    assert "'general.nested' is a list of lists" in message and "unknown value type" not in message, message


def test_a_header_without_tensors_is_not_a_model(scratch: Path) -> None:
    write, reason = HOSTILE["no-tensors.gguf"]
    message = error_for(write(scratch / "empty.gguf"))
    assert reason in message and "not a model" in message, message


def test_a_tensor_name_longer_than_the_engines_read(scratch: Path) -> None:
    longest = f32_tensor("w" * cap.MAX_TENSOR_NAME, 16)
    accepted = write_sparse(scratch / "ok.gguf", gguf_head(*LANGUAGE_MODEL) + longest, 4096)
    assert read_gguf_info(accepted).tensor_count == 1
    too_long = f32_tensor("w" * (cap.MAX_TENSOR_NAME + 1), 16)
    refused = write_sparse(scratch / "name.gguf", gguf_head(*LANGUAGE_MODEL) + too_long, 4096)
    assert f"tensor name is {cap.MAX_TENSOR_NAME + 1} bytes long" in error_for(refused)


def test_the_largest_real_header_is_read(scratch: Path) -> None:
    """Shaped like gpt-oss's, the longest real header known (gguf_limits): 201088 tokens with their
    scores and types, 446189 merges, 64 entries and 1086 tensors. The caps leave it alone."""
    rng = random.Random(0)

    def strings(key: str, count: int) -> bytes:
        texts = [bytes(rng.choices(b"abcdefghij ", k=rng.randint(2, 14))) for _ in range(count)]
        return gguf_string(key) + struct.pack("<IIQ", ARRAY, STRING, count) + b"".join(map(gguf_string, texts))

    def scalars(key: str, count: int) -> bytes:
        return gguf_string(key) + struct.pack("<IIQ", ARRAY, 6, count) + bytes(4 * count)  # 6: float32

    template = kv_string("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}" * 300)
    lists = [strings("tokenizer.ggml.tokens", 201_088), scalars("tokenizer.ggml.scores", 201_088),
             scalars("tokenizer.ggml.token_type", 201_088), strings("tokenizer.ggml.merges", 446_189)]
    fillers = [kv_string(f"general.extra.{i}", "x" * 40) for i in range(64 - len(LANGUAGE_MODEL) - 5)]
    tensors = b"".join(f32_tensor(f"blk.{i}.ffn_down_exps.weight", 16, offset=64 * i) for i in range(1086))
    path = scratch / "largest.gguf"
    path.write_bytes(gguf_head(*LANGUAGE_MODEL, template, *lists, *fillers, tensors=1086) + tensors
                     + bytes(1086 * 64 + 64))
    info = read_gguf_info(path)
    assert info.array_lengths["tokenizer.ggml.merges"] == 446_189 and info.tensor_count == 1086
    assert info.has_chat_template and len(info.metadata) == 64 - 4, "every entry but the four lists is kept"
