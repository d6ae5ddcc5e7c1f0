"""What a model file is, decided from its bytes (never from its name alone).

Accepted: GGUF (language models, vision projectors, image models) and safetensors
(image models) for the heavy jobs; a CTranslate2 model folder for speech and an ONNX
voice with its JSON config for voice. Formats that can run code when loaded (pickle
`.pt`/`.ckpt`/`.bin`) are refused.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from .gguf_info import GgufError, GgufNoArchitecture, quantization_from_name, read_gguf_info

__all__ = ["JOBS", "Inspected", "ModelFileError", "allowed_suffixes", "check_companion_file", "inspect_model_file",
           "voice_language"]

JOBS = tuple(Job)
_SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024
_COMPANION_MAX = 64 * 1024 * 1024
_PICKLE_OR_ZIP = (b"\x80", b"PK\x03\x04")


class ModelFileError(AppError):
    """The file is not a model this app can use; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_MODEL_FILE, message)


@dataclass(kw_only=True, slots=True)
class Inspected:
    format: str
    size: int
    info: dict[str, Any] = field(default_factory=dict)
    quantization: str | None = None
    license: str | None = None
    projector: bool = False


_SUFFIXES: dict[str, tuple[str, ...]] = {
    Job.CHAT: (".gguf",), Job.VISION: (".gguf",), Job.IMAGES: (".gguf", ".safetensors"),
    Job.SPEECH: (".bin", ".json", ".txt"), Job.VOICE: (".onnx", ".json"), Job.EMBEDDINGS: (".gguf",)}
_FORMATS: dict[str, str] = {Job.CHAT: "GGUF", Job.VISION: "GGUF", Job.IMAGES: "GGUF or safetensors",
                            Job.SPEECH: "CTranslate2 (model.bin)", Job.VOICE: "ONNX", Job.EMBEDDINGS: "GGUF"}


def allowed_suffixes(job: str) -> tuple[str, ...]:
    return _SUFFIXES[job]


def _inspect_gguf(path: Path, job: str) -> Inspected:
    try:
        info = read_gguf_info(path)
    except GgufNoArchitecture:
        if job == Job.IMAGES:
            return Inspected(format="gguf", size=path.stat().st_size, quantization=quantization_from_name(path.name))
        raise ModelFileError(f"{path.name} does not say which architecture it is; it is not a language model") \
            from None
    except GgufError as exc:
        raise ModelFileError(str(exc)) from None
    summary = info.summary()
    if job in (Job.CHAT, Job.VISION, Job.EMBEDDINGS) and not info.is_projector:
        if not info.layers or not info.vocab_size:
            kind = "an embedding model" if job == Job.EMBEDDINGS else "a language model"
            raise ModelFileError(f"{path.name} is a '{info.architecture}' GGUF, not {kind}")
    if job in (Job.CHAT, Job.VISION) and info.is_embedding:
        raise ModelFileError(f"{path.name} is an embedding model ('{info.architecture}', {info.pooling or 'encoder'}"
                             " pooling); it turns text into vectors for search and cannot chat")
    if job == Job.EMBEDDINGS:
        if info.is_projector:
            raise ModelFileError(f"{path.name} is a vision projector (mmproj), not an embedding model")
        if info.pooling == "rank":
            raise ModelFileError(f"{path.name} is a reranker (it scores pairs of texts), not an embedding model")
    if job == Job.CHAT and info.is_projector:
        raise ModelFileError(f"{path.name} is a vision projector (mmproj); it goes with a vision model")
    return Inspected(format="gguf", size=info.file_size, info=summary,
                     quantization=info.quantization or quantization_from_name(path.name),
                     license=info.license, projector=info.is_projector)


def _inspect_safetensors(path: Path) -> Inspected:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path.name} is too small to be a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len < 2 or header_len > _SAFETENSORS_HEADER_MAX or 8 + header_len > size:
            raise ModelFileError(f"{path.name} is not a safetensors file (its header length {header_len} "
                                 f"does not fit a file of {size} bytes)")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path.name} is not a safetensors file (its header is not a JSON object)")
    data_size = size - 8 - header_len
    end, parameters = 0, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in entry["data_offsets"])
            shape = [int(x) for x in entry["shape"]]
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path.name}: tensor '{name}' has no valid offsets or shape") from None
        if not 0 <= begin <= stop:
            raise ModelFileError(f"{path.name}: tensor '{name}' has invalid offsets")
        end = max(end, stop)
        count = 1
        for d in shape:
            count *= d
        parameters += count
    if end > data_size:
        raise ModelFileError(f"{path.name} is truncated: its tensors need {end + 8 + header_len} bytes "
                             f"but the file has {size}")
    tensors = len(header) - ("__metadata__" in header)
    return Inspected(format="safetensors", size=size, info={"parameters": parameters, "tensors": tensors},
                     quantization=quantization_from_name(path.name))


def inspect_model_file(path: Path, job: str) -> Inspected:
    """Check the main file of a model for `job`; raise ModelFileError with a plain reason."""
    if job not in JOBS:
        raise ModelFileError(f"unknown job '{job}'")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic[:4] == b"GGUF":
        if job in (Job.SPEECH, Job.VOICE):
            raise ModelFileError(f"{path.name} is a GGUF file; {job} models are not GGUF")
        return _inspect_gguf(path, job)
    if job == Job.IMAGES and path.suffix.lower() == ".safetensors":
        return _inspect_safetensors(path)
    if magic.startswith(_PICKLE_OR_ZIP):
        raise ModelFileError(f"{path.name} is a pickle or zip archive; such files can run code when loaded "
                             "and are not accepted")
    if job == Job.SPEECH and path.name == "model.bin":
        return _inspect_ctranslate2(path)
    if job == Job.VOICE and path.suffix == ".onnx":
        return _inspect_onnx(path)
    raise ModelFileError(f"{path.name} is not a {_FORMATS[job]} model file")


def _inspect_ctranslate2(path: Path) -> Inspected:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise ModelFileError(f"{path.name} is too small to be a CTranslate2 model")
    (version,) = struct.unpack("<I", head[:4])
    if not 1 <= version <= 16:
        raise ModelFileError(f"{path.name} is not a CTranslate2 model (binary version {version})")
    return Inspected(format="ctranslate2", size=size, info={"binary_version": version})


def _inspect_onnx(path: Path) -> Inspected:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(1)
    if head != b"\x08":  # an ONNX ModelProto starts with field 1, ir_version
        raise ModelFileError(f"{path.name} is not an ONNX model")
    language = voice_language(path)
    return Inspected(format="onnx", size=size, info={"language": language} if language else {})


def voice_language(onnx: Path) -> str | None:
    """The language a Piper voice speaks, from the `.onnx.json` beside it: `language.code` ("it_IT"),
    else the espeak voice it phonemizes with ("it", "pt-br"); None when the file does not say."""
    config = onnx.with_name(onnx.name + ".json")
    try:
        if config.stat().st_size > _COMPANION_MAX:
            return None
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for section, key in (("language", "code"), ("espeak", "voice")):
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and 2 <= len(value) <= 16 and value.replace("_", "-").replace("-", "").isalpha():
            return value
    return None


def check_companion_file(path: Path) -> None:
    """Small files that come with a model (configs, vocabularies): text, JSON if named so."""
    size = path.stat().st_size
    if size > _COMPANION_MAX:
        raise ModelFileError(f"{path.name} is {size} bytes, too large for a configuration file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path.name} is not a text file") from None
    if path.suffix == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
