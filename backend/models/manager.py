"""The model manager: what is installed, what the catalog recommends, downloads, imports,
deletes, which model is active per job, and whether a model fits in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes
from ..runtime.residency import MemoryRefused, ResidencyManager
from ..storage.db import Database
from .catalog import CATALOG_FILE, Catalog, CatalogEntry, Fit
from .downloads import Download, DownloadError, DownloadManager, free_space_problem
from .files import JOBS, Inspected, ModelFileError, allowed_suffixes, check_companion_file, inspect_model_file
from .gguf_info import GgufError, GgufIncomplete, read_gguf_info
from .hub import HubClient, HubError, RemoteFile, RepoListing
from .local import bundled_chat_model, bundled_speech_model, bundled_voice
from .memory import MemoryEstimate, estimate_file_model, estimate_llm, largest_context_within
from .names import UnsafeName, model_id_from, safe_relative_path, safe_repo_id
from .registry import ModelRecord, ModelRegistry

__all__ = ["CatalogRow", "DownloadError", "HubError", "ModelFileError", "ModelManager", "ModelManagerError"]

log = logging.getLogger(__name__)
IDLE_KEY = "idle_unload_s"


class ModelManagerError(AppError):
    """A request the manager refuses; the message is for people."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.MODEL_REFUSED) -> None:
        super().__init__(code, message)


def unknown_model(model_id: str, job: str | None = None) -> ModelManagerError:
    return ModelManagerError(f"no {job} model '{model_id}'" if job else f"no model '{model_id}'",
                             ErrorCode.MODEL_NOT_FOUND)


@dataclass(kw_only=True, slots=True)
class CatalogRow:
    entry: CatalogEntry
    fit: Fit
    installed: ModelRecord | None
    download: Download | None


def _language_model(job: str) -> bool:
    return job in ("chat", "vision")


class ModelManager:
    def __init__(self, settings: Settings, db: Database, residency: ResidencyManager) -> None:
        self.settings = settings
        self.folder = settings.model_folder
        self.registry = ModelRegistry(db)
        self.catalog = Catalog.load(settings.catalog or CATALOG_FILE)
        self.hub = HubClient(settings.hub_endpoint)
        self.residency = residency
        self.downloads = DownloadManager(db, self.folder, endpoint=settings.hub_endpoint,
                                         install=self._install_download)
        self.folder_scan: asyncio.Task[None] | None = None

    async def start(self, *, run_downloads: bool = True, scan_wait_s: float | None = None) -> None:
        """Load the registry; with `run_downloads`, also carry on with unfinished downloads
        (the server does; a short command-line action does not). With `scan_wait_s`, start waits
        at most that long for the look through the models folder (`folder_scan`), which then goes
        on in the background: the server answers however many files, and whatever files, have
        been put there."""
        await self.registry.load()
        idle = await self.registry.get_setting(IDLE_KEY)
        if isinstance(idle, (int, float)):
            self.residency.idle_unload_s = float(idle)
        await self._sync_bundled()
        await self._use_configured_chat_model()
        for record in await self.registry.forget_missing():
            log.warning("model %s is gone from %s; removed from the list", record.id, record.path)
        self.folder_scan = asyncio.create_task(self._scan_folder(), name="models folder scan")
        done, _ = await asyncio.wait({self.folder_scan}, timeout=scan_wait_s)
        if not done:
            log.warning("still looking through the models folder %s; the models found there are listed "
                        "as they are checked", self.folder)
        await self.downloads.load()
        if run_downloads and self.downloads.start():
            await asyncio.to_thread(self.downloads.clean_leftovers)

    async def stop(self) -> None:
        if self.folder_scan is not None and not self.folder_scan.done():
            self.folder_scan.cancel()  # the file being read finishes in its thread; the rest are left
            with contextlib.suppress(asyncio.CancelledError):
                await self.folder_scan
        await self.downloads.stop()

    # ----- what is there -----------------------------------------------------------------

    def installed(self, job: str | None = None) -> list[ModelRecord]:
        return self.registry.all(job)

    def language_models(self) -> list[ModelRecord]:
        """The models that answer chats: language models, then those that also see."""
        return self.installed("chat") + self.installed("vision")

    def active(self, job: str) -> ModelRecord | None:
        return self.registry.active(job)

    def get(self, model_id: str) -> ModelRecord | None:
        return self.registry.get(model_id)

    def disk_used(self) -> int:
        return self.registry.disk_used() + self.downloads.partial_bytes()

    def context_for(self, record: ModelRecord) -> int:
        """The context a language model is loaded with: the owner's choice or the app setting,
        never more than it was trained for."""
        wanted = record.context_choice or self.settings.context_length
        trained = record.context_length
        return min(wanted, trained) if trained else wanted

    def estimate(self, record: ModelRecord, n_ctx: int | None = None) -> MemoryEstimate:
        if _language_model(record.job) and record.format == "gguf" and record.info.get("layers"):
            return estimate_llm(record.info, record.size_bytes, n_ctx or self.context_for(record))
        return estimate_file_model(record.job, record.size_bytes)

    def check_fit(self, record: ModelRecord, n_ctx: int | None = None) -> MemoryEstimate:
        """The estimate, or MemoryRefused (with what would fit) when over the budget."""
        estimate = self.estimate(record, n_ctx)
        budget = self.residency.budget.limit
        if estimate.total > budget and not record.memory_override:
            raise MemoryRefused(f"{record.name} needs {estimate.describe()}, more than the memory budget of "
                                f"{format_bytes(budget)}.", needed=estimate.total, budget=budget,
                                suggestion=self.suggestion(record, budget))
        return estimate

    def suggestion(self, record: ModelRecord, budget: int, *, here: bool = False) -> str | None:
        """What would fit instead; `here` when shown on the Models page itself."""
        options: list[str] = []
        if _language_model(record.job) and record.info.get("layers"):
            n_ctx = largest_context_within(record.info, record.size_bytes, budget)
            if n_ctx is not None:  # a power of two, as the page offers
                options.append(f"a context of {1 << (n_ctx.bit_length() - 1)} tokens")
        smaller = [r for r in self.registry.all(record.job)
                   if r.id != record.id and self.estimate(r).total <= budget]
        if smaller:
            options.append("the smaller installed model " + smaller[0].name)
        else:
            fitting = [e for e in self.catalog.for_job(record.job)
                       if e.estimate(self.settings.context_length).total <= budget]
            if fitting:
                best = max(fitting, key=lambda e: e.size_bytes)
                options.append(f"a smaller model such as {best.name} ({best.quantization or 'from the catalog'})")
        anyway = "or turn on “Load anyway” below" if here else "or turn on “Load anyway” for it, on the Models page"
        if not options:
            return f"Use a smaller quantization of this model, {anyway}."
        return "Try " + " or ".join(options) + f", {anyway}."

    def catalog_rows(self, job: str) -> list[CatalogRow]:
        budget, physical = self.residency.budget.limit, self.residency.budget.physical
        rows = []
        for entry in self.catalog.for_job(job):
            installed = next((r for r in self.registry.all(job)
                              if r.repo == entry.repo and r.path.name == Path(entry.main_file.path).name), None)
            rows.append(CatalogRow(entry=entry, installed=installed,
                                   fit=Catalog.fit(entry, budget=budget, physical=physical,
                                                   n_ctx=self.settings.context_length),
                                   download=self.downloads.active_for(entry.repo, entry.main_file.path)))
        return rows

    # ----- hub ---------------------------------------------------------------------------

    async def search(self, query: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.hub.search, query)

    async def listing(self, repo: str) -> RepoListing:
        try:
            return await asyncio.to_thread(self.hub.listing, repo)
        except UnsafeName as exc:
            raise ModelManagerError(str(exc)) from None

    async def pull_catalog(self, entry_id: str, *, override: bool = False) -> Download:
        entry = self.catalog.get(entry_id)
        if entry is None:
            raise ModelManagerError(f"there is no catalog entry '{entry_id}'", ErrorCode.NOT_FOUND)
        fit = Catalog.fit(entry, budget=self.residency.budget.limit, physical=self.residency.budget.physical,
                          n_ctx=self.settings.context_length)
        if not fit.fits and not override:
            raise MemoryRefused(f"{entry.name} {fit.reason}.", needed=fit.estimate, budget=self.residency.budget.limit)
        self.downloads.require_runner()
        files = await self._remote_files(entry.repo, [(f.path, f.role) for f in entry.files])
        for remote, pinned in zip(files, entry.files, strict=True):
            if pinned.sha256 and remote[0].sha256 != pinned.sha256:
                raise ModelManagerError(f"{entry.repo}/{pinned.path} on the hub is not the file the catalog "
                                        "names (its checksum differs); not downloading it")
        return await self._queue(entry.repo, entry.job, entry.name, files,
                                 {"catalog_id": entry.id, "memory_override": override})

    async def pull(self, repo: str, path: str, *, job: str | None = None, override: bool = False) -> Download:
        """Download one file from a hub repository; a vision model's projector comes with it."""
        try:
            repo, path = safe_repo_id(repo), safe_relative_path(path)
        except UnsafeName as exc:
            raise ModelManagerError(str(exc)) from None
        self.downloads.require_runner()
        main = await asyncio.to_thread(self.hub.file, repo, path)  # fails fast when offline or not there
        wanted: list[tuple[str, str]] = [(path, "model")]
        listing: RepoListing | None = None
        if path.endswith(".gguf") and job in (None, "vision", "chat"):
            try:
                listing = await self.listing(repo)
            except HubError:
                listing = None
            projectors = listing.projectors() if listing is not None else []
            if projectors and job != "chat":
                job = "vision"
                wanted.append((self._pick_projector(projectors, path).path, "projector"))
        job = job or ("images" if path.endswith(".safetensors") else "chat")
        if job not in JOBS:
            raise ModelManagerError(f"unknown job '{job}'")
        if not path.endswith(allowed_suffixes(job)):
            raise ModelManagerError(f"{path} is not a {job} model file (expected {', '.join(allowed_suffixes(job))})")
        files = await self._remote_files(repo, wanted, known=main)
        size = sum(f.size for f, _ in files)
        scratch = self.folder / ".partial" / f"header-{uuid.uuid4().hex[:8]}" / Path(path).name
        try:
            shape = None
            if _language_model(job):
                shape = await self._remote_shape(files[0][0], scratch)
            if not override:
                self._check_download_fits(path, job, size, shape, listing if job != "images" else None)
            starts = {files[0][0].path: scratch} if shape is not None else None
            return await self._queue(repo, job, Path(path).stem, files, {"memory_override": override}, starts)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch.parent, True)

    async def _remote_shape(self, remote: RemoteFile, scratch: Path) -> dict[str, Any] | None:
        """A language model's shape from the start of its file on the hub, before downloading
        it all; those bytes then begin the download. None if the header cannot be read."""
        await asyncio.to_thread(scratch.parent.mkdir, parents=True, exist_ok=True)
        nbytes = 256 * 1024  # the tensor table follows the vocabulary: a few MB for large vocabularies
        while True:
            got = await asyncio.to_thread(self.hub.fetch_start, remote, scratch, min(nbytes, remote.size))
            try:
                info = await asyncio.to_thread(read_gguf_info, scratch, total_size=remote.size)
            except GgufIncomplete:
                if got >= remote.size or nbytes >= 64 * 1024 * 1024:
                    return None
                nbytes *= 4
                continue
            except GgufError as exc:
                raise ModelManagerError(f"{exc} (on the hub; nothing was downloaded)") from None
            return info.summary() if info.layers else None

    def _check_download_fits(self, path: str, job: str, size: int, shape: dict[str, Any] | None,
                             listing: RepoListing | None) -> None:
        budget = self.residency.budget.limit
        if shape is not None:
            n_ctx = min(self.settings.context_length, int(shape.get("trained_context") or self.settings.context_length))
            estimate = estimate_llm(shape, size, n_ctx)
        else:
            estimate = estimate_file_model(job, size)
        if estimate.total <= budget:
            return
        options: list[str] = []
        if shape is not None:
            n_ctx_fit = largest_context_within(shape, size, budget)
            if n_ctx_fit is not None:
                options.append(f"a context of {n_ctx_fit} tokens")
            smaller = [f for f in (listing.files if listing else [])
                       if f.path.endswith(".gguf") and not f.is_projector and f.size < size - 1
                       and estimate_llm(shape, f.size, n_ctx).total <= budget]
            if smaller:
                best = max(smaller, key=lambda f: f.size)
                options.append(f"the smaller quantization {best.path} ({format_bytes(best.size)})")
        suggestion = ("Try " + " or ".join(options) + ", or download it anyway.") if options else \
            "Choose a smaller quantization (a lower Q number), or download it anyway."
        raise MemoryRefused(f"{path} needs {estimate.describe()}, more than the {format_bytes(budget)} memory "
                            "budget.", needed=estimate.total, budget=budget, suggestion=suggestion)

    @staticmethod
    def _pick_projector(projectors: list[RemoteFile], model_path: str) -> RemoteFile:
        """The projector that matches the model's quantization, else f16, else the first."""
        quant = RemoteFile(path=model_path, size=0).quantization
        for want in (quant, "F16", "Q8_0"):
            for p in projectors:
                if want and p.quantization == want:
                    return p
        return projectors[0]

    async def _remote_files(self, repo: str, wanted: list[tuple[str, str]],
                            known: RemoteFile | None = None) -> list[tuple[RemoteFile, str]]:
        """Metadata of each wanted file at one commit (`known`: the first one, already fetched)."""
        for path, _ in wanted:
            existing = self.downloads.active_for(repo, path)
            if existing is not None:
                raise ModelManagerError(f"{path} is already being downloaded", ErrorCode.CONFLICT)
            if any(r.repo == repo and r.path.name == Path(path).name and r.path.exists()
                   for r in self.registry.all()):
                raise ModelManagerError(f"{repo}/{path} is already installed", ErrorCode.CONFLICT)
        found: list[tuple[RemoteFile, str]] = []
        revision: str | None = None
        for path, role in wanted:
            if known is not None and known.path == path and not found:
                remote = known
            else:
                remote = await asyncio.to_thread(self.hub.file, repo, path, revision)
            revision = revision or remote.revision
            found.append((remote, role))
        return found

    async def _queue(self, repo: str, job: str, name: str, files: list[tuple[RemoteFile, str]],
                     options: dict[str, Any], starts: dict[str, Path] | None = None) -> Download:
        try:
            return await self.downloads.add(repo=repo, job=job, name=name, files=files, options=options,
                                            starts=starts)
        except UnsafeName as exc:
            raise ModelManagerError(str(exc)) from None

    async def _install_download(self, dl: Download, staging: Path) -> str:
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
            id=model_id_from(catalog_id or Path(main.path).stem), job=dl.job, name=dl.name, format=inspected.format,
            path=root if dl.job == "speech" else placed[main.path],
            projector=placed[projector.path] if projector else None,
            folder=root if dl.job == "speech" else None,
            size_bytes=sum(f.size for f in dl.files), quantization=inspected.quantization,
            license=self._licence(catalog_id, inspected), source="hub", repo=dl.repo, revision=dl.revision,
            sha256=main.sha256,
            info=inspected.info | {"companions": [str(placed[f.path]) for f in dl.files if f.role == "config"]},
            memory_override=bool(dl.options.get("memory_override")))
        record = await self.registry.add(record)
        log.info("installed %s from %s", record.id, dl.repo)
        return record.id

    def _licence(self, catalog_id: str | None, inspected: Inspected) -> str | None:
        entry = self.catalog.get(catalog_id) if catalog_id else None
        return entry.license if entry is not None else inspected.license

    @staticmethod
    def _inspect_set(job: str, main: Path, projector: Path | None, configs: list[Path]) -> Inspected:
        inspected = inspect_model_file(main, job)
        if _language_model(job) and inspected.projector:
            raise ModelFileError(f"{main.name} is a vision projector, not a language model")
        if projector is not None:
            proj = inspect_model_file(projector, "vision")
            if not proj.projector:
                raise ModelFileError(f"{projector.name} is not a vision projector (mmproj)")
            width, expected = proj.info.get("projection_dim"), inspected.info.get("embedding_length")
            if width and expected and width != expected:
                raise ModelFileError(f"{projector.name} projects to {width} values but {main.name} expects "
                                     f"{expected}; they do not belong together")
        for config in configs:
            check_companion_file(config)
        return inspected

    # ----- local files -------------------------------------------------------------------

    async def import_file(self, source: Path, job: str, *, name: str | None = None, move: bool = False,
                          projector: Path | None = None) -> ModelRecord:
        """Copy (or move) a model file from this device into the models folder and register it."""
        if job not in ("chat", "vision", "images"):
            raise ModelManagerError(f"importing {job} models is not supported; download them from the catalog")
        if not source.is_absolute():
            raise ModelManagerError(f"give the full path of the file (starting with /), not '{source}'")
        if not await asyncio.to_thread(source.is_file):
            raise ModelManagerError(f"{source} is not a file")
        if not source.name.endswith(allowed_suffixes(job)):
            raise ModelManagerError(f"{source.name}: a {job} model must be a {' or '.join(allowed_suffixes(job))} file")
        if job == "vision" and projector is None:
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
        record = ModelRecord(id=model_id_from(name or source.stem), job=job, name=name or source.stem,
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

    async def activate(self, job: str, model_id: str) -> ModelRecord:
        record = self.registry.get(model_id)
        if record is None or record.job != job:
            raise unknown_model(model_id, job)
        await self.registry.set_active(job, model_id)
        return record

    async def set_memory_override(self, model_id: str, override: bool) -> ModelRecord:
        return await self.registry.set_memory_override(model_id, override)

    async def set_idle_unload(self, seconds: float) -> None:
        """How long an unused model stays loaded (0: until something else needs the room)."""
        await self.registry.set_setting(IDLE_KEY, max(0.0, float(seconds)))
        self.residency.idle_unload_s = max(0.0, float(seconds))

    async def set_context(self, model_id: str, context_length: int | None) -> ModelRecord:
        if context_length is not None and not 256 <= context_length <= 131072:
            raise ModelManagerError("the context length must be between 256 and 131072 tokens")
        return await self.registry.set_context_choice(model_id, context_length)

    # ----- start-up ----------------------------------------------------------------------

    async def _register_found(self, path: Path, job: str, source: str, *, model_id: str | None = None,
                              name: str | None = None) -> ModelRecord | None:
        """Register a model found on disk. A speech model is its folder (the engine loads the
        folder; its `model.bin` is what is checked)."""
        if self.registry.by_path(path) is not None:
            return None
        checked = path / "model.bin" if job == "speech" else path
        try:
            inspected = await asyncio.to_thread(inspect_model_file, checked, job)
            size = inspected.size
            if job == "speech":
                size = await asyncio.to_thread(_folder_size, path)
        except (ModelFileError, OSError) as exc:  # one bad file must not keep the app from starting
            log.warning("ignoring %s: %s", path, exc)
            return None
        if inspected.projector:
            return None
        stem = path.name if job == "speech" else path.stem
        return await self.registry.add(ModelRecord(
            id=model_id or model_id_from(stem), job=job, name=name or stem, format=inspected.format,
            path=path, size_bytes=size, quantization=inspected.quantization, license=inspected.license,
            source=source, info=inspected.info,
            folder=path if job == "speech" and source == "folder" else None))

    async def _sync_bundled(self) -> None:
        bundled = ((bundled_chat_model(), "chat", "smollm2-135m-instruct", "SmolLM2 135M Instruct"),
                   (bundled_speech_model(), "speech", "whisper-tiny-en", "Whisper tiny.en"),
                   (bundled_voice(), "voice", "piper-en-us-joe-medium", "Piper Joe (US English)"))
        for path, job, model_id, name in bundled:
            if path is not None:
                await self._register_found(path, job, "bundled", model_id=model_id, name=name)

    async def _use_configured_chat_model(self) -> None:
        """The chat model GRIDLESS_CHAT_MODEL names is registered and made active before anything
        else, so the first chat uses it."""
        configured = self.settings.chat_model
        if configured is not None:
            record = self.registry.by_path(configured) or await self._register_found(configured, "chat", "folder")
            if record is not None:
                await self.registry.set_active("chat", record.id)

    async def _scan_folder(self) -> None:
        """Models put straight into the models folder: GGUF files are chat models, `.safetensors` files
        image models, Whisper folders speech models, Piper voices voice models. A file that is not a
        usable model is logged and left out (`_register_found`)."""
        try:
            if self.folder.is_dir():
                for path in sorted(self.folder.glob("*.gguf")):
                    await self._register_found(path, "chat", "folder")
                for path in sorted(self.folder.glob("*.safetensors")):
                    await self._register_found(path, "images", "folder")
                # Whisper models in CTranslate2 form (one folder each) and Piper voices (.onnx + .onnx.json)
                for model_bin in sorted(self.folder.glob("*/model.bin")):
                    if (model_bin.parent / "tokenizer.json").is_file() or \
                            (model_bin.parent / "vocabulary.txt").is_file():
                        await self._register_found(model_bin.parent, "speech", "folder")
                for onnx in sorted(self.folder.glob("*.onnx")):
                    if onnx.with_name(onnx.name + ".json").is_file():
                        await self._register_found(onnx, "voice", "folder")
        except Exception:  # in the background nobody awaits it: say so, and keep serving
            log.exception("looking through the models folder %s failed", self.folder)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
