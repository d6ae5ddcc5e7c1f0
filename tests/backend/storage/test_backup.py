"""Backups written from a real data folder and restored into another: the same rows and files come
back, a backup taken while an answer streams is one consistent snapshot, and model files land in
the new device's models folder with their rows pointing at them."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.storage.backup import apply_staged, check_and_stage, write_backup
from backend.storage.backup_format import MANIFEST_NAME, Manifest
from backend.storage.conversations import ConversationStore, MessageStatus
from backend.storage.db import Database
from backend.storage.migrations import MIGRATIONS
from tests.backups import archive, leftovers, member, populate, rows, settings_in, state, tree


def backup_bytes(settings: object, **kwargs: object) -> bytes:
    out = io.BytesIO()
    write_backup(out, settings, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


async def test_round_trip_restores_the_same_rows_and_files(tmp_path: Path) -> None:
    old, new = settings_in(tmp_path / "old"), settings_in(tmp_path / "new")
    await populate(old, tag="old", model=False)
    await populate(new, tag="new", conversations=1, media=1, model=False)
    data = await asyncio.to_thread(backup_bytes, old)

    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), new)
    assert staged.counts["conversations"] == 3 and staged.counts["messages"] == 6
    assert staged.counts["media_files"] == 3
    await asyncio.to_thread(apply_staged, staged, new)

    assert rows(new.db_path) == rows(old.db_path)
    assert tree(new.media_dir) == tree(old.media_dir)
    assert leftovers(new) == []
    db = Database(new.db_path)  # the app opens it as it opens its own, and it searches
    await db.open()
    try:
        assert await db.integrity_check() == "ok"
        assert [c.title for c in await ConversationStore(db).list_recent()] == ["old chat 2", "old chat 1",
                                                                                "old chat 0"]
        found = await ConversationStore(db).search("citta")
        assert len(found) == 3
    finally:
        await db.close()


async def test_the_archive_lists_every_member_with_size_and_checksum(tmp_path: Path) -> None:
    old = settings_in(tmp_path)
    await populate(old, tag="a")
    progress: list[tuple[int, int]] = []
    data = await asyncio.to_thread(backup_bytes, old, include_models=True,
                                   progress=lambda done, total: progress.append((done, total)))
    found = members(data)
    names = list(found)
    # the media files are written while the database is copied, the database after them, the manifest last
    assert names[-1] == MANIFEST_NAME and names[-2] == "models/a-model.gguf" and names[-3] == "gridless.db"
    assert all(name.startswith("media/") for name in names[:-3])
    manifest = Manifest.parse(found[MANIFEST_NAME])
    assert manifest.format_version == 1 and manifest.app_version
    assert {f.path: (f.size, f.sha256) for f in manifest.files} == \
        {name: (len(body), hashlib.sha256(body).hexdigest()) for name, body in found.items() if name != MANIFEST_NAME}
    assert "models/a-model.gguf" in found
    assert not any(name.startswith(("owner_token", "tls", "gridless.lock")) for name in found)
    total = sum(f.size for f in manifest.files)
    assert progress[0][0] == 0 and progress[-1] == (total, total)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(progress)) and all(d <= t for d, t in progress)


async def test_models_come_to_the_new_models_folder_and_their_rows_follow(tmp_path: Path) -> None:
    old, new = settings_in(tmp_path / "old"), settings_in(tmp_path / "new")
    await populate(old, tag="old")
    await populate(new, tag="here", conversations=0, media=0)
    elsewhere = tmp_path / "elsewhere.gguf"  # a model kept outside the models folder
    elsewhere.write_bytes(b"GGUF elsewhere")
    conn = sqlite3.connect(old.db_path)
    conn.execute("INSERT INTO models (id, job, name, format, path, size_bytes, source, info, added_at) VALUES"
                 " ('outside', 'chat', 'outside', 'gguf', ?, 14, 'folder', '{}', 0)", (str(elsewhere),))
    conn.execute("INSERT INTO models (id, job, name, format, path, size_bytes, source, info, added_at) VALUES"
                 " ('gone', 'chat', 'gone', 'gguf', '/nowhere/gone.gguf', 1, 'hub', '{}', 0)")
    conn.execute("INSERT INTO downloads (id, repo, revision, job, name, files, state, bytes_total, created_at,"
                 " updated_at) VALUES ('d1', 'a/b', 'main', 'chat', 'b', '[]', 'running', 10, 0, 0)")
    conn.commit()
    conn.close()
    data = await asyncio.to_thread(backup_bytes, old, include_models=True)
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), new)
    await asyncio.to_thread(apply_staged, staged, new)

    conn = sqlite3.connect(new.db_path)
    paths = dict(conn.execute("SELECT id, path FROM models").fetchall())
    download_state = conn.execute("SELECT state FROM downloads").fetchone()[0]
    conn.close()
    assert paths["old-model"] == str(new.model_folder / "old-model.gguf")
    assert paths["outside"] == str(new.model_folder / "from-elsewhere" / "outside" / "elsewhere.gguf")
    assert paths["gone"] == "/nowhere/gone.gguf"  # not in the archive: left for the manager to drop
    assert paths["here-model"] == str(new.model_folder / "here-model.gguf")  # this device's own stays listed
    assert (new.model_folder / "old-model.gguf").read_bytes() == (old.model_folder / "old-model.gguf").read_bytes()
    assert (new.model_folder / "from-elsewhere" / "outside" / "elsewhere.gguf").read_bytes() == b"GGUF elsewhere"
    assert download_state == "paused"  # a restore reaches no network by itself
    assert leftovers(new) == []


async def test_a_backup_while_an_answer_streams_is_one_consistent_snapshot(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await populate(settings, tag="live", model=False)
    db = Database(settings.db_path)
    await db.open()
    store = ConversationStore(db)
    conv = await store.create(title="streaming")
    answer = await store.add_message(conv.id, "assistant", "", status=MessageStatus.STREAMING)
    await db.execute("INSERT INTO conversations (id, title, created_at, updated_at) "
                     "SELECT 'filler-' || value, 'filler', 0, 0 FROM json_each(?)",
                     (json.dumps(list(range(20000))),))  # enough pages that copying takes a while
    written = 0
    stop = asyncio.Event()

    async def stream() -> None:
        nonlocal written
        while not stop.is_set():
            written += 1
            async with db.transaction() as conn:  # the answer and a counter move together
                await conn.execute("UPDATE messages SET content = ? WHERE id = ?", ("tok " * written, answer.id))
                await conn.execute("INSERT INTO settings (key, value) VALUES ('n', ?) ON CONFLICT (key) DO UPDATE"
                                   " SET value = excluded.value", (str(written),))
            await asyncio.sleep(0.003)

    writer = asyncio.create_task(stream())
    try:
        snapshots = []
        for _ in range(3):
            before = written
            data = await asyncio.to_thread(backup_bytes, settings)
            assert written > before, "the answer did not stream while the backup was written"
            snapshots.append(members(data)["gridless.db"])
    finally:
        stop.set()
        await writer
        await db.close()
    counters = []
    for n, body in enumerate(snapshots):
        path = tmp_path / f"snapshot-{n}.db"
        path.write_bytes(body)
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        content = conn.execute("SELECT content FROM messages WHERE id = ?", (answer.id,)).fetchone()[0]
        row = conn.execute("SELECT value FROM settings WHERE key = 'n'").fetchone()
        counter = int(row[0]) if row else 0  # a copy made before the first write
        conn.close()
        assert content == "tok " * counter  # never the answer of one write with the counter of another
        counters.append(counter)
    assert counters == sorted(counters) and counters[-1] > 0


def test_nothing_to_back_up_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AppError) as caught:
        backup_bytes(settings_in(tmp_path))
    assert caught.value.code == ErrorCode.NOT_FOUND and "no gridless data" in caught.value.message


async def test_files_deleted_while_listed_are_left_out_and_partial_files_never_go_in(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await populate(settings, tag="x", model=False)
    (settings.media_dir / "images" / ".being-written.png.part").write_bytes(b"half")
    data = await asyncio.to_thread(backup_bytes, settings)
    assert not any(".part" in name for name in members(data))
    restored = settings_in(tmp_path / "restored")
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), restored)
    await asyncio.to_thread(apply_staged, staged, restored)
    assert state(restored)["media"] == {k: v for k, v in tree(settings.media_dir).items() if ".part" not in k}
    shutil.rmtree(tmp_path / "restored")


async def test_a_backup_from_an_older_gridless_is_restored_and_brought_up_to_date(tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    conn = sqlite3.connect(older)
    for version, script in enumerate(MIGRATIONS[:-1], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={version};\nCOMMIT;")
    conn.execute("INSERT INTO settings (key, value) VALUES ('from', '\"an older gridless\"')")
    conn.commit()
    conn.close()
    target = settings_in(tmp_path / "target")
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(archive([member("gridless.db", older.read_bytes())])),
                                     target)
    await asyncio.to_thread(apply_staged, staged, target)
    db = Database(target.db_path)
    await db.open()  # the migrations the older gridless lacked run now
    try:
        row = await db.fetch_one("PRAGMA user_version")
        assert row is not None and row[0] == len(MIGRATIONS)
        setting = await db.fetch_one("SELECT value FROM settings WHERE key = 'from'")
        assert setting is not None and json.loads(setting[0]) == "an older gridless"
    finally:
        await db.close()
