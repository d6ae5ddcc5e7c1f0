"""What a restored database is given of this device before it goes live: where its models are now.

- A model whose files came in the archive gets the paths of its files in this device's models folder.
- A bundled model (it ships in a package, so the archive never holds it) gets this device's path of
  the same bundled model, so it keeps its id, settings and the conversations that name it.
- A model installed on this device that the backup does not know stays listed: its files are here, and
  the restored data should not hide them (gigabytes nobody could see or delete from the app).
- Downloads that were under way when the backup was made are paused: a restore does not reach the
  network by itself; the person resumes them on the Models page.

Rows whose files are on neither device stay as they are; the model manager drops a model whose files
are missing when it starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .backup_format import MODELS_DIR, Manifest
from .media import sync_path
from .sqlite import connect, sqlite

__all__ = ["fix_restored_database"]

log = logging.getLogger(__name__)

_PATH_COLUMNS = ("path", "projector", "folder")


def fix_restored_database(restored: Path, live: Path, model_folder: Path, manifest: Manifest) -> None:
    """Rewrite the models of the database at `restored` (not live yet) for this device, given the
    live database at `live` (closed, or absent on a new device)."""
    moved = {original: str(model_folder / member.removeprefix(MODELS_DIR + "/"))
             for model in manifest.models for original, member in model.paths.items()}
    here = _live_models(live)
    conn = connect(restored)
    conn.row_factory = sqlite.Row
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"models", "downloads"} <= tables:  # a database from before models were kept
            return
        with conn:
            rows = [dict(row) for row in conn.execute("SELECT * FROM models")]
            bundled_here = {row["id"]: row for row in here if row["source"] == "bundled"}
            for row in rows:
                if row["source"] == "bundled" and row["id"] in bundled_here:
                    new = {c: bundled_here[row["id"]][c] for c in _PATH_COLUMNS}
                    new["info"] = _with_companions(row["info"], _companions(bundled_here[row["id"]]["info"]))
                else:
                    new = {c: moved.get(row[c], row[c]) if row[c] else row[c] for c in _PATH_COLUMNS}
                    new["info"] = _with_companions(row["info"], [moved.get(p, p) for p in _companions(row["info"])])
                conn.execute("UPDATE models SET path = ?, projector = ?, folder = ?, info = ? WHERE id = ?",
                             (new["path"], new["projector"], new["folder"], new["info"], row["id"]))
            _keep_models_of_this_device(conn, here)
            conn.execute("UPDATE downloads SET state = 'paused' WHERE state IN ('queued', 'running')")
    finally:
        conn.close()
    sync_path(restored)


def _live_models(live: Path) -> list[dict[str, Any]]:
    if not live.is_file():
        return []
    conn = connect(live)
    conn.row_factory = sqlite.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM models")]
    except sqlite.Error as exc:  # a live database this old or this damaged has no models to keep
        log.warning("the models of the data being replaced could not be read: %s", exc)
        return []
    finally:
        conn.close()


def _keep_models_of_this_device(conn: sqlite.Connection, here: list[dict[str, Any]]) -> None:
    columns = [row[1] for row in conn.execute("PRAGMA table_info(models)")]
    taken = {row[0] for row in conn.execute("SELECT id FROM models")}
    used_paths = {row[0] for row in conn.execute("SELECT path FROM models")}
    for row in here:
        if row["id"] in taken or row["path"] in used_paths:
            continue
        files = [row["path"], row["projector"], *_companions(row["info"])]
        if not all(Path(p).exists() for p in files if p):
            continue
        common = [c for c in columns if c in row]
        try:
            conn.execute(f"INSERT INTO models ({', '.join(common)}) VALUES ({', '.join('?' * len(common))})",
                         [row[c] for c in common])
        except sqlite.IntegrityError as exc:  # a schema the two databases do not share
            log.warning("model %s of this device could not be kept in the restored data: %s", row["id"], exc)


def _companions(info: str | None) -> list[str]:
    try:
        found = json.loads(info or "{}").get("companions", [])
    except (ValueError, AttributeError):
        return []
    return [p for p in found if isinstance(p, str)] if isinstance(found, list) else []


def _with_companions(info: str | None, companions: list[str]) -> str:
    try:
        data = json.loads(info or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if companions or "companions" in data:
        data["companions"] = companions
    return json.dumps(data)
