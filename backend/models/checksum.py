"""SHA-256 whose running state can be saved and restored.

A download that stops at 90 % (network lost, server killed) would otherwise have to read
those 90 % back from storage to finish its checksum. With OpenSSL's SHA-256 context
(a plain, documented C struct reached through ctypes) the state is saved next to the
partial file every so often and restored on resume, so only the bytes after the last
saved state are read again. Where that API is missing, `hashlib` is used and a resume
re-reads the whole partial file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["Sha256", "drop_checkpoint", "load_checkpoint", "save_checkpoint"]

_CTX_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len as 32-bit words


@functools.cache
def _libcrypto() -> Any:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
    except (OSError, AttributeError):
        return None
    init.argtypes, init.restype = [ctypes.c_void_p], ctypes.c_int
    update.argtypes, update.restype = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int
    final.argtypes, final.restype = [ctypes.c_char_p, ctypes.c_void_p], ctypes.c_int
    # prove the round trip once: a state copied out and back in must give hashlib's digest
    ctx = ctypes.create_string_buffer(_CTX_SIZE)
    init(ctx)
    update(ctx, b"gridless" * 13, 104)
    restored = ctypes.create_string_buffer(ctx.raw[:_CTX_SIZE], _CTX_SIZE)
    update(restored, b"!", 1)
    out = ctypes.create_string_buffer(32)
    final(out, restored)
    return lib if out.raw.hex() == hashlib.sha256(b"gridless" * 13 + b"!").hexdigest() else None


class Sha256:
    """`hashlib.sha256`-like; `state()` is None when the state cannot be saved."""

    def __init__(self, state: bytes | None = None) -> None:
        lib = _libcrypto()
        self._lib: Any = lib
        self._hashlib: Any = None
        self._ctx: Any = None
        if lib is None:
            if state is not None:
                raise ValueError("saved SHA-256 states cannot be restored here")
            self._hashlib = hashlib.sha256()
            return
        self._ctx = ctypes.create_string_buffer(state, _CTX_SIZE) if state else ctypes.create_string_buffer(_CTX_SIZE)
        if state is None:
            lib.SHA256_Init(self._ctx)

    @staticmethod
    def resumable() -> bool:
        return _libcrypto() is not None

    def update(self, data: bytes) -> None:
        if self._hashlib is not None:
            self._hashlib.update(data)
        else:
            self._lib.SHA256_Update(self._ctx, data, len(data))

    def state(self) -> bytes | None:
        return None if self._ctx is None else bytes(self._ctx.raw[:_CTX_SIZE])

    def hexdigest(self) -> str:
        if self._hashlib is not None:
            return self._hashlib.hexdigest()
        copy = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)  # Final consumes the context
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, copy)
        return out.raw.hex()


def _checkpoint_path(part: Path) -> Path:
    return part.with_name(part.name + ".sha256state")


def save_checkpoint(part: Path, position: int, state: bytes) -> None:
    """Written atomically; only ever describes bytes that are already on storage."""
    path = _checkpoint_path(part)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"position": position, "state": state.hex()}))
    os.replace(tmp, path)


def load_checkpoint(part: Path, available: int) -> tuple[int, Sha256] | None:
    """The saved position and hasher, if there is a usable one for a part file of `available` bytes."""
    path = _checkpoint_path(part)
    try:
        saved = json.loads(path.read_text())
        position, state = int(saved["position"]), bytes.fromhex(saved["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 < position <= available or len(state) != _CTX_SIZE or not Sha256.resumable():
        return None
    return position, Sha256(state)


def drop_checkpoint(part: Path) -> None:
    _checkpoint_path(part).unlink(missing_ok=True)
