"""Checks on a database that came in a backup, before it may replace the live one."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..core.errors import AppError, ErrorCode
from .migrations import MIGRATIONS
from .sqlite import connect, sqlite

__all__ = ["COUNTED_TABLES", "check_database"]

log = logging.getLogger(__name__)

COUNTED_TABLES = ("conversations", "messages", "attachments", "images", "transcripts")
"""What a restore reports it brought back (those of them the database has)."""


def refused(message: str) -> AppError:
    return AppError(ErrorCode.BAD_REQUEST, message)


def check_database(path: Path) -> dict[str, int]:
    """Refuse (AppError BAD_REQUEST) a file that is not a SQLite database, one whose schema is newer
    than this gridless's migrations, one that fails `PRAGMA integrity_check`, and one with tables,
    indexes, triggers or views that gridless does not make. Returns the rows of COUNTED_TABLES.

    The file is left as one file in rollback-journal mode (no `-wal` beside it), so it can be moved
    into place alone; the server turns WAL on again when it opens it."""
    with path.open("rb") as fh:
        if not fh.read(16).startswith(b"SQLite format 3\0"):
            raise refused("The database in the backup is not a SQLite database; the backup is damaged.")
    conn = connect(path)
    try:
        # it came from outside: no functions from its schema, cells checked, no memory-mapped reads
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        conn.execute("PRAGMA mmap_size=0")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise refused(f"The backup's database was made by a newer gridless (schema {version}; this gridless "
                          f"knows {len(MIGRATIONS)}). Update gridless to restore it.")
        problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise refused(f"The backup's database is damaged: {problems[0]}.")
        _check_schema(conn, version)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # the names are ours
                  for t in COUNTED_TABLES if t in tables}
        conn.execute("PRAGMA journal_mode=DELETE")
        return counts
    except sqlite.DatabaseError as exc:
        raise refused(f"The backup's database cannot be read ({exc}); the backup is damaged.") from None
    finally:
        conn.close()


VECTOR_TABLE = re.compile(r"vectors_(\d+)(?:_[a-z0-9_]+)?")
"""A collection's sqlite-vec table (`vectors_<n>`) and its shadow tables (`vectors_<n>_chunks`…),
made as collections get their first vectors, not by a migration."""


def _objects(conn: sqlite.Connection) -> set[tuple[str, str]]:
    return {(kind, name) for kind, name in conn.execute("SELECT type, name FROM sqlite_master")
            if not name.startswith("sqlite_")}


def _collections_vectors(conn: sqlite.Connection, found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The vector tables (and their shadow tables and indexes) of collections the database has."""
    try:
        collections = {int(row[0]) for row in conn.execute("SELECT n FROM collections")}
    except sqlite.Error:
        return set()
    return {(kind, name) for kind, name in found
            if (m := VECTOR_TABLE.fullmatch(name)) and int(m.group(1)) in collections}


def _check_schema(conn: sqlite.Connection, version: int) -> None:
    """The database's tables, indexes, triggers and views are those this gridless's migrations make
    at its schema version, by name: another program's database, or one given a trigger, is refused."""
    reference = connect(":memory:")
    try:
        for script in MIGRATIONS[:version]:
            reference.executescript(script)
        expected = _objects(reference)
    except sqlite.Error as exc:  # a migration this plain SQLite cannot run (an extension): nothing to compare
        log.warning("could not build the reference schema to check a restored database against: %s", exc)
        return
    finally:
        reference.close()
    found = _objects(conn)
    found -= _collections_vectors(conn, found)
    extra, missing = sorted(found - expected), sorted(expected - found)
    if extra or missing:
        kind, name = (extra or missing)[0]
        raise refused(f"The backup's database is not gridless's: it {'has' if extra else 'lacks'} the {kind} "
                      f"{name!r}.")
