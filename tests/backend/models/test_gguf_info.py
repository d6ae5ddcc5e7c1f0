"""The GGUF header reader: the real bundled model, and damaged or hostile files."""

from __future__ import annotations

import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.models.gguf_info import GgufError, read_gguf_info
from backend.models.gguf_info import quantization_from_name as quant
from tests.ggufs import finish_gguf, write_lm_gguf, write_oversized_count_gguf, write_projector_gguf

STRING, UINT32, ARRAY = 8, 4, 9


def s(text: str | bytes) -> bytes:
    """A GGUF string: u64 length and the bytes."""
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", STRING) + s(value)


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<I", UINT32) + struct.pack("<I", value)


def header(*kvs: bytes, tensors: int = 0, version: int = 3, kv_count: int | None = None) -> bytes:
    count = len(kvs) if kv_count is None else kv_count
    return b"GGUF" + struct.pack("<IQQ", version, tensors, count) + b"".join(kvs)


def tensor_info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) \
        + struct.pack("<IQ", ggml_type, offset)


def write(path: Path, data: bytes, pad: int = 64) -> Path:
    path.write_bytes(data + b"\0" * pad)
    return path


def error_for(path: Path) -> str:
    with pytest.raises(GgufError) as caught:
        read_gguf_info(path)
    message = str(caught.value)
    assert message and "Traceback" not in message and "struct" not in message and "unpack" not in message
    return message


# ----- the real bundled model ---------------------------------------------------------------


def test_bundled_model_header(smollm_path: Path) -> None:
    started = time.perf_counter()
    info = read_gguf_info(smollm_path)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"reading the header took {elapsed:.2f} s"
    assert info.version == 3 and info.architecture == "llama" and not info.is_projector
    assert info.layers == 30
    assert info.embedding_length == 576
    assert info.head_count == 9 and info.head_count_kv == 3
    assert info.key_length == 64 and info.value_length == 64
    assert info.vocab_size == 49152
    assert info.feed_forward_length == 1536
    assert info.trained_context == 8192
    assert info.quantization == "Q4_1"
    assert info.parameters == 134_515_008
    assert info.tensor_count == 272
    assert info.data_end == info.file_size == smollm_path.stat().st_size
    assert info.license == "apache-2.0" and info.has_chat_template
    assert info.array_lengths["tokenizer.ggml.tokens"] == 49152
    assert "tokenizer.ggml.tokens" not in info.metadata, "the vocabulary must not be kept in memory"


def test_bundled_model_summary_is_what_the_estimate_needs(smollm_path: Path) -> None:
    summary = read_gguf_info(smollm_path).summary()
    assert summary == summary | {
        "architecture": "llama", "layers": 30, "embedding_length": 576, "head_count": 9, "head_count_kv": 3,
        "key_length": 64, "value_length": 64, "vocab_size": 49152, "feed_forward_length": 1536,
        "trained_context": 8192, "quantization": "Q4_1", "parameters": 134_515_008, "projector": False,
        "projection_dim": None, "chat_template": True, "size_label": "135M"}


def _copy_prefix(source: Path, dest: Path, length: int) -> Path:
    with source.open("rb") as src, dest.open("wb") as out:
        remaining = length
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)
    return dest


def _first_tensor_name_at(path: Path) -> int:
    with path.open("rb") as fh:
        head = fh.read(4 << 20)
    position = head.find(s("token_embd.weight"))
    assert position > 0
    return position


@pytest.mark.parametrize("where", ["magic", "vocabulary", "tensor table", "tensor data", "last byte"])
def test_truncated_copies_of_the_bundled_model_are_refused(smollm_path: Path, tmp_path: Path, where: str) -> None:
    size = smollm_path.stat().st_size
    table = _first_tensor_name_at(smollm_path)
    cut = {"magic": 10, "vocabulary": 200_000, "tensor table": table + 40, "tensor data": size // 2,
           "last byte": size - 1}[where]
    path = _copy_prefix(smollm_path, tmp_path / "cut.gguf", cut)
    assert path.stat().st_size == cut
    started = time.perf_counter()
    message = error_for(path)
    assert time.perf_counter() - started < 0.5
    assert "truncated" in message or "ends" in message, message


@pytest.mark.parametrize("cut", [24, 30, 300, 4000])
def test_copies_cut_inside_the_first_entries_are_refused(smollm_path: Path, tmp_path: Path, cut: int) -> None:
    """So short a copy cannot hold the entries its header announces; that is said at once."""
    message = error_for(_copy_prefix(smollm_path, tmp_path / "cut.gguf", cut))
    assert "truncated" in message or "ends" in message or "more than the file could hold" in message, message


def test_oversized_counts_are_refused_at_once(tmp_path: Path) -> None:
    path = write_oversized_count_gguf(tmp_path / "huge.gguf")
    started = time.perf_counter()
    message = error_for(path)
    assert time.perf_counter() - started < 0.5
    assert "damaged" in message and str(2**60) in message


def test_oversized_metadata_count(tmp_path: Path) -> None:
    message = error_for(write(tmp_path / "kv.gguf", header(kv_count=2**40)))
    assert "damaged" in message


def test_key_length_of_2_62_is_refused(tmp_path: Path) -> None:
    data = header(kv_count=1) + struct.pack("<Q", 2**62) + b"general.architecture"
    message = error_for(write(tmp_path / "key.gguf", data))
    assert str(2**62) in message and "more than" in message


def test_string_value_longer_than_the_file(tmp_path: Path) -> None:
    data = header(kv_str("general.architecture", "llama"), s("general.name") + struct.pack("<IQ", STRING, 2**62))
    message = error_for(write(tmp_path / "value.gguf", data))
    assert "truncated" in message and "general.name" in message


def test_array_longer_than_the_file(tmp_path: Path) -> None:
    data = header(kv_str("general.architecture", "llama"),
                  s("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 2**61))
    message = error_for(write(tmp_path / "array.gguf", data))
    assert "truncated" in message and "tokenizer.ggml.tokens" in message


def test_unknown_value_type(tmp_path: Path) -> None:
    data = header(s("general.architecture") + struct.pack("<I", 99) + s("llama"))
    message = error_for(write(tmp_path / "type.gguf", data))
    assert "unknown value type 99" in message and "general.architecture" in message


def test_unknown_array_item_type(tmp_path: Path) -> None:
    data = header(kv_str("general.architecture", "llama"), s("odd") + struct.pack("<IIQ", ARRAY, 77, 1))
    assert "unknown type 77" in error_for(write(tmp_path / "array-type.gguf", data))


@pytest.mark.parametrize("version", [0, 1, 4, 99, 2**32 - 1])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    message = error_for(write(tmp_path / "v.gguf", header(kv_str("general.architecture", "llama"), version=version)))
    assert f"version {version}" in message and "supported" in message


@pytest.mark.parametrize(("content", "label"), [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "png"),
    (b"just some notes\n" * 50, "text"),
    (b"", "empty"),
    (b"GGU", "three bytes"),
    (b"\x80\x04\x95" + b"\0" * 40, "pickle"),
])
def test_files_that_are_not_gguf(tmp_path: Path, content: bytes, label: str) -> None:
    path = tmp_path / f"{label}.gguf"
    path.write_bytes(content)
    message = error_for(path)
    assert "not a GGUF model file" in message and path.name in message


def test_a_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in error_for(tmp_path / "absent.gguf")


def test_a_short_gguf_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "short.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert "truncated" in error_for(path)


def test_missing_architecture(tmp_path: Path) -> None:
    data = header(kv_str("general.name", "x"), tensors=1) + tensor_info("w", [16], 0, 0)
    message = error_for(write(tmp_path / "noarch.gguf", data, pad=256))
    assert "architecture" in message


@pytest.mark.parametrize("alignment", [0, 3, 48])
def test_invalid_alignment(tmp_path: Path, alignment: int) -> None:
    data = header(kv_str("general.architecture", "llama"), kv_u32("general.alignment", alignment))
    assert "alignment" in error_for(write(tmp_path / "align.gguf", data))


def test_unknown_tensor_type_and_dimensions(tmp_path: Path) -> None:
    arch = kv_str("general.architecture", "llama")
    bad_type = header(arch, tensors=1) + tensor_info("w", [32], 999, 0)
    assert "unknown type 999" in error_for(write(tmp_path / "ttype.gguf", bad_type, pad=256))
    no_dims = header(arch, tensors=1) + tensor_info("w", [], 0, 0)
    assert "dimensions" in error_for(write(tmp_path / "dims0.gguf", no_dims, pad=256))
    many_dims = header(arch, tensors=1) + tensor_info("w", [1] * 9, 0, 0)
    assert "dimensions" in error_for(write(tmp_path / "dims9.gguf", many_dims, pad=256))
    partial_block = header(arch, tensors=1) + tensor_info("w", [33], int(gguf.GGMLQuantizationType.Q8_0), 0)
    assert "blocks" in error_for(write(tmp_path / "blocks.gguf", partial_block, pad=256))


def test_tensor_beyond_the_end(tmp_path: Path) -> None:
    data = header(kv_str("general.architecture", "llama"), tensors=1) + tensor_info("w", [16], 0, 2**50)
    message = error_for(write(tmp_path / "offset.gguf", data, pad=256))
    assert "truncated" in message and "tensors need" in message


def test_written_models_and_projectors(tmp_path: Path) -> None:
    lm = read_gguf_info(write_lm_gguf(tmp_path / "lm.gguf", size_mb=0.1, layers=3, embedding=32, context=1024))
    assert (lm.architecture, lm.layers, lm.embedding_length, lm.trained_context) == ("llama", 3, 32, 1024)
    assert lm.head_count == 4 and lm.head_count_kv == 2 and lm.key_length == 8 and lm.vocab_size == 256
    assert lm.quantization == "F32" and lm.name == "tiny test model" and not lm.is_projector
    assert lm.data_end == lm.file_size
    proj = read_gguf_info(write_projector_gguf(tmp_path / "mmproj.gguf", projection_dim=96))
    assert proj.is_projector and proj.summary()["projection_dim"] == 96 and proj.summary()["projector"]


@pytest.mark.parametrize(("name", "expected"), [
    ("Qwen3-0.6B-Q4_K_M.gguf", "Q4_K_M"),
    ("model.Q4_K_M.gguf", "Q4_K_M"),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("gemma-3-1b-it-q8_0.gguf", "Q8_0"),
    ("Llama-3.2-1B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
    ("mmproj-model-f16.gguf", "F16"),
    ("model-bf16.gguf", "BF16"),
    ("org/repo/phi-Q5_K_S.gguf", "Q5_K_S"),
    ("model-Q6_K.gguf", "Q6_K"),
    ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
    ("sd_turbo.safetensors", None),
    ("model.gguf", None),
    ("Q4_K_M/model.gguf", None),
    ("notQ4_0.gguf", None),
])
def test_quantization_from_name(name: str, expected: str | None) -> None:
    assert quant(name) == expected


# ----- fuzzing the header of a small model --------------------------------------------------


@pytest.fixture(scope="module")
def small_gguf() -> Iterator[tuple[bytes, int, Path]]:
    """The bytes of a small written model, its header length, and a scratch file path."""
    folder = Path(tempfile.mkdtemp(prefix="gguf-fuzz-"))
    try:
        path = write_lm_gguf(folder / "small.gguf", size_mb=0.07)
        info = read_gguf_info(path)
        data = path.read_bytes()
        header_end = info.data_end - 4 * info.parameters  # all F32, so the data follows the header
        assert 0 < header_end < len(data)
        yield data, header_end, folder / "mutant.gguf"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_EXTREMES = [0, 1, 7, 8, 9, 12, 255, 2**31, 2**32 - 1, 2**32, 2**62, 2**63, 2**64 - 1]

_MUTATION = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("u32"), st.integers(0, 10**6), st.sampled_from(_EXTREMES[:9])),
    st.tuples(st.just("u64"), st.integers(0, 10**6), st.sampled_from(_EXTREMES)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=6), cut=st.none() | st.integers(0, 10**6))
def test_damaged_headers_fail_only_with_gguf_error(small_gguf: tuple[bytes, int, Path],
                                                   mutations: list[tuple[str, int, int]], cut: int | None) -> None:
    """Random bytes and extreme integers written into the header (and optional cuts) give either
    a valid reading or a GgufError, never another exception, and always quickly."""
    data, header_end, path = small_gguf
    mutant = bytearray(data)
    for kind, where, value in mutations:
        position = where % header_end
        if kind == "byte":
            mutant[position] = value
        else:
            fmt = "<I" if kind == "u32" else "<Q"
            packed = struct.pack(fmt, value)
            mutant[position:position + len(packed)] = packed
    if cut is not None:
        del mutant[cut % len(mutant):]
    path.write_bytes(bytes(mutant))
    started = time.perf_counter()
    try:
        info = read_gguf_info(path)
    except GgufError as exc:
        assert str(exc)
    else:
        assert info.data_end <= info.file_size and info.architecture
    assert time.perf_counter() - started < 1.0


def test_a_float_layer_count_is_read_as_a_number(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "float.gguf"), "llama")
    writer.add_float32("llama.block_count", 4.0)
    writer.add_tensor("w", np.zeros(32, dtype=np.float32))
    finish_gguf(writer)
    assert read_gguf_info(tmp_path / "float.gguf").layers == 4
