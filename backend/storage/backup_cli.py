"""`gridless backup FILE` and `gridless restore FILE`: the same archives as the Backup page, from a terminal.

A backup may be made while the server runs (the database is copied with SQLite's backup API). A
restore may not: it takes the data folder's lock, which a running server holds, and says so; the
Backup page restores while the server runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from ..core.config import Settings
from ..core.errors import AppError
from ..core.units import format_bytes
from .backup import StagedRestore, apply_staged, check_and_stage, recover_interrupted_restore, write_backup
from .data_lock import DataFolderBusy, DataLock

__all__ = ["add_parsers", "run"]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser("backup", help="write every conversation, media file and setting into one file")
    backup.add_argument("file", help="the backup file to write (a .tar); '-' writes to standard output")
    backup.add_argument("--models", dest="include_models", action="store_true",
                        help="include the model files too (not the bundled ones)")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.add_argument("--data-dir", type=Path, help="where gridless keeps its data (env GRIDLESS_DATA_DIR)")
    restore = commands.add_parser("restore", help="replace everything with what a backup file holds")
    restore.add_argument("file", help="the backup file; '-' reads standard input")
    restore.add_argument("--yes", action="store_true", help="replace the data without asking")
    restore.add_argument("--data-dir", type=Path, help="where gridless keeps its data (env GRIDLESS_DATA_DIR)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _backup(args, settings) if args.command == "backup" else _restore(args, settings)
    except AppError as exc:
        print(f"gridless: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        print("\ngridless: the program reading the backup stopped reading; the backup is incomplete",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ngridless: stopped; nothing was changed", file=sys.stderr)
        return 130


class _Progress:
    """Progress on standard error: redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < total:
            return
        self.last = now
        line = f"backing up: {done / total if total else 1:.0%} ({format_bytes(done)} of {format_bytes(total)})"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    progress = _Progress()
    if args.file == "-":
        if sys.stdout.isatty():
            print("gridless: a backup is binary; send standard output to a file or a program", file=sys.stderr)
            return 2
        summary = write_backup(sys.stdout.buffer, settings, include_models=args.include_models, progress=progress)
        sys.stdout.buffer.flush()
    else:
        target = Path(args.file).expanduser()
        if target.exists() and not args.force:
            print(f"gridless: {target} exists; add --force to replace it", file=sys.stderr)
            return 1
        part = target.with_name(f".{target.name}.part")
        try:
            with part.open("wb") as out:
                summary = write_backup(out, settings, include_models=args.include_models, progress=progress)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, target)  # a backup cut off never takes the file's name
        except OSError as exc:
            print(f"\ngridless: the backup could not be written: {exc}", file=sys.stderr)
            return 1
        finally:
            part.unlink(missing_ok=True)
    if progress.tty:
        print(file=sys.stderr)  # end the progress line
    models = f", {summary.models} models" if summary.models else ""
    where = f" to {args.file}" if args.file != "-" else ""
    print(f"backed up {summary.files} files ({format_bytes(summary.bytes)}{models}){where}", file=sys.stderr)
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes and (args.file == "-" or not sys.stdin.isatty()):
        print("gridless: a restore replaces everything in the data folder; add --yes to do it without being asked",
              file=sys.stderr)
        return 2
    lock = DataLock(settings.data_dir)
    try:
        lock.acquire()
    except DataFolderBusy as exc:
        print(f"gridless: {exc} While the server runs, restore from its Backup page.", file=sys.stderr)
        return 1
    try:
        if recover_interrupted_restore(settings) is not None:
            print("gridless: an earlier restore had been cut off; it was finished or undone", file=sys.stderr)
        print("reading and checking the backup…", file=sys.stderr)
        source: Path | BinaryIO = sys.stdin.buffer if args.file == "-" else Path(args.file).expanduser()
        staged = check_and_stage(source, settings)
        print(_describe(staged), file=sys.stderr)
        if not args.yes and input(f"Replace everything in {settings.data_dir} with it? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            staged.discard()
            print("nothing was changed", file=sys.stderr)
            return 1
        apply_staged(staged, settings)
        print("restored", file=sys.stderr)
        return 0
    finally:
        lock.release()


def _describe(staged: StagedRestore) -> str:
    c, m = staged.counts, staged.manifest
    models = f", {c['models']} models" if c.get("models") else ""
    return (f"the backup was made {m.created_at} by gridless {m.app_version}: {c.get('conversations', 0)} "
            f"conversations, {c.get('messages', 0)} messages, {c['media_files']} media files{models} "
            f"({format_bytes(c['bytes'])})")
