"""GGUF files made to stop a reader: counts that fit the file but no real model has, text
that would fill the memory, names that do not end. The largest are sparse: a hole after a
few bytes of header reads as zeros and takes no disk space (`st_blocks` stays tiny), so a
'1 TiB' file costs nothing; `remove` deletes them when a test is done."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

TIB = 1 << 40
MIB = 1 << 20
STRING, ARRAY, UINT8, UINT32 = 8, 9, 0, 4


def gguf_string(text: str | bytes) -> bytes:
    """A GGUF string: its length (u64) and its bytes."""
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def kv_string(key: str, value: str | bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", STRING) + gguf_string(value)


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<II", UINT32, value)


def gguf_head(*entries: bytes, tensors: int = 1, kv_count: int | None = None) -> bytes:
    """Magic, version 3, the counts, then the entries."""
    count = len(entries) if kv_count is None else kv_count
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, count) + b"".join(entries)


def f32_tensor(name: str, values: int, offset: int = 0) -> bytes:
    """One entry of the tensor table: a vector of `values` 32-bit floats at `offset`."""
    return gguf_string(name) + struct.pack("<IQIQ", 1, values, 0, offset)


LANGUAGE_MODEL = (kv_string("general.architecture", "llama"), kv_u32("llama.block_count", 2),
                  kv_u32("llama.embedding_length", 64), kv_u32("llama.attention.head_count", 4),
                  kv_u32("llama.vocab_size", 256))
"""What makes a header a language model's for the app's import checks."""


def write_sparse(path: Path, head: bytes, size: int) -> Path:
    """`head`, then a hole up to `size` bytes."""
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def write_huge_entry_count(path: Path) -> Path:
    """A 1 TiB sparse file whose header claims 2^36 metadata entries: at 13 bytes each (an empty key,
    a one-byte value) they fit the file, so only a cap on the count refuses it."""
    return write_sparse(path, gguf_head(kv_count=2**36), TIB)


def write_huge_vocabulary(path: Path) -> Path:
    """A 1 TiB sparse file with a vocabulary of 2^36 (empty) tokens, which fits the file."""
    tokens = gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 2**36)
    return write_sparse(path, gguf_head(*LANGUAGE_MODEL, tokens), TIB)


def write_many_entries(path: Path, *, count: int = 2**24, size: int = 256 * MIB) -> Path:
    """A real (not sparse) file of `size` zero bytes after a header claiming `count` entries."""
    with path.open("wb") as fh:
        head = gguf_head(kv_count=count)
        fh.write(head)
        chunk = bytes(8 * MIB)
        remaining = size - len(head)
        while remaining > 0:
            remaining -= fh.write(chunk[:remaining])
    return path


def write_long_strings(path: Path, *, count: int = 5000, length: int = 256 * 1024) -> Path:
    """A language model header with `count` metadata strings of `length` bytes (holes, so zeros), and one
    tensor whose data would lie past the end (so that a reader that keeps every string refuses the file
    only after holding all of them)."""
    with path.open("wb") as fh:
        fh.write(gguf_head(*LANGUAGE_MODEL, kv_count=len(LANGUAGE_MODEL) + count))
        for i in range(count):
            fh.write(gguf_string(f"general.note.{i}") + struct.pack("<IQ", STRING, length))
            fh.seek(length, 1)
        fh.write(f32_tensor("token_embd.weight", 1 << 20, offset=TIB))
        fh.truncate(fh.tell() + 64)
    return path


def write_long_architecture(path: Path, *, length: int = 10 * MIB) -> Path:
    """An architecture name of `length` letters, and one small tensor."""
    name = (b"llama" * (length // 5 + 1))[:length]
    head = gguf_head(kv_string("general.architecture", name), *LANGUAGE_MODEL[1:]) + f32_tensor("w", 16)
    return write_sparse(path, head, len(head) + 4096)


def write_nested_lists(path: Path, *, depth: int = 3) -> Path:
    """A metadata list of lists, `depth` deep, of one byte; and one small tensor."""
    nested = struct.pack("<IQ", UINT8, 1) + b"\x01"
    for _ in range(depth - 1):
        nested = struct.pack("<IQ", ARRAY, 1) + nested
    entry = gguf_string("general.nested") + struct.pack("<I", ARRAY) + nested
    head = gguf_head(*LANGUAGE_MODEL, entry) + f32_tensor("w", 16)
    return write_sparse(path, head, len(head) + 4096)


def remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def write_no_tensors(path: Path) -> Path:
    """A language model's header and nothing else: no tensors, no weights."""
    return write_sparse(path, gguf_head(*LANGUAGE_MODEL, tensors=0), 4096)


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "entries-2e36.gguf": (write_huge_entry_count, "claims 68719476736 metadata entries, more than the 4096"),
    "vocabulary-2e36.gguf": (write_huge_vocabulary, "'tokenizer.ggml.tokens' lists 68719476736 items"),
    "entries-2e24.gguf": (write_many_entries, "claims 16777216 metadata entries, more than the 4096"),
    "strings-1000.gguf": (lambda p: write_long_strings(p, count=1000), "more than 4 MiB of text"),
    "architecture-10mb.gguf": (write_long_architecture,
                               "architecture name (general.architecture) is 10485760 bytes long"),
    "nested-lists.gguf": (write_nested_lists, "'general.nested' is a list of lists"),
    "no-tensors.gguf": (write_no_tensors, "holds no tensors"),
}
"""Each hostile file by name: how to write it, and what its refusal says."""
