"""The move's backup archive: written with the backup's own writer (no models: they travel as
files of their own), and on the new device verified into a staging folder before it is applied."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..core.config import Settings
from ..storage.backup import StagedRestore, check_and_stage, write_backup
from .offer import ArchiveWriter
from .pull import ArchiveApplier

__all__ = ["archive_applier", "archive_writer"]


def archive_writer(settings: Settings) -> ArchiveWriter:
    async def write(out: Path, progress: Callable[[int, int], None]) -> None:
        def run() -> None:
            with out.open("wb") as fh:
                write_backup(fh, settings, include_models=False, progress=progress)

        await asyncio.to_thread(run)
    return write


def archive_applier(settings: Settings, restore: Callable[[StagedRestore], Awaitable[object]]) -> ArchiveApplier:
    async def apply(archive: Path) -> None:
        staged = await asyncio.to_thread(check_and_stage, archive, settings)
        await restore(staged)
    return apply
