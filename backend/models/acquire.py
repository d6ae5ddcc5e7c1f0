"""Getting models from the hub: search, a repository's files, and downloads of a catalog entry
or of any hub file (with a vision model's projector), each checked against the memory budget
before a byte of it is fetched."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import ErrorCode
from ..core.jobs import Job
from ..core.units import format_bytes
from ..runtime.residency import MemoryRefused, ResidencyManager
from .catalog import Catalog
from .downloads import Download, DownloadManager
from .errors import ModelManagerError
from .files import JOBS, allowed_suffixes
from .gguf_info import GgufError, GgufIncomplete, read_gguf_info
from .hub import HubClient, HubError, RemoteFile, RepoListing
from .memory import estimate_file_model, estimate_llm, largest_context_within
from .names import UnsafeName, safe_relative_path, safe_repo_id
from .registry import ModelRegistry

__all__ = ["HubModels"]


class HubModels:
    def __init__(self, settings: Settings, hub: HubClient, catalog: Catalog, downloads: DownloadManager,
                 registry: ModelRegistry, residency: ResidencyManager) -> None:
        self.settings = settings
        self.folder = settings.model_folder
        self.hub = hub
        self.catalog = catalog
        self.downloads = downloads
        self.registry = registry
        self.residency = residency

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
        if path.endswith(".gguf") and job in (None, Job.VISION, Job.CHAT):
            try:
                listing = await self.listing(repo)
            except HubError:
                listing = None
            projectors = listing.projectors() if listing is not None else []
            if projectors and job != Job.CHAT:
                job = Job.VISION
                wanted.append((self._pick_projector(projectors, path).path, "projector"))
        job = job or (Job.IMAGES if path.endswith(".safetensors") else Job.CHAT)
        if job not in JOBS:
            raise ModelManagerError(f"unknown job '{job}'")
        if not path.endswith(allowed_suffixes(job)):
            raise ModelManagerError(f"{path} is not a {job} model file (expected {', '.join(allowed_suffixes(job))})")
        files = await self._remote_files(repo, wanted, known=main)
        size = sum(f.size for f, _ in files)
        scratch = self.folder / ".partial" / f"header-{uuid.uuid4().hex[:8]}" / Path(path).name
        try:
            shape = None
            if Job(job).is_language:
                shape = await self._remote_shape(files[0][0], scratch)
            if not override:
                self._check_download_fits(path, job, size, shape, listing if job != Job.IMAGES else None)
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
