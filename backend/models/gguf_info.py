"""Read what a GGUF file says about itself, without loading it.

The header is parsed directly from a memory map with every count bounded by the bytes
that are really there, so a damaged or hostile file (a tensor count of 2^60, a string
longer than the file, a file cut short) is refused in milliseconds with a clear reason
instead of allocating memory or reading garbage. Counts that do fit the file are bounded
too, by what real models hold (`gguf_limits`): a header of 2^36 entries in a sparse file
of 1 TiB would otherwise keep the reader busy for hours. Type codes and block sizes come
from the `gguf` package.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import (
    GGML_QUANT_SIZES,
    MODEL_ARCH,
    MODEL_ARCH_NAMES,
    GGMLQuantizationType,
    GGUFValueType,
    LlamaFileType,
    PoolingType,
)

from . import gguf_limits as cap

__all__ = ["ENCODER_ARCHITECTURES", "GgufError", "GgufIncomplete", "GgufInfo", "quantization_from_name",
           "read_gguf_info"]

MAGIC = b"GGUF"
_SCALARS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"), GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"), GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"), GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"), GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"), GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
ENCODER_ARCHITECTURES = frozenset(
    MODEL_ARCH_NAMES[arch] for arch in (
        MODEL_ARCH.BERT, MODEL_ARCH.MODERN_BERT, MODEL_ARCH.NOMIC_BERT, MODEL_ARCH.NOMIC_BERT_MOE, MODEL_ARCH.NEO_BERT,
        MODEL_ARCH.JINA_BERT_V2, MODEL_ARCH.JINA_BERT_V3, MODEL_ARCH.EUROBERT, MODEL_ARCH.T5ENCODER,
        MODEL_ARCH.GEMMA_EMBEDDING))
"""Architectures that only encode text: they embed it and cannot write."""
_MAX_DIMS = 8


class GgufError(ValueError):
    """The file is not a usable GGUF; the message says why in words a person understands."""


class GgufNoArchitecture(GgufError):
    """A well-formed GGUF without `general.architecture` (some image model conversions)."""


class GgufIncomplete(GgufError):
    """Only the start of the file was given, and the header goes on past it."""


@dataclass(kw_only=True, slots=True)
class GgufInfo:
    version: int
    architecture: str
    name: str
    file_size: int
    tensor_count: int
    parameters: int
    data_end: int
    metadata: dict[str, Any] = field(default_factory=dict)
    """Scalars and strings as they are; long arrays (the vocabulary) only as their length."""
    array_lengths: dict[str, int] = field(default_factory=dict)

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def count(self, key: str, default: int = 0) -> int:
        """A whole-number architecture value (the first, for per-layer arrays)."""
        return _count(self.arch_value(key, default), f"{self.architecture}.{key}")

    @property
    def is_projector(self) -> bool:
        """A vision projector (mmproj), not a language model."""
        return self.architecture == "clip"

    @property
    def layers(self) -> int:
        return self.count("block_count")

    @property
    def trained_context(self) -> int | None:
        return self.count("context_length") or None

    @property
    def embedding_length(self) -> int:
        return self.count("embedding_length")

    @property
    def head_count(self) -> int:
        return self.count("attention.head_count")

    @property
    def head_count_kv(self) -> int:
        return self.count("attention.head_count_kv") or self.head_count

    @property
    def key_length(self) -> int:
        heads = self.head_count
        return self.count("attention.key_length") or (self.embedding_length // heads if heads else 0)

    @property
    def value_length(self) -> int:
        return self.count("attention.value_length") or self.key_length

    @property
    def vocab_size(self) -> int:
        return self.count("vocab_size") or self.array_lengths.get("tokenizer.ggml.tokens", 0)

    @property
    def feed_forward_length(self) -> int:
        return self.count("feed_forward_length")

    @property
    def quantization(self) -> str | None:
        """`Q4_K_M`, `Q8_0`, `F16`… from `general.file_type`, else from the file name."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int):
            try:
                return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
            except ValueError:
                return None
        return None

    @property
    def license(self) -> str | None:
        value = self.metadata.get("general.license")
        return str(value) if value else None

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get("tokenizer.chat_template"))

    @property
    def pooling(self) -> str | None:
        """How the model makes one vector of a text ("mean", "cls", "last", "rank"), if it says."""
        value = self.arch_value("pooling_type")
        if value is None:
            return None
        try:
            return PoolingType(_count(value, f"{self.architecture}.pooling_type")).name.lower()
        except ValueError:
            return None

    @property
    def is_embedding(self) -> bool:
        """An embedding model: an encoder architecture (BERT and its kin), or a model whose header
        names a pooling of its tokens into one vector (decoder-based embedders such as Qwen3-Embedding)."""
        return self.architecture in ENCODER_ARCHITECTURES or self.pooling in ("mean", "cls", "last")

    def summary(self) -> dict[str, Any]:
        """What the registry keeps about the file (JSON-friendly)."""
        return {"architecture": self.architecture, "name": self.name, "parameters": self.parameters,
                "layers": self.layers, "embedding_length": self.embedding_length, "head_count": self.head_count,
                "head_count_kv": self.head_count_kv, "key_length": self.key_length,
                "value_length": self.value_length, "vocab_size": self.vocab_size,
                "feed_forward_length": self.feed_forward_length, "trained_context": self.trained_context,
                "quantization": self.quantization, "license": self.license,
                "chat_template": self.has_chat_template, "projector": self.is_projector,
                "projection_dim": _count(self.metadata.get("clip.vision.projection_dim"), "clip.vision.projection_dim")
                or None,
                "size_label": self.metadata.get("general.size_label"), "pooling": self.pooling}


_MAX_COUNT = 1 << 40


def _count(value: Any, key: str) -> int:
    """A whole number ≥ 0 (per-layer arrays: the first one stands for all), else GgufError."""
    if isinstance(value, list):
        value = value[0] if value else 0
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise GgufError(f"its header has {value!r} for '{key}', where a whole number belongs; it is damaged")
    return value


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, size: int, total: int) -> None:
        self.buf, self.size, self.total, self.pos = buf, size, total, 0
        self.items = 0
        """List items read so far (the reader's work), bounded by cap.MAX_ARRAY_ITEMS_TOTAL."""
        self.kept = 0
        """Bytes of metadata text kept so far, bounded by cap.MAX_TEXT_KEPT."""

    def holds(self, n: int, what: str) -> None:
        """The file has `n` more bytes (else it is truncated)."""
        if n < 0 or self.pos + n > self.total:
            raise GgufError(f"the file ends inside its header ({what}); it is truncated or damaged")

    def need(self, n: int, what: str) -> None:
        """`n` more bytes of header are there to read."""
        self.holds(n, what)
        if self.pos + n > cap.MAX_HEADER_BYTES:
            raise GgufError(f"its header goes on past {cap.MAX_HEADER_BYTES // cap.MIB} MiB ({what}), far more "
                            "than any real model's; it is damaged")
        if self.pos + n > self.size:
            raise GgufIncomplete(f"the header goes on past the first {self.size} bytes")

    def unpack(self, fmt: struct.Struct, what: str) -> Any:
        self.need(fmt.size, what)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def string(self, what: str, keep: bool = True, limit: int | None = None, counted: bool = True) -> str | None:
        """The text, or None when not kept (`keep` false, or longer than cap.MAX_STRING_KEPT); `counted`
        text adds to what the header keeps in memory, which is capped."""
        length = self.unpack(_U64, what)
        if limit is not None and length > limit:
            raise GgufError(f"{what} is {length} bytes long, more than the {limit} allowed")
        self.need(length, what)
        start = self.pos
        self.pos += length
        if not keep or length > cap.MAX_STRING_KEPT:
            return None
        if counted:
            self.kept += length
            if self.kept > cap.MAX_TEXT_KEPT:
                raise GgufError(f"its metadata holds more than {cap.MAX_TEXT_KEPT // cap.MIB} MiB of text besides "
                                "the vocabulary, far more than any real model's; it is damaged")
        return bytes(self.buf[start:start + length]).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Step over `count` strings: the one loop whose length the file decides, so it is kept
        tight (about 0.1 µs a string here) and bounded by the caps on list lengths."""
        buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
        end = min(self.size, self.total, cap.MAX_HEADER_BYTES)
        for _ in range(count):
            if pos + 8 > end:
                self.pos = pos
                self.need(8, what)  # raises: truncated, past the header cap, or only the start of the file
            (length,) = unpack(buf, pos)
            pos += 8 + length
        self.pos = pos
        self.need(0, what)  # the last string's text is there too

    def value(self, vtype: int, key: str) -> tuple[Any, int | None]:
        """(value, list length or None); long lists are skipped, not kept."""
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], key), None
        if vtype == GGUFValueType.STRING:
            return self.string(key), None
        if vtype != GGUFValueType.ARRAY:
            raise GgufError(f"metadata '{key}' has an unknown value type {vtype}")
        item_type = self.unpack(_U32, key)
        count = self.unpack(_U64, key)
        if item_type == GGUFValueType.ARRAY:
            raise GgufError(f"metadata '{key}' is a list of lists, which llama.cpp cannot read; "
                            "the file cannot be loaded")
        if item_type != GGUFValueType.STRING and item_type not in _SCALARS:
            raise GgufError(f"metadata '{key}' is an array of unknown type {item_type}")
        width = _SCALARS[item_type].size if item_type in _SCALARS else 8  # a string has at least its length
        self.holds(count * width, key)
        if count > cap.MAX_ARRAY_ITEMS:
            raise GgufError(f"metadata '{key}' lists {count} items, more than the {cap.MAX_ARRAY_ITEMS} "
                            "a model can have; the header is damaged")
        self.items += count
        if self.items > cap.MAX_ARRAY_ITEMS_TOTAL:
            raise GgufError(f"its metadata lists hold more than {cap.MAX_ARRAY_ITEMS_TOTAL} items in all "
                            f"(at '{key}'), far more than any real model's; the header is damaged")
        self.need(count * width, key)
        if count <= cap.MAX_ARRAY_KEPT:
            if item_type == GGUFValueType.STRING:
                return [self.string(key) for _ in range(count)], count
            return [self.unpack(_SCALARS[item_type], key) for _ in range(count)], count
        if item_type == GGUFValueType.STRING:
            self.skip_strings(count, key)
        else:
            self.pos += count * width
        return None, count


def _tensor_bytes(dims: list[int], ggml_type: int, name: str) -> tuple[int, int]:
    elements = 1
    for d in dims:
        elements *= d
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise GgufError(f"tensor '{name}' has an unknown type {ggml_type}") from None
    if elements % block:
        raise GgufError(f"tensor '{name}' has {elements} values, not a whole number of blocks")
    return elements, elements // block * type_size


def read_gguf_info(path: Path, *, total_size: int | None = None) -> GgufInfo:
    """Parse the header and tensor table; raise GgufError with a plain reason if unusable.

    With `total_size`, `path` holds only the start of a file of that size (fetched from a
    server before downloading the rest); GgufIncomplete means more of it is needed."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise GgufError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    total = total_size if total_size is not None else size
    if size < 24:
        with path.open("rb") as fh:
            start = fh.read(4)
        if start != MAGIC:
            raise GgufError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF')")
        raise GgufError(f"{path.name} is truncated: {size} bytes cannot hold a GGUF header")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != MAGIC:
            raise GgufError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF')")
        cur = _Cursor(buf, size, total)
        cur.pos = 4
        version = cur.unpack(_U32, "version")
        if version not in (2, 3):
            raise GgufError(f"{path.name} is GGUF version {version}; only versions 2 and 3 are supported")
        tensor_count = cur.unpack(_U64, "tensor count")
        kv_count = cur.unpack(_U64, "metadata count")
        # every metadata entry takes at least 12 bytes and every tensor entry at least 28
        if kv_count * 12 > total or tensor_count * 28 > total:
            raise GgufError(f"{path.name} claims {kv_count} metadata entries and {tensor_count} tensors, "
                            "more than the file could hold; the header is damaged")
        if kv_count > cap.MAX_ENTRIES:
            raise GgufError(f"{path.name} claims {kv_count} metadata entries, more than the {cap.MAX_ENTRIES} "
                            "a model can have; the header is damaged")
        if tensor_count > cap.MAX_TENSORS:
            raise GgufError(f"{path.name} claims {tensor_count} tensors, more than the {cap.MAX_TENSORS} "
                            "a model can have; the header is damaged")
        metadata: dict[str, Any] = {}
        arrays: dict[str, int] = {}
        for _ in range(kv_count):
            key = cur.string("metadata key", limit=cap.MAX_KEY) or ""
            vtype = cur.unpack(_U32, key)
            if key == "general.architecture" and vtype == GGUFValueType.STRING:
                # said here, not skipped as too long and then reported as missing
                value, length = cur.string("its architecture name (general.architecture)",
                                           limit=cap.MAX_ARCHITECTURE_NAME), None
            else:
                value, length = cur.value(vtype, key)
            if length is not None:
                arrays[key] = length
            if value is not None:
                metadata[key] = value
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise GgufError(f"{path.name} has an invalid alignment {alignment!r}")
        parameters = 0
        data_extent = 0
        for _ in range(tensor_count):
            name = cur.string("tensor name", limit=cap.MAX_TENSOR_NAME, counted=False) or "?"
            n_dims = cur.unpack(_U32, name)
            if not 0 < n_dims <= _MAX_DIMS:
                raise GgufError(f"tensor '{name}' has {n_dims} dimensions")
            dims = [cur.unpack(_U64, name) for _ in range(n_dims)]
            ggml_type = cur.unpack(_U32, name)
            offset = cur.unpack(_U64, name)
            elements, nbytes = _tensor_bytes(dims, ggml_type, name)
            parameters += elements
            data_extent = max(data_extent, offset + nbytes)
        data_start = -(-cur.pos // alignment) * alignment
    data_end = data_start + data_extent
    if not tensor_count:
        raise GgufError(f"{path.name} holds no tensors (no weights), only a header; it is not a model")
    if data_end > total:
        raise GgufError(f"{path.name} is truncated: its tensors need {data_end} bytes but the file has {total}")
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise GgufNoArchitecture(f"{path.name} does not say which architecture it is (general.architecture)")
    name = metadata.get("general.name") or path.stem
    info = GgufInfo(version=version, architecture=architecture, name=str(name), file_size=total,
                    tensor_count=tensor_count, parameters=parameters, data_end=data_end,
                    metadata=metadata, array_lengths=arrays)
    info.summary()  # every number the app uses is checked now, not when it is first needed
    return info


_QUANT_IN_NAME = re.compile(
    r"(?i)(?<![A-Za-z0-9])(IQ\d_[A-Z]+|Q\d_K_[SML]|Q\d_K|Q\d_[01]|Q\d|BF16|F16|F32|FP16|FP32|TQ\d_\d|MXFP4)"
    r"(?![A-Za-z0-9])")


def quantization_from_name(file_name: str) -> str | None:
    """`model.Q4_K_M.gguf` → `Q4_K_M`; None when the name does not say."""
    match = _QUANT_IN_NAME.search(file_name.rsplit("/", 1)[-1])
    if not match:
        return None
    found = match.group(1).upper()
    return {"FP16": "F16", "FP32": "F32"}.get(found, found)
