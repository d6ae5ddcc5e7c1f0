"""What a model file is, decided from its bytes: per job, good files and impostors."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from backend.models.files import ModelFileError, allowed_suffixes, check_companion_file, inspect_model_file
from tests.ggufs import finish_gguf, write_lm_gguf, write_oversized_count_gguf, write_projector_gguf

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 200
PICKLE = pickle.dumps({"weights": list(range(100))}, protocol=4)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", PICKLE)
    return buffer.getvalue()


def safetensors_bytes(tensors: dict[str, tuple[list[int], int]], *, metadata: dict[str, str] | None = None,
                      data_bytes: int | None = None) -> bytes:
    """A safetensors file: u64 header length, JSON header, data (F32 tensors laid out in order)."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (shape, count) in tensors.items():
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + count * 4]}
        offset += count * 4
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    data = b"\0" * (offset if data_bytes is None else data_bytes)
    return struct.pack("<Q", len(raw)) + raw + data


def put(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def refused(path: Path, job: str) -> str:
    with pytest.raises(ModelFileError) as caught:
        inspect_model_file(path, job)
    message = str(caught.value)
    assert message and "Traceback" not in message
    return message


def write_gguf(path: Path, arch: str, fill: dict[str, Any], *, tensor: bool = True) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in fill.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    if tensor:
        writer.add_tensor("w", np.zeros(32, dtype=np.float32))
    finish_gguf(writer)
    return path


# ----- chat and vision ----------------------------------------------------------------------


def test_a_language_model_is_a_chat_model(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "tiny-Q4_K_M.gguf", size_mb=0.2, layers=3)
    found = inspect_model_file(path, "chat")
    assert found.format == "gguf" and found.size == path.stat().st_size and not found.projector
    assert found.info["layers"] == 3 and found.info["vocab_size"] == 256 and found.info["architecture"] == "llama"
    assert found.quantization == "F32", "the header's file type wins over the name"
    assert found.license == "apache-2.0"
    assert inspect_model_file(path, "vision").info["layers"] == 3


def test_the_bundled_model_is_a_chat_model(smollm_path: Path) -> None:
    found = inspect_model_file(smollm_path, "chat")
    assert found.quantization == "Q4_1" and found.info["layers"] == 30 and found.info["chat_template"]


def test_a_projector_is_refused_as_a_chat_model(tmp_path: Path) -> None:
    path = write_projector_gguf(tmp_path / "mmproj-f16.gguf")
    assert "projector" in refused(path, "chat")
    as_vision = inspect_model_file(path, "vision")
    assert as_vision.projector and as_vision.info["projection_dim"] == 64


@pytest.mark.parametrize("job", ["chat", "vision"])
@pytest.mark.parametrize(("content", "label"), [(PNG, "png"), (b"not a model at all\n" * 100, "text"),
                                                (PICKLE, "pickle"), (zip_bytes(), "zip"), (b"", "empty")])
def test_impostors_named_gguf_are_refused(tmp_path: Path, job: str, content: bytes, label: str) -> None:
    path = put(tmp_path / f"{label}.gguf", content)
    message = refused(path, job)
    assert path.name in message
    if label in ("pickle", "zip"):
        assert "pickle or zip" in message
    else:
        assert "not a GGUF" in message


def test_a_gguf_without_layers_is_not_a_language_model(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "embed.gguf", "bert", {"bert.embedding_length": 64})
    assert "not a language model" in refused(path, "chat")


def test_damaged_ggufs_are_refused_with_the_reason(tmp_path: Path) -> None:
    assert "damaged" in refused(write_oversized_count_gguf(tmp_path / "huge.gguf"), "chat")
    whole = write_lm_gguf(tmp_path / "whole.gguf", size_mb=0.2).read_bytes()
    cut = put(tmp_path / "cut.gguf", whole[: len(whole) // 2])
    assert "truncated" in refused(cut, "chat")
    assert "truncated" in refused(cut, "images")


@pytest.mark.parametrize("fill", [{"llama.block_count": "many", "llama.vocab_size": 10},
                                  {"llama.block_count": 2, "llama.vocab_size": 10,
                                   "llama.embedding_length": float("nan")}])
def test_non_numeric_shape_values_are_refused_plainly(tmp_path: Path, fill: dict[str, Any]) -> None:
    path = write_gguf(tmp_path / "odd.gguf", "llama", fill)
    with pytest.raises(ModelFileError):
        inspect_model_file(path, "chat")


# ----- images -------------------------------------------------------------------------------


def test_a_valid_safetensors_image_model(tmp_path: Path) -> None:
    content = safetensors_bytes({"unet.w": ([4, 8], 32), "vae.b": ([16], 16)})
    path = put(tmp_path / "sd_turbo-fp16.safetensors", content)
    found = inspect_model_file(path, "images")
    assert found.format == "safetensors" and found.size == len(content)
    assert found.info == {"parameters": 48, "tensors": 2}
    assert found.quantization == "F16"


def test_safetensors_metadata_is_not_counted_as_a_tensor(tmp_path: Path) -> None:
    content = safetensors_bytes({"unet.w": ([4, 8], 32)}, metadata={"format": "pt"})
    found = inspect_model_file(put(tmp_path / "m.safetensors", content), "images")
    assert found.info == {"parameters": 32, "tensors": 1}


def test_safetensors_with_metadata_still_counts_parameters(tmp_path: Path) -> None:
    content = safetensors_bytes({"unet.w": ([4, 8], 32)}, metadata={"format": "pt"})
    assert inspect_model_file(put(tmp_path / "m.safetensors", content), "images").info["parameters"] == 32


def test_safetensors_header_longer_than_the_file(tmp_path: Path) -> None:
    path = put(tmp_path / "big.safetensors", struct.pack("<Q", 10_000) + b'{"a": 1}')
    message = refused(path, "images")
    assert "not a safetensors file" in message and "10000" in message


def test_safetensors_with_data_shorter_than_its_offsets(tmp_path: Path) -> None:
    content = safetensors_bytes({"w": ([64], 64)}, data_bytes=100)
    message = refused(put(tmp_path / "cut.safetensors", content), "images")
    assert "truncated" in message


@pytest.mark.parametrize(("content", "reason"), [
    (b"\x01\x02\x03", "too small"),
    (struct.pack("<Q", 1) + b"{", "not a safetensors file"),
    (struct.pack("<Q", 8) + b"not json", "not JSON"),
    (struct.pack("<Q", 8) + b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "not JSON"),
    (struct.pack("<Q", 8) + b"[1, 2]  ", "not a JSON object"),
    (struct.pack("<Q", 16) + b'{"w": {"x": 1}} ', "no valid offsets"),
    (struct.pack("<Q", 48) + json.dumps({"w": {"shape": [2], "data_offsets": [8, 0]}}).encode().ljust(48),
     "invalid offsets"),
])
def test_damaged_safetensors(tmp_path: Path, content: bytes, reason: str) -> None:
    assert reason in refused(put(tmp_path / "bad.safetensors", content), "images")


@pytest.mark.parametrize(("content", "label"), [(zip_bytes(), "zip"), (PICKLE, "pickle"), (PNG, "png")])
def test_archives_named_safetensors_are_refused(tmp_path: Path, content: bytes, label: str) -> None:
    message = refused(put(tmp_path / f"{label}.safetensors", content), "images")
    assert "not a safetensors file" in message


def test_an_image_gguf_may_have_no_architecture(tmp_path: Path) -> None:
    """Diffusion GGUFs often carry no general.architecture; that is fine for images only."""
    kv = struct.pack("<Q", 12) + b"general.name" + struct.pack("<IQ", 8, 2) + b"sd"
    tensor = struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 16, 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + tensor
    path = put(tmp_path / "sd-turbo-Q8_0.gguf", head + b"\0" * (-len(head) % 32) + b"\0" * 64)
    found = inspect_model_file(path, "images")
    assert found.format == "gguf" and found.size == path.stat().st_size and found.quantization == "Q8_0"
    assert "architecture" in refused(path, "chat")


@pytest.mark.parametrize("damage", ["cut", "type"])
def test_a_damaged_architecture_entry_is_not_an_image_model(tmp_path: Path, damage: str) -> None:
    key = b"general.architecture"
    entry = struct.pack("<Q", len(key)) + key
    if damage == "cut":
        entry += struct.pack("<IQ", 8, 2**40) + b"stable-diffusion"
    else:
        entry += struct.pack("<I", 99) + b"\0" * 16
    path = put(tmp_path / "broken.gguf", b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + entry + b"\0" * 32)
    with pytest.raises(ModelFileError):
        inspect_model_file(path, "images")


# ----- speech and voice ---------------------------------------------------------------------


def test_a_ctranslate2_model(tmp_path: Path) -> None:
    folder = tmp_path / "whisper"
    folder.mkdir()
    path = put(folder / "model.bin", struct.pack("<I", 6) + b"\0" * 100)
    found = inspect_model_file(path, "speech")
    assert found.format == "ctranslate2" and found.info == {"binary_version": 6}


@pytest.mark.parametrize(("content", "reason"), [
    (PICKLE, "pickle or zip"),
    (b"\x80\x04\x95" + b"\0" * 20, "pickle or zip"),
    (zip_bytes(), "pickle or zip"),
    (struct.pack("<I", 9999) + b"\0" * 20, "binary version 9999"),
    (b"\x01\x00", "too small"),
])
def test_bad_speech_models(tmp_path: Path, content: bytes, reason: str) -> None:
    assert reason in refused(put(tmp_path / "model.bin", content), "speech")


def test_speech_models_are_named_model_bin(tmp_path: Path) -> None:
    path = put(tmp_path / "whisper.bin", struct.pack("<I", 6) + b"\0" * 100)
    assert "CTranslate2" in refused(path, "speech")


@pytest.mark.parametrize("job", ["speech", "voice"])
def test_gguf_is_not_a_speech_or_voice_model(tmp_path: Path, job: str) -> None:
    path = write_lm_gguf(tmp_path / "model.bin", size_mb=0.1)
    assert "GGUF" in refused(path, job)


def test_an_onnx_voice(tmp_path: Path) -> None:
    path = put(tmp_path / "en_US-lessac-medium.onnx", b"\x08\x07\x12\x07pytorch" + b"\0" * 100)
    found = inspect_model_file(path, "voice")
    assert found.format == "onnx" and found.size == path.stat().st_size


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("voice.onnx", PNG, "not an ONNX model"),
    ("voice.onnx", PICKLE, "pickle or zip"),
    ("voice.onnx.json", b'{"audio": {}}', "not a ONNX model file"),
])
def test_bad_voices(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    assert reason in refused(put(tmp_path / name, content), "voice")


def test_unknown_jobs_and_missing_files(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "lm.gguf", size_mb=0.1)
    assert "unknown job" in refused(path, "reranking")
    assert "not a file" in refused(tmp_path / "absent.gguf", "chat")
    assert "not a file" in refused(tmp_path, "chat")


def test_allowed_suffixes_per_job() -> None:
    assert allowed_suffixes("chat") == (".gguf",)
    assert ".safetensors" in allowed_suffixes("images") and ".gguf" in allowed_suffixes("images")
    assert ".onnx" in allowed_suffixes("voice") and ".bin" in allowed_suffixes("speech")
    with pytest.raises(KeyError):
        allowed_suffixes("bogus")


# ----- companion files ----------------------------------------------------------------------


def test_companion_files(tmp_path: Path) -> None:
    check_companion_file(put(tmp_path / "config.json", b'{"sample_rate": 22050}'))
    check_companion_file(put(tmp_path / "vocabulary.txt", "hello\nwörld\n".encode()))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        check_companion_file(put(tmp_path / "broken.json", b'{"sample_rate": '))
    with pytest.raises(ModelFileError, match="not a text file"):
        check_companion_file(put(tmp_path / "tokenizer.json", b"\xff\xfe\x00binary"))
    with pytest.raises(ModelFileError, match="not a text file"):
        check_companion_file(put(tmp_path / "vocabulary.txt", PICKLE))
