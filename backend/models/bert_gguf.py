"""A BERT sentence-embedding model folder (safetensors weights, WordPiece vocabulary, a
sentence-transformers pooling config) written as an F16 GGUF that llama.cpp loads as `bert`.

The bundled embedding model ships as safetensors; llama.cpp reads GGUF. Converting it here, with
numpy and the `gguf` package only, lets the app write it on first start without torch or the
hub. The safetensors file is read by hand: its header is checked against the file (every
tensor's offsets inside the data, sizes that match dtype and shape, no overlaps) before any
byte of it is used, so a damaged or hostile file is refused with a reason.

What llama.cpp's `bert` graph expects, and how its WordPiece tokenizer reads the vocabulary: a
piece that continues a word ("##ing") is stored without its "##", a piece that starts a word
gets the "\u2581" word-start mark, and special tokens ("[CLS]") stay as they are and are marked
as control tokens. The [CLS] id is the beginning-of-text id, [SEP] is added after the text.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

__all__ = ["BertConversion", "ConversionError", "SafetensorsTensor", "convert_bert", "read_safetensors",
           "read_safetensors_header", "wordpiece_vocabulary"]

WORD_START = "\u2581"
CONVERTER_VERSION = 1
"""Changes when the converter writes something different: bundled files are then written again."""

_HEADER_MAX = 16 * 1024 * 1024
_DTYPES: dict[str, tuple[str, int]] = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
                                       "I64": ("<i8", 8), "I32": ("<i4", 4)}
_SPECIAL_KEYS = ("cls_token", "sep_token", "unk_token", "pad_token", "mask_token")
_KEEP_F32 = (gguf.MODEL_TENSOR.POS_EMBD, gguf.MODEL_TENSOR.TOKEN_TYPES)
"""Kept in full precision, as llama.cpp's own converter does: tiny, and added to every token."""
_POOLING = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN, "pooling_mode_cls_token": gguf.PoolingType.CLS}


class ConversionError(ValueError):
    """The folder is not a BERT embedding model this converter can write; the message says why."""


@dataclass(kw_only=True, slots=True, frozen=True)
class SafetensorsTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    """Offsets in the data section (after the header)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class BertConversion:
    """What was written."""

    path: Path
    dim: int
    layers: int
    context_length: int
    vocab_size: int
    pooling: str
    size: int


def read_safetensors_header(path: Path) -> tuple[dict[str, SafetensorsTensor], int]:
    """The tensors a safetensors file lists, and where its data starts; every entry checked
    against the file's size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ConversionError(f"{path.name} is too small to be a safetensors file")
            (header_len,) = struct.unpack("<Q", head)
            if header_len < 2 or header_len > _HEADER_MAX or 8 + header_len > size:
                raise ConversionError(f"{path.name} is not a safetensors file: its header length {header_len} "
                                      f"does not fit a file of {size} bytes")
            raw = fh.read(header_len)
    except OSError as exc:
        raise ConversionError(f"{path.name} cannot be read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConversionError(f"{path.name} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ConversionError(f"{path.name} is not a safetensors file: its header is not a JSON object")
    data_start = 8 + header_len
    data_size = size - data_start
    tensors: dict[str, SafetensorsTensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _entry(path.name, name, entry, data_size)
    spans = sorted((t.begin, t.end, t.name) for t in tensors.values() if t.end > t.begin)
    for (_, end, first), (begin, _, second) in itertools.pairwise(spans):
        if begin < end:
            raise ConversionError(f"{path.name} is damaged: tensors '{first}' and '{second}' overlap")
    return tensors, data_start


def _entry(file_name: str, name: str, entry: Any, data_size: int) -> SafetensorsTensor:
    if not isinstance(entry, dict):
        raise ConversionError(f"{file_name}: the entry for '{name}' is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPES:
        raise ConversionError(f"{file_name}: tensor '{name}' has the type {dtype!r}, which is not supported here")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ConversionError(f"{file_name}: tensor '{name}' has no valid shape")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise ConversionError(f"{file_name}: tensor '{name}' has no valid data offsets")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise ConversionError(f"{file_name}: tensor '{name}' has invalid data offsets {begin}..{end}")
    if end > data_size:
        raise ConversionError(f"{file_name} is truncated: tensor '{name}' ends at byte {end} of the data, "
                              f"which has {data_size}")
    expected = math.prod(shape) * _DTYPES[dtype][1]
    if end - begin != expected:
        raise ConversionError(f"{file_name}: tensor '{name}' takes {end - begin} bytes, but a {dtype} tensor "
                              f"of shape {shape} needs {expected}")
    return SafetensorsTensor(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every floating-point tensor of the file as float32 (integer tensors are left out)."""
    tensors, data_start = read_safetensors_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out: dict[str, np.ndarray] = {}
    for t in tensors.values():
        if t.dtype.startswith("I"):
            continue
        raw = data[data_start + t.begin: data_start + t.end]
        numpy_type, _ = _DTYPES[t.dtype]
        values = raw.view(numpy_type)
        if t.dtype == "BF16":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        out[t.name] = values.astype(np.float32).reshape(t.shape)
    del data
    return out


def wordpiece_vocabulary(pieces: list[str], special: set[str]) -> tuple[list[str], list[int]]:
    """A WordPiece vocabulary as llama.cpp's `bert` tokenizer reads it, with each token's type."""
    tokens: list[str] = []
    types: list[int] = []
    for piece in pieces:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("##") and len(piece) > 2:
            tokens.append(piece[2:])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(WORD_START + piece)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _json(folder: Path, name: str, required: bool = True) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        if required:
            raise ConversionError(f"{folder} has no {name}")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return value


def _vocabulary(folder: Path) -> list[str]:
    path = folder / "vocab.txt"
    if not path.is_file():
        raise ConversionError(f"{folder} has no vocab.txt (a WordPiece vocabulary)")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path} cannot be read: {exc}") from None
    while lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _special_tokens(folder: Path, pieces: list[str]) -> dict[str, int]:
    """cls/sep/unk/pad/mask → their ids in the vocabulary."""
    names = {**_json(folder, "tokenizer_config.json", required=False), **_json(folder, "special_tokens_map.json",
                                                                                required=False)}
    index = {piece: i for i, piece in enumerate(pieces)}
    ids: dict[str, int] = {}
    for key in _SPECIAL_KEYS:
        value = names.get(key, "[" + key.removesuffix("_token").upper() + "]")
        if isinstance(value, dict):
            value = value.get("content")
        if not isinstance(value, str) or value not in index:
            raise ConversionError(f"the vocabulary has no {key.replace('_', ' ')} ({value!r})")
        ids[key] = index[value]
    return ids


def _pooling(folder: Path) -> gguf.PoolingType:
    config = _json(folder / "1_Pooling", "config.json", required=False)
    if not config:
        return gguf.PoolingType.MEAN
    chosen = [pooling for key, pooling in _POOLING.items() if config.get(key)]
    others = [key for key, value in config.items() if key.startswith("pooling_mode_") and value
              and key not in _POOLING]
    if others or len(chosen) != 1:
        raise ConversionError(f"its pooling ({', '.join(others) or 'none or several'}) is not one llama.cpp has; "
                              "only mean or CLS pooling can be converted")
    return chosen[0]


def _hparam(config: Mapping[str, Any], key: str, kind: type = int) -> Any:
    value = config.get(key)
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConversionError(f"config.json has no valid '{key}'")
    if kind is float and (not isinstance(value, int | float) or isinstance(value, bool) or not value > 0):
        raise ConversionError(f"config.json has no valid '{key}'")
    return value


def _hf_name(name: str) -> str:
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-5] + ".bias"
    return name


def convert_bert(folder: Path, out: Path, *, name: str | None = None, license: str | None = None) -> BertConversion:
    """Write the BERT model in `folder` as an F16 GGUF at `out` (overwritten)."""
    config = _json(folder, "config.json")
    if config.get("model_type") != "bert":
        raise ConversionError(f"{folder.name} is a '{config.get('model_type')}' model; only BERT can be converted")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("only BERT with absolute position embeddings can be converted")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"its activation '{config.get('hidden_act')}' is not BERT's GELU")
    dim, layers = _hparam(config, "hidden_size"), _hparam(config, "num_hidden_layers")
    heads, ff = _hparam(config, "num_attention_heads"), _hparam(config, "intermediate_size")
    context = _hparam(config, "max_position_embeddings")
    eps = float(_hparam(config, "layer_norm_eps", float))
    type_count = int(config.get("type_vocab_size") or 1)
    if dim % heads:
        raise ConversionError(f"its width {dim} is not a multiple of its {heads} attention heads")
    pieces = _vocabulary(folder)
    vocab_size = _hparam(config, "vocab_size")
    if len(pieces) != vocab_size:
        raise ConversionError(f"vocab.txt has {len(pieces)} pieces but config.json says {vocab_size}")
    if len(set(pieces)) != len(pieces):
        raise ConversionError("vocab.txt lists a piece more than once")
    special = _special_tokens(folder, pieces)
    pooling = _pooling(folder)
    weights_file = folder / "model.safetensors"
    if not weights_file.is_file():
        raise ConversionError(f"{folder} has no model.safetensors")
    weights = {_hf_name(k): v for k, v in read_safetensors(weights_file).items()}

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, layers)
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]
    expected_shapes = _expected_shapes(dim, ff, layers, context, vocab_size, type_count)
    mapped: dict[str, tuple[np.ndarray, bool]] = {}
    for hf_name, array in weights.items():
        found = names.get_type_and_name(hf_name, try_suffixes=(".weight", ".bias"))
        if found is None:
            continue  # the pooler and the masked-language head are not used for embeddings
        kind, gguf_name = found
        if gguf_name in mapped:
            raise ConversionError(f"model.safetensors holds '{gguf_name}' twice")
        mapped[gguf_name] = (array, kind in _KEEP_F32)
    missing = sorted(set(expected_shapes) - set(mapped))
    if missing:
        raise ConversionError(f"model.safetensors lacks {len(missing)} tensor(s) BERT needs, such as '{missing[0]}'")
    for gguf_name, shape in expected_shapes.items():
        if mapped[gguf_name][0].shape != shape:
            raise ConversionError(f"tensor '{gguf_name}' has the shape {mapped[gguf_name][0].shape}; "
                                  f"the config says {shape}")

    tokens, types = wordpiece_vocabulary(pieces, {pieces[i] for i in special.values()})
    writer = gguf.GGUFWriter(out, arch)
    writer.add_name(name or folder.name)
    if license:
        writer.add_license(license)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(context)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ff)
    writer.add_block_count(layers)
    writer.add_head_count(heads)
    writer.add_layer_norm_eps(eps)
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(type_count)
    writer.add_bos_token_id(special["cls_token"])
    writer.add_sep_token_id(special["sep_token"])
    writer.add_unk_token_id(special["unk_token"])
    writer.add_pad_token_id(special["pad_token"])
    writer.add_mask_token_id(special["mask_token"])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)
    for gguf_name in sorted(mapped, key=_tensor_order):
        array, keep_f32 = mapped[gguf_name]
        if array.ndim >= 2 and not keep_f32:
            array = array.astype(np.float16)
        writer.add_tensor(gguf_name, np.ascontiguousarray(array))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return BertConversion(path=out, dim=dim, layers=layers, context_length=context, vocab_size=vocab_size,
                          pooling=pooling.name.lower(), size=out.stat().st_size)


def _expected_shapes(dim: int, ff: int, layers: int, context: int, vocab: int,
                     type_count: int) -> dict[str, tuple[int, ...]]:
    """Every tensor llama.cpp's `bert` loader requires, with its numpy shape (rows, columns)."""
    def tensor(kind: gguf.MODEL_TENSOR, suffix: str, bid: int | None = None) -> str:
        base = gguf.TENSOR_NAMES[kind]
        return (base.format(bid=bid) if bid is not None else base) + "." + suffix

    shapes: dict[str, tuple[int, ...]] = {
        tensor(gguf.MODEL_TENSOR.TOKEN_EMBD, "weight"): (vocab, dim),
        tensor(gguf.MODEL_TENSOR.POS_EMBD, "weight"): (context, dim),
        tensor(gguf.MODEL_TENSOR.TOKEN_TYPES, "weight"): (type_count, dim),
        tensor(gguf.MODEL_TENSOR.TOKEN_EMBD_NORM, "weight"): (dim,),
        tensor(gguf.MODEL_TENSOR.TOKEN_EMBD_NORM, "bias"): (dim,),
    }
    for bid in range(layers):
        for kind in (gguf.MODEL_TENSOR.ATTN_Q, gguf.MODEL_TENSOR.ATTN_K, gguf.MODEL_TENSOR.ATTN_V,
                     gguf.MODEL_TENSOR.ATTN_OUT):
            shapes[tensor(kind, "weight", bid)] = (dim, dim)
            shapes[tensor(kind, "bias", bid)] = (dim,)
        for kind in (gguf.MODEL_TENSOR.ATTN_OUT_NORM, gguf.MODEL_TENSOR.LAYER_OUT_NORM):
            shapes[tensor(kind, "weight", bid)] = (dim,)
            shapes[tensor(kind, "bias", bid)] = (dim,)
        shapes[tensor(gguf.MODEL_TENSOR.FFN_UP, "weight", bid)] = (ff, dim)
        shapes[tensor(gguf.MODEL_TENSOR.FFN_UP, "bias", bid)] = (ff,)
        shapes[tensor(gguf.MODEL_TENSOR.FFN_DOWN, "weight", bid)] = (dim, ff)
        shapes[tensor(gguf.MODEL_TENSOR.FFN_DOWN, "bias", bid)] = (dim,)
    return shapes


def _tensor_order(name: str) -> tuple[int, int, str]:
    """Embeddings first, then the blocks in order (as llama.cpp's converter lays them out)."""
    parts = name.split(".")
    if parts[0] == "blk" and len(parts) > 1 and parts[1].isdigit():
        return 1, int(parts[1]), name
    return 0, 0, name
