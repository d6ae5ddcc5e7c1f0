"""Putting models in place: the verified files of a download, a file imported from this device,
the bundled models and what the models folder holds, each checked by content and registered;
and deleting a model with the files that are its alone."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import ErrorCode
from ..core.jobs import Job
from ..runtime.residency import ResidencyManager
from ..storage.media import sync_path
from .bert_gguf import CONVERTER_VERSION, ConversionError, convert_bert
from .catalog import Catalog, embedding_prefixes_for
from .downloads import Download, free_space_problem
from .errors import ModelManagerError, unknown_model
from .files import Inspected, ModelFileError, allowed_suffixes, check_companion_file, inspect_model_file
from .gguf_info import GgufError, read_gguf_info
from .local import (
    BUNDLED_DIR,
    bundled_chat_model,
    bundled_embedding_source,
    bundled_multilingual_speech_model,
    bundled_speech_model,
    bundled_voice,
)
from .names import model_id_from
from .registry import ModelRecord, ModelRegistry

__all__ = ["BUNDLED_DIR", "BUNDLED_EMBEDDING_ID", "BUNDLED_MULTILINGUAL_SPEECH_ID", "BUNDLED_SPEECH_ID", "Installer",
           "write_bundled_embedding"]

log = logging.getLogger(__name__)

BUNDLED_SPEECH_ID = "whisper-tiny-en"
BUNDLED_SPEECH_NAME = "Whisper tiny.en — English only"
BUNDLED_MULTILINGUAL_SPEECH_ID = "whisper-base"
BUNDLED_MULTILINGUAL_SPEECH_NAME = "Whisper base (multilingual)"
"""Dictation's model until the owner chooses another: it understands Italian, Spanish, German… as well
as English, where tiny.en turns every language into English words."""
BUNDLED_EMBEDDING_ID = "all-minilm-l6-v2"
BUNDLED_EMBEDDING_NAME = "all-MiniLM-L6-v2"
_EMBEDDING_SOURCE_FILES = ("model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json",
                           "special_tokens_map.json", "1_Pooling/config.json")


class Installer:
    def __init__(self, settings: Settings, registry: ModelRegistry, catalog: Catalog,
                 residency: ResidencyManager) -> None:
        self.settings = settings
        self.folder = settings.model_folder
        self.registry = registry
        self.catalog = catalog
        self.residency = residency

    async def install_download(self, dl: Download, staging: Path) -> str:
        """Check the verified files, move them into place and register the model."""
        root = self.folder / dl.repo.replace("/", "__")
        main = next(f for f in dl.files if f.role == "model")
        projector = next((f for f in dl.files if f.role == "projector"), None)
        inspected = await asyncio.to_thread(self._inspect_set, dl.job, staging / main.path,
                                            staging / projector.path if projector else None,
                                            [staging / f.path for f in dl.files if f.role == "config"])
        placed: dict[str, Path] = {}
        for f in dl.files:
            dest = root / f.path
            if not dest.resolve().is_relative_to(root.resolve()):
                raise ModelManagerError(f"{f.path} would land outside the models folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shared = any(p == dest for r in self.registry.all() for p in r.files)
            if shared and dest.exists():
                (staging / f.path).unlink()  # a projector another quantization already brought
            else:
                await asyncio.to_thread(os.replace, staging / f.path, dest)
            placed[f.path] = dest
        catalog_id = dl.options.get("catalog_id")
        record = ModelRecord(
            id=model_id_from(catalog_id or Path(main.path).stem), job=Job(dl.job), name=dl.name,
            format=inspected.format,
            path=root if dl.job == Job.SPEECH else placed[main.path],
            projector=placed[projector.path] if projector else None,
            folder=root if dl.job == Job.SPEECH else None,
            size_bytes=sum(f.size for f in dl.files), quantization=inspected.quantization,
            license=self._licence(catalog_id, inspected), source="hub", repo=dl.repo, revision=dl.revision,
            sha256=main.sha256,
            info=inspected.info | {"companions": [str(placed[f.path]) for f in dl.files if f.role == "config"]}
            | (self._prefixes(catalog_id, dl.repo, main.path) if dl.job == Job.EMBEDDINGS else {}),
            memory_override=bool(dl.options.get("memory_override")))
        record = await self.registry.add(record)
        log.info("installed %s from %s", record.id, dl.repo)
        return record.id

    def _prefixes(self, catalog_id: str | None, repo: str, path: str) -> dict[str, str]:
        """An embedding model's query and passage prefixes: the catalog's, else its family's."""
        entry = self.catalog.get(catalog_id) if catalog_id else None
        return entry.prefixes if entry is not None else embedding_prefixes_for(f"{repo}/{path}")

    def _licence(self, catalog_id: str | None, inspected: Inspected) -> str | None:
        entry = self.catalog.get(catalog_id) if catalog_id else None
        return entry.license if entry is not None else inspected.license

    @staticmethod
    def _inspect_set(job: str, main: Path, projector: Path | None, configs: list[Path]) -> Inspected:
        inspected = inspect_model_file(main, job)
        if Job(job).is_language and inspected.projector:
            raise ModelFileError(f"{main.name} is a vision projector, not a language model")
        if projector is not None:
            proj = inspect_model_file(projector, Job.VISION)
            if not proj.projector:
                raise ModelFileError(f"{projector.name} is not a vision projector (mmproj)")
            width, expected = proj.info.get("projection_dim"), inspected.info.get("embedding_length")
            if width and expected and width != expected:
                raise ModelFileError(f"{projector.name} projects to {width} values but {main.name} expects "
                                     f"{expected}; they do not belong together")
        for config in configs:
            check_companion_file(config)
        return inspected

    async def import_file(self, source: Path, job: str, *, name: str | None = None, move: bool = False,
                          projector: Path | None = None) -> ModelRecord:
        """Copy (or move) a model file from this device into the models folder and register it."""
        if job not in (Job.CHAT, Job.VISION, Job.IMAGES):
            raise ModelManagerError(f"importing {job} models is not supported; download them from the catalog")
        if not source.is_absolute():
            raise ModelManagerError(f"give the full path of the file (starting with /), not '{source}'")
        if not await asyncio.to_thread(source.is_file):
            raise ModelManagerError(f"{source} is not a file")
        if not source.name.endswith(allowed_suffixes(job)):
            raise ModelManagerError(f"{source.name}: a {job} model must be a {' or '.join(allowed_suffixes(job))} file")
        if job == Job.VISION and projector is None:
            found = sorted(source.parent.glob("mmproj*.gguf"))
            if not found:
                raise ModelManagerError(f"no vision projector (mmproj*.gguf) next to {source.name}")
            projector = found[0]
        inspected = await asyncio.to_thread(self._inspect_set, job, source, projector, [])
        sources = [p for p in (source, projector) if p is not None]
        total = sum(p.stat().st_size for p in sources)
        problem = None if move else await asyncio.to_thread(free_space_problem, self.folder, total)
        if problem is not None:
            raise ModelManagerError(problem)
        dest_dir = self.folder / "imported"
        dest_dir.mkdir(parents=True, exist_ok=True)
        placed: list[Path] = []
        for src in sources:
            dest = dest_dir / src.name
            n = 2
            while dest.exists():
                dest = dest_dir / f"{src.stem}-{n}{src.suffix}"
                n += 1
            staging = self.folder / ".partial" / f"import-{uuid.uuid4().hex[:8]}" / src.name
            staging.parent.mkdir(parents=True, exist_ok=True)
            try:
                if move:
                    await asyncio.to_thread(shutil.move, src, staging)
                else:
                    await asyncio.to_thread(shutil.copyfile, src, staging)
                await asyncio.to_thread(os.replace, staging, dest)
            finally:
                shutil.rmtree(staging.parent, ignore_errors=True)
            placed.append(dest)
        record = ModelRecord(id=model_id_from(name or source.stem), job=Job(job), name=name or source.stem,
                             format=inspected.format, path=placed[0],
                             projector=placed[1] if len(placed) > 1 else None, size_bytes=total,
                             quantization=inspected.quantization, license=inspected.license, source="import",
                             info=inspected.info)
        return await self.registry.add(record)

    async def delete(self, model_id: str) -> ModelRecord:
        record = self.registry.get(model_id)
        if record is None:
            raise unknown_model(model_id)
        if not record.deletable:
            raise ModelManagerError(f"{record.name} comes with the app and cannot be deleted")
        for resident in self.residency.residents:
            if resident.model == record.id and not await self.residency.unload(resident.name):
                raise ModelManagerError(f"{record.name} is working right now; try again when it has finished",
                                        ErrorCode.BUSY)
        await self.registry.remove(model_id)
        still_used = {p for r in self.registry.all() for p in r.files}
        folder_root = self.folder.resolve()
        for path in record.files:
            inside = path.resolve().is_relative_to(folder_root)
            if inside and path not in still_used:
                await asyncio.to_thread(self._remove_path, path)
        if record.folder is not None and record.folder.resolve().is_relative_to(folder_root):
            await asyncio.to_thread(shutil.rmtree, record.folder, True)
        return record

    def _remove_path(self, path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        parent = path.parent
        root = self.folder.resolve()
        while parent.resolve() != root and parent.resolve().is_relative_to(root):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
            parent = parent.parent

    async def register_found(self, path: Path, job: str, source: str, *, model_id: str | None = None,
                              name: str | None = None, info: dict[str, Any] | None = None) -> ModelRecord | None:
        """Register a model found on disk. A speech model is its folder (the engine loads the
        folder; its `model.bin` is what is checked)."""
        if self.registry.by_path(path) is not None:
            return None
        checked = path / "model.bin" if job == Job.SPEECH else path
        try:
            inspected = await asyncio.to_thread(inspect_model_file, checked, job)
            size = inspected.size
            if job == Job.SPEECH:
                size = await asyncio.to_thread(_folder_size, path)
        except (ModelFileError, OSError) as exc:  # one bad file must not keep the app from starting
            log.warning("ignoring %s: %s", path, exc)
            return None
        if inspected.projector:
            return None
        stem = path.name if job == Job.SPEECH else path.stem
        if job == Job.EMBEDDINGS and info is None:
            info = embedding_prefixes_for(stem)
        return await self.registry.add(ModelRecord(
            id=model_id or model_id_from(stem), job=Job(job), name=name or stem, format=inspected.format,
            path=path, size_bytes=size, quantization=inspected.quantization, license=inspected.license,
            source=source, info=inspected.info | (info or {}),
            folder=path if job == Job.SPEECH and source == "folder" else None))

    async def sync_bundled(self) -> None:
        bundled = ((bundled_chat_model(), Job.CHAT, "smollm2-135m-instruct", "SmolLM2 135M Instruct"),
                   (bundled_speech_model(), Job.SPEECH, BUNDLED_SPEECH_ID, BUNDLED_SPEECH_NAME),
                   (bundled_voice(), Job.VOICE, "piper-en-us-joe-medium", "Piper Joe (US English)"))
        for path, job, model_id, name in bundled:
            if path is not None:
                await self._register_bundled(path, job, model_id, name)
        await self._sync_bundled_multilingual_speech()
        await self._sync_bundled_embedding()

    async def _register_bundled(self, path: Path, job: str, model_id: str, name: str) -> None:
        """Register a bundled model, or give one registered by an earlier version its current name."""
        record = self.registry.by_path(path)
        if record is None:
            await self.register_found(path, job, "bundled", model_id=model_id, name=name)
        elif record.source == "bundled" and record.name != name:
            await self.registry.rename(record.id, name)

    async def _sync_bundled_multilingual_speech(self) -> None:
        """Whisper base ships split in two packages: put together once under `<cache>/bundled/`
        (`local.bundled_multilingual_speech_model`), registered like the other bundled models and made
        the speech model used when none was chosen."""
        try:
            path = await asyncio.to_thread(bundled_multilingual_speech_model, self.settings.cache_dir)
            if path is None:
                return
            record = self.registry.by_path(path)
            if record is not None:
                size = await asyncio.to_thread(_folder_size, path)
                if size != record.size_bytes:  # put together again from another version of the packages
                    await self.registry.refresh(record.id, size_bytes=size, info=record.info,
                                                quantization=record.quantization)
            await self._register_bundled(path, Job.SPEECH, BUNDLED_MULTILINGUAL_SPEECH_ID,
                                         BUNDLED_MULTILINGUAL_SPEECH_NAME)
        except Exception:  # dictation still works with tiny.en, in English; say why in the log
            log.exception("the bundled speech model %s could not be set up", BUNDLED_MULTILINGUAL_SPEECH_NAME)
            return
        record = self.registry.by_path(path)
        if record is not None:
            self.registry.prefer(Job.SPEECH, record.id)

    async def _sync_bundled_embedding(self) -> None:
        """all-MiniLM-L6-v2 ships as safetensors: written once as a GGUF under `<cache>/bundled/` (again
        only when the package's files change), then registered like the other bundled models."""
        source = bundled_embedding_source()
        if source is None:
            return
        dest = self.settings.cache_dir / BUNDLED_DIR / f"{BUNDLED_EMBEDDING_ID}.gguf"
        try:
            written = await asyncio.to_thread(write_bundled_embedding, source, dest)
            record = self.registry.by_path(dest)
            if record is not None and written:
                inspected = await asyncio.to_thread(inspect_model_file, dest, Job.EMBEDDINGS)
                await self.registry.refresh(record.id, size_bytes=inspected.size,
                                            info=inspected.info | _NO_PREFIXES, quantization=inspected.quantization)
            elif record is None:
                await self.register_found(dest, Job.EMBEDDINGS, "bundled", model_id=BUNDLED_EMBEDDING_ID,
                                          name=BUNDLED_EMBEDDING_NAME, info=dict(_NO_PREFIXES))
        except Exception:  # the app works without it (search by words only); say why in the log
            log.exception("the bundled embedding model %s could not be set up", BUNDLED_EMBEDDING_NAME)

    async def use_configured_chat_model(self) -> None:
        """The chat model GRIDLESS_CHAT_MODEL names is registered and made active before anything
        else, so the first chat uses it."""
        configured = self.settings.chat_model
        if configured is not None:
            record = self.registry.by_path(configured) or await self.register_found(configured, Job.CHAT, "folder")
            if record is not None:
                await self.registry.set_active(Job.CHAT, record.id)

    async def scan_folder(self) -> None:
        """Models put straight into the models folder: GGUF files are chat models (or embedding models, when
        their header says so), `.safetensors` files
        image models, Whisper folders speech models, Piper voices voice models. A file that is not a
        usable model is logged and left out (`register_found`)."""
        try:
            if self.folder.is_dir():
                for path in sorted(self.folder.glob("*.gguf")):
                    await self.register_found(path, await asyncio.to_thread(_gguf_job, path), "folder")
                for path in sorted(self.folder.glob("*.safetensors")):
                    await self.register_found(path, Job.IMAGES, "folder")
                # Whisper models in CTranslate2 form (one folder each) and Piper voices (.onnx + .onnx.json)
                for model_bin in sorted(self.folder.glob("*/model.bin")):
                    if (model_bin.parent / "tokenizer.json").is_file() or \
                            (model_bin.parent / "vocabulary.txt").is_file():
                        await self.register_found(model_bin.parent, Job.SPEECH, "folder")
                for onnx in sorted(self.folder.glob("*.onnx")):
                    if onnx.with_name(onnx.name + ".json").is_file():
                        await self.register_found(onnx, Job.VOICE, "folder")
        except Exception:  # in the background nobody awaits it: say so, and keep serving
            log.exception("looking through the models folder %s failed", self.folder)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


_NO_PREFIXES = {"query_prefix": "", "passage_prefix": ""}


def _gguf_job(path: Path) -> Job:
    """A GGUF in the models folder is a chat model unless its header says it embeds."""
    try:
        return Job.EMBEDDINGS if read_gguf_info(path).is_embedding else Job.CHAT
    except (GgufError, OSError):
        return Job.CHAT  # the check that follows says what is wrong with it


def _fingerprint(source: Path) -> dict[str, Any]:
    files = {}
    for name in _EMBEDDING_SOURCE_FILES:
        path = source / name
        if path.is_file():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"converter": CONVERTER_VERSION, "source": str(source), "files": files}


def write_bundled_embedding(source: Path, dest: Path) -> bool:
    """Write the model folder `source` as the GGUF `dest`, unless it was written from these very files
    (their sizes and modification times are kept beside it, in `<dest>.source.json`). The GGUF is
    written under a temporary name, synced and renamed, so a cut-off start leaves either the old
    file or none. Returns whether it was written."""
    stamp = dest.with_name(dest.name + ".source.json")
    wanted = _fingerprint(source)
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        if recorded.get("fingerprint") == wanted and dest.stat().st_size == recorded.get("size"):
            return False
    except (OSError, ValueError, AttributeError):
        pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        result = convert_bert(source, partial, name=BUNDLED_EMBEDDING_NAME, license="apache-2.0")
        sync_path(partial)
        os.replace(partial, dest)
    except (ConversionError, OSError):
        partial.unlink(missing_ok=True)
        raise
    stamp_partial = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex[:8]}.partial")  # servers may start together
    stamp_partial.write_text(json.dumps({"fingerprint": wanted, "size": result.size}), encoding="utf-8")
    sync_path(stamp_partial)
    os.replace(stamp_partial, stamp)
    sync_path(dest.parent)
    log.info("wrote the bundled embedding model %s (%d bytes)", dest, result.size)
    return True
