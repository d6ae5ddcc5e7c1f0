"""The one SQLite build gridless opens its data with, with `sqlite-vec` loaded.

The standard library's `sqlite3` may be built without loadable extensions (it is here), and the
data needs two: `sqlite-vec` for the vectors of documents' passages, and SQLCipher for
encryption. So the database is opened with SQLCipher's SQLite (`sqlcipher3`, a plain SQLite file
while no key is set) or, where that cannot be installed, `pysqlite3`, or the standard library's
when it can load extensions. Everything that opens the data — the server's connection, backups,
restores, their checks — goes through `connect`, so the same SQLite reads it everywhere and the
error classes caught (`sqlite.Error`, `sqlite.IntegrityError`…) are the ones it raises.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import sqlite_vec

__all__ = ["Connection", "connect", "load_extensions", "sqlite"]


def _driver() -> ModuleType:
    for name in ("sqlcipher3.dbapi2", "pysqlite3.dbapi2"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    import sqlite3

    return sqlite3


if TYPE_CHECKING:
    import sqlite3 as sqlite  # the drivers share its interface
else:
    sqlite = _driver()

Connection = sqlite.Connection


def load_extensions(conn: Any) -> None:
    """Load `sqlite-vec` into a connection (a driver's own, or aiosqlite's inner one)."""
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)


def connect(path: str | Path, **kwargs: Any) -> sqlite.Connection:
    """A connection to `path` with `sqlite-vec` loaded."""
    conn = sqlite.connect(str(path), **kwargs)
    try:
        load_extensions(conn)
    except BaseException:
        conn.close()
        raise
    return conn
