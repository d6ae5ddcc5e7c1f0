"""The model manager: what is installed and active per job, what the catalog recommends, and
whether a model fits in memory. Getting models from the hub is `acquire.py`; putting files in
place (downloads, imports, the models folder) and deleting them is `install.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.jobs import Job
from ..core.units import format_bytes
from ..runtime.residency import MemoryRefused, ResidencyManager
from ..storage.db import Database
from .acquire import HubModels
from .catalog import CATALOG_FILE, Catalog, CatalogEntry, Fit
from .downloads import Download, DownloadError, DownloadManager
from .errors import ModelManagerError, unknown_model
from .files import ModelFileError
from .hub import HubClient, HubError, RepoListing
from .install import Installer
from .memory import MemoryEstimate, estimate_embedding, estimate_file_model, estimate_llm, largest_context_within
from .registry import ModelRecord, ModelRegistry

__all__ = ["CatalogRow", "DownloadError", "HubError", "ModelFileError", "ModelManager", "ModelManagerError",
           "unknown_model"]

log = logging.getLogger(__name__)
IDLE_KEY = "idle_unload_s"


@dataclass(kw_only=True, slots=True)
class CatalogRow:
    entry: CatalogEntry
    fit: Fit
    installed: ModelRecord | None
    download: Download | None


class ModelManager:
    def __init__(self, settings: Settings, db: Database, residency: ResidencyManager) -> None:
        self.settings = settings
        self.folder = settings.model_folder
        self.registry = ModelRegistry(db)
        self.catalog = Catalog.load(settings.catalog or CATALOG_FILE)
        self.hub = HubClient(settings.hub_endpoint)
        self.residency = residency
        self.installer = Installer(settings, self.registry, self.catalog, residency)
        self.downloads = DownloadManager(db, self.folder, endpoint=settings.hub_endpoint,
                                         install=self.installer.install_download)
        self.hub_models = HubModels(settings, self.hub, self.catalog, self.downloads, self.registry, residency)
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
        await self.installer.sync_bundled()
        await self.installer.use_configured_chat_model()
        for record in await self.registry.forget_missing():
            log.warning("model %s is gone from %s; removed from the list", record.id, record.path)
        self.folder_scan = asyncio.create_task(self.installer.scan_folder(), name="models folder scan")
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
        return self.installed(Job.CHAT) + self.installed(Job.VISION)

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
        if Job(record.job).is_language and record.format == "gguf" and record.info.get("layers"):
            return estimate_llm(record.info, record.size_bytes, n_ctx or self.context_for(record))
        if record.job == Job.EMBEDDINGS and record.info.get("layers"):
            return estimate_embedding(record.info, record.size_bytes)
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
        if Job(record.job).is_language and record.info.get("layers"):
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
        return await self.hub_models.search(query)

    async def listing(self, repo: str) -> RepoListing:
        return await self.hub_models.listing(repo)

    async def pull_catalog(self, entry_id: str, *, override: bool = False) -> Download:
        return await self.hub_models.pull_catalog(entry_id, override=override)

    async def pull(self, repo: str, path: str, *, job: str | None = None, override: bool = False) -> Download:
        """Download one file from a hub repository; a vision model's projector comes with it."""
        return await self.hub_models.pull(repo, path, job=job, override=override)

    async def import_file(self, source: Path, job: str, *, name: str | None = None, move: bool = False,
                          projector: Path | None = None) -> ModelRecord:
        """Copy (or move) a model file from this device into the models folder and register it."""
        return await self.installer.import_file(source, job, name=name, move=move, projector=projector)

    async def delete(self, model_id: str) -> ModelRecord:
        return await self.installer.delete(model_id)

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

