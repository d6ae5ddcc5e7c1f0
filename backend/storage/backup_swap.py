"""Putting a staged restore in place so that a kill at any moment leaves either all of the previous
data or all of the restored data, never a mix.

The swap is a list of items, each a live path (the database and its `-wal`/`-shm`, the media folder,
each model file), where its replacement waits (the staging folders) and where the live one goes
meanwhile (`.restore-old/`, on the same file system). The list is written first, atomically, as the
journal `<data>/.restore-journal.json`; then every live path is renamed aside, then every staged
path renamed in; the journal is removed once all are in, and only then the old data. Renames within
one file system are atomic, so after a kill each item is wholly in one of its places, and the journal
says which is which: if every staged path was renamed in, the restore is finished (roll forward);
otherwise each item is put back (roll back). `recover_interrupted_restore` does that at start-up,
before the database is opened. Without a journal, staging and old folders are leftovers: removed.

The database must be closed during the swap: its `-wal` and `-shm` go aside with it (after a clean
close SQLite has already removed them), so a rolled-back database is whole, and the restored one
starts with none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import Settings
from .backup_check import StagedRestore, unfinished_restore
from .backup_fixup import fix_restored_database
from .backup_format import DB_NAME, JOURNAL_NAME, MEDIA_DIR, OLD_DIR, STAGING_DIR
from .media import sync_path

__all__ = ["apply_staged", "recover_interrupted_restore"]

log = logging.getLogger(__name__)

step_hook: Callable[[str], None] | None = None
"""Called after each step of a swap with its name ('fixed', 'journal', 'out:<n>', 'in:<n>', 'done', and
'back:<n>' while one is undone): the tests use it to stop the process at every point of a restore."""


@dataclass(kw_only=True, slots=True, frozen=True)
class _Item:
    live: str
    staged: str | None
    """None for what only goes aside (the old database's -wal and -shm)."""
    old: str


def apply_staged(staged: StagedRestore, settings: Settings) -> dict[str, int]:
    """Swap the staged data in (the database must be closed); returns what it holds. On any error the
    previous data is put back (or the restore finished, if it was wholly in) and the error raised."""
    journal = settings.data_dir / JOURNAL_NAME
    if journal.exists():  # its staging folders are the ones this restore staged into: nothing is safe to do
        staged.release()
        raise unfinished_restore()
    try:
        fix_restored_database(staged.database, settings.db_path, settings.model_folder, staged.manifest)
        _step("fixed")
        staged.media.mkdir(exist_ok=True)  # an archive without media files restores an empty folder
        items = _plan(staged, settings)
        folders = _folders(settings)
        for folder in folders[1::2]:  # old folders, left by nothing that still needs them (no journal)
            shutil.rmtree(folder, ignore_errors=True)
        _write_journal(journal, items, folders)
        _step("journal")
        for n, item in enumerate(items):
            if os.path.lexists(item.live):
                _move(item.live, item.old)
            _step(f"out:{n}")
        for n, item in enumerate(items):
            if item.staged is not None:
                _move(item.staged, item.live)
            _step(f"in:{n}")
        _finish(journal, folders)
        _step("done")
    except BaseException:
        if journal.exists():
            recover_interrupted_restore(settings)
        else:
            staged.discard()
        raise
    finally:
        staged.release()
    log.info("restored a backup made %s by gridless %s", staged.manifest.created_at, staged.manifest.app_version)
    return staged.counts


def recover_interrupted_restore(settings: Settings) -> str | None:
    """Finish or undo a swap that a kill cut off (call before the database is opened): 'finished',
    'rolled back', or None when there was none."""
    journal = settings.data_dir / JOURNAL_NAME
    if not journal.exists():
        for folder in _folders(settings):
            shutil.rmtree(folder, ignore_errors=True)
        return None
    saved = json.loads(journal.read_text())  # written whole or not at all (renamed into place)
    items = [_Item(**item) for item in saved["items"]]
    folders = [Path(p) for p in saved["folders"]]
    finished = all(item.staged is None or (not os.path.lexists(item.staged) and os.path.lexists(item.live))
                   for item in items)
    if not finished:
        for n, item in reversed(list(enumerate(items))):
            if item.staged is not None and not os.path.lexists(item.staged) and os.path.lexists(item.live):
                _move(item.live, item.staged)  # it had come in: back to staging, which goes below
            if os.path.lexists(item.old):
                _move(item.old, item.live)
            _step(f"back:{n}")
    _finish(journal, folders)
    outcome = "finished" if finished else "rolled back"
    log.warning("a restore was cut off; it was %s", outcome)
    return outcome


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def _folders(settings: Settings) -> list[Path]:
    """Staging and old folders, in pairs: beside the data, and beside the models folder."""
    return [settings.data_dir / STAGING_DIR, settings.data_dir / OLD_DIR,
            settings.model_folder / STAGING_DIR, settings.model_folder / OLD_DIR]


def _plan(staged: StagedRestore, settings: Settings) -> list[_Item]:
    data_old, models_old = settings.data_dir / OLD_DIR, settings.model_folder / OLD_DIR
    db = settings.db_path
    items = [_Item(live=str(db), staged=str(staged.database), old=str(data_old / DB_NAME))]
    items += [_Item(live=f"{db}{suffix}", staged=None, old=str(data_old / f"{DB_NAME}{suffix}"))
              for suffix in ("-wal", "-shm")]
    items.append(_Item(live=str(settings.media_dir), staged=str(staged.media), old=str(data_old / MEDIA_DIR)))
    items += [_Item(live=str(settings.model_folder / rel), staged=str(staged.models_staging / rel),
                    old=str(models_old / rel)) for rel in staged.model_members]
    missing = [item.staged for item in items if item.staged is not None and not os.path.lexists(item.staged)]
    if missing:
        raise FileNotFoundError(f"the staged restore lacks {missing[0]}")
    return items


def _write_journal(journal: Path, items: list[_Item], folders: list[Path]) -> None:
    tmp = journal.with_name(journal.name + ".tmp")
    with tmp.open("w") as fh:
        json.dump({"version": 1, "items": [asdict(item) for item in items],
                   "folders": [str(p) for p in folders]}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, journal)
    sync_path(journal.parent)


def _move(source: str, target: str) -> None:
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    sync_path(Path(target).parent)
    sync_path(Path(source).parent)


def _finish(journal: Path, folders: list[Path]) -> None:
    """The swap is decided: forget it first, then remove what it no longer needs (leftovers without a
    journal are removed at the next start, so a kill in between loses nothing)."""
    journal.unlink(missing_ok=True)
    sync_path(journal.parent)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)

