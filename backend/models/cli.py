"""`gridless models list | catalog | pull | import | rm`: the model manager from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from ..core.config import Settings
from ..core.errors import AppError
from ..core.jobs import Job
from ..core.units import format_bytes
from ..runtime.residency import MemoryBudget, ResidencyManager
from ..storage.db import Database
from .downloads import Download, DownloadState
from .files import JOBS
from .manager import ModelManager, unknown_model

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="list, download, import and delete models")
    models.add_argument("--data-dir", type=Path, help="where gridless keeps its data (env GRIDLESS_DATA_DIR)")
    models.add_argument("--models-dir", type=Path, help="the models folder (env GRIDLESS_MODELS_DIR)")
    sub = models.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="installed models, what is active, and downloads")
    listing.add_argument("--job", choices=JOBS)
    sub.add_parser("catalog", help="recommended models and whether they fit this device")
    pull = sub.add_parser("pull", help="download a catalog entry, or FILE from the hub repository REPO")
    pull.add_argument("repo", help="a catalog id, or a hub repository (owner/name)")
    pull.add_argument("file", nargs="?", help="the file in the repository")
    pull.add_argument("--job", choices=JOBS, help="what the model is for (guessed from the file when not given)")
    pull.add_argument("--force", action="store_true", help="download even if it will not fit in memory")
    imp = sub.add_parser("import", help="copy a model file from this device into the models folder")
    imp.add_argument("path", type=Path)
    imp.add_argument("--job", choices=[Job.CHAT, Job.VISION, Job.IMAGES], default=Job.CHAT)
    imp.add_argument("--name", help="a name for it (default: the file name)")
    rm = sub.add_parser("rm", help="delete an installed model and its files")
    rm.add_argument("name", help="the model's id (see `gridless models list`)")
    use = sub.add_parser("use", help="make an installed model the active one for its job")
    use.add_argument("name")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings))
    except KeyboardInterrupt:
        print("\nstopped; `gridless models pull` again continues where it left off", file=sys.stderr)
        return 130


@contextlib.asynccontextmanager
async def _manager(settings: Settings, run_downloads: bool) -> AsyncIterator[ModelManager]:
    settings.model_folder.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_path)
    await db.open()
    manager = ModelManager(settings, db, ResidencyManager(MemoryBudget(fraction=settings.memory_fraction,
                                                                       fixed_bytes=settings.memory_budget_bytes)))
    try:
        await manager.start(run_downloads=run_downloads)
        yield manager
    finally:
        await manager.stop()
        await db.close()


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with _manager(settings, run_downloads=args.models_command == "pull") as manager:
        try:
            return await COMMANDS[args.models_command](manager, args)
        except AppError as exc:
            print(f"gridless: {exc.message}", file=sys.stderr)
            return 1


async def _list(manager: ModelManager, args: argparse.Namespace) -> int:
    jobs = [args.job] if args.job else list(JOBS)
    for job in jobs:
        records = manager.installed(job)
        if not records:
            continue
        active = manager.active(job)
        print(f"{job}:")
        for r in records:
            mark = "*" if active is not None and r.id == active.id else " "
            facts = " · ".join(x for x in (format_bytes(r.size_bytes), r.quantization, r.source, r.repo) if x)
            print(f"  {mark} {r.id:<36} {facts}")
            print(f"      {r.path}")
    for dl in manager.downloads.all():
        if dl.state != DownloadState.DONE:
            print(f"download {dl.id}: {dl.repo} {dl.name} — {dl.state}, "
                  f"{format_bytes(dl.bytes_done)} of {format_bytes(dl.bytes_total)}"
                  + (f" ({dl.error})" if dl.error else ""))
    print(f"disk used by models: {format_bytes(manager.disk_used())}")
    return 0


async def _catalog(manager: ModelManager, args: argparse.Namespace) -> int:
    for job in JOBS:
        print(f"{job}:")
        for row in manager.catalog_rows(job):
            state = "installed" if row.installed else "fits" if row.fit.fits else f"too big: {row.fit.reason}"
            print(f"  {row.entry.id:<32} {format_bytes(row.entry.size_bytes):>9}  "
                  f"RAM ~{format_bytes(row.fit.estimate):>9}  {state}")
    return 0


async def _pull(manager: ModelManager, args: argparse.Namespace) -> int:
    if args.file is None:
        entry = manager.catalog.get(args.repo)
        if entry is None:
            print(f"gridless: '{args.repo}' is not a catalog id; give a repository and a file", file=sys.stderr)
            return 1
        repo, path = entry.repo, entry.main_file.path
    else:
        repo, path = args.repo, args.file
    dl = manager.downloads.active_for(repo, path)
    if dl is not None:
        print(f"continuing the download of {dl.name} from {format_bytes(dl.bytes_done)}", file=sys.stderr)
        await manager.downloads.resume(dl.id)
    elif args.file is None:
        dl = await manager.pull_catalog(args.repo, override=args.force)
    else:
        dl = await manager.pull(repo, path, job=args.job, override=args.force)
    final = await _follow(dl)
    if final.state != DownloadState.DONE:
        print(f"gridless: {final.error or final.state}", file=sys.stderr)
        return 1
    print(f"installed {final.model_id}")
    return 0


async def _follow(dl: Download) -> Download:
    interactive = sys.stderr.isatty()
    last = ""
    while dl.state.active:
        speed = f" {format_bytes(dl.speed)}/s" if dl.speed else ""
        line = f"{dl.name}: {format_bytes(dl.bytes_done)} of {format_bytes(dl.bytes_total)}{speed}"
        if interactive:
            print(f"\r{line:<72}", end="", file=sys.stderr, flush=True)
        elif line != last and dl.bytes_done == dl.bytes_total:
            print(line, file=sys.stderr)
        last = line
        await asyncio.sleep(0.25)
    if interactive:
        print(file=sys.stderr)
    return dl


async def _import(manager: ModelManager, args: argparse.Namespace) -> int:
    record = await manager.import_file(args.path.expanduser().resolve(), args.job, name=args.name)
    print(f"imported {record.id} ({format_bytes(record.size_bytes)})")
    return 0


async def _rm(manager: ModelManager, args: argparse.Namespace) -> int:
    record = await manager.delete(args.name)
    print(f"deleted {record.id}")
    return 0


async def _use(manager: ModelManager, args: argparse.Namespace) -> int:
    record = manager.get(args.name)
    if record is None:
        raise unknown_model(args.name)
    await manager.activate(record.job, record.id)
    print(f"{record.id} is now used for {record.job}")
    return 0


COMMANDS = {"list": _list, "catalog": _catalog, "pull": _pull, "import": _import, "rm": _rm, "use": _use}
