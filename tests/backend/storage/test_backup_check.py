"""Every archive a restore must refuse is refused with its own sentence, and leaves the live data
byte for byte as it was (and no staging behind)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.storage import backup_read
from backend.storage.backup import check_and_stage, write_backup
from backend.storage.backup_format import MANIFEST_NAME
from tests.backups import archive, leftovers, manifest_for, member, populate, settings_in, small_database, tree

IMAGE = ("media/images/0123456789abcdef01234567.png", b"\x89PNG picture bytes" * 100)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return small_database(tmp_path_factory.mktemp("db") / "g.db")


@pytest.fixture
def live(tmp_path: Path) -> Settings:
    """A data folder with real data in it, which no refusal may touch."""
    settings = settings_in(tmp_path)
    asyncio.run(populate(settings, tag="live"))
    return settings


def snapshot(settings: Settings) -> dict[str, dict[str, str]]:
    return {"data": tree(settings.data_dir), "models": tree(settings.model_folder)}


def good(database: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [member("gridless.db", database), member(*IMAGE)]


def truncated_database(database: bytes) -> bytes:
    """A database whose last pages are cut off: the header still promises them."""
    return database[: len(database) // 2]


def damaged_database(database: bytes) -> bytes:
    """A database whose second page (a b-tree page) is overwritten with garbage."""
    page = int.from_bytes(database[16:18], "big") or 65536
    return database[:page] + b"\xff\x13" * (page // 2) + database[2 * page:]


CASES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "random bytes": (lambda db: bytes(range(256)) * 8, "not a gridless backup"),
    "empty file": (lambda db: b"", "empty"),
    "gzip": (lambda db: gzip.compress(archive(good(db))), "gzip: it is not a gridless backup"),
    "zip": (lambda db: _zip(db), "zip file, not a gridless backup"),
    "no manifest": (lambda db: archive(good(db), with_manifest=False), "no list of contents"),
    "newer format": (lambda db: archive(good(db), manifest_for(good(db), format_version=2)), "newer gridless"),
    "manifest not json": (lambda db: archive(good(db), b"{not json"), "not JSON"),
    "absolute name": (lambda db: archive([*good(db), member("/etc/cron.d/x", b"x")]), "absolute path"),
    "dot-dot": (lambda db: archive([*good(db), member("media/../../evil", b"x")]), "climbs out"),
    "hidden name": (lambda db: archive([*good(db), member("media/.restore-old/x", b"x")]), "hidden"),
    "outside layout": (lambda db: archive([*good(db), member("notes.txt", b"x")]), "no place in gridless"),
    "symlink": (lambda db: archive([*good(db), member("media/images/a.png", type=tarfile.SYMTYPE,
                                                      linkname="/etc/passwd")]), "symbolic link"),
    "hard link": (lambda db: archive([*good(db), member("media/images/b.png", type=tarfile.LNKTYPE,
                                                        linkname="gridless.db")]), "hard link"),
    "device": (lambda db: archive([*good(db), member("media/images/c", type=tarfile.CHRTYPE)]), "a device"),
    "fifo": (lambda db: archive([*good(db), member("media/images/d", type=tarfile.FIFOTYPE)]), "named pipe"),
    "folder entry": (lambda db: archive([*good(db), member("media/images", type=tarfile.DIRTYPE)]),
                     "folder entry"),
    "sparse": (lambda db: archive([*good(db), member("media/images/e", b"", type=tarfile.GNUTYPE_SPARSE)],
                                  fmt=tarfile.GNU_FORMAT), "sparse file"),
    "duplicate": (lambda db: archive([*good(db), member(*IMAGE)]), "twice"),
    "file and folder": (lambda db: archive([*good(db), member(IMAGE[0] + "/inside.png", b"x")]), "clashes"),
    "size differs": (lambda db: archive(good(db), _edited(good(db), lambda f: f.update(size=f["size"] + 1))),
                     "where the backup's list says"),
    "checksum differs": (lambda db: archive(good(db), _edited(good(db), lambda f: f.update(sha256="0" * 64))),
                         "does not match its checksum"),
    "not listed": (lambda db: archive([*good(db), member("media/images/extra.png", b"x")], manifest_for(good(db))),
                   "does not name"),
    "listed but missing": (lambda db: archive(good(db)[:1], manifest_for(good(db))), "but not in the backup"),
    "no database": (lambda db: archive(good(db)[1:]), "no database"),
    "cut in a member": (lambda db: archive(good(db))[: 512 + len(db) // 2], "incomplete"),
    "cut between members": (lambda db: archive(good(db))[: 512 + len(db)], "no list of contents"),
    "after the manifest": (lambda db: _after_manifest(db), "after its list of contents"),
    "huge extended header": (lambda db: _huge_pax_header(db), "header of"),
    "not a database": (lambda db: archive([member("gridless.db", b"plain text " * 100), member(*IMAGE)]),
                       "not a SQLite database"),
    "damaged database": (lambda db: archive([member("gridless.db", damaged_database(db))]), "damaged"),
    "truncated database": (lambda db: archive([member("gridless.db", truncated_database(db))]), "damaged"),
    "newer schema": (lambda db: archive([member("gridless.db", _with(db, "PRAGMA user_version=999"))]),
                     "newer gridless"),
    "foreign trigger": (lambda db: archive([member("gridless.db", _with(
        db, "CREATE TRIGGER spy AFTER INSERT ON conversations BEGIN DELETE FROM settings; END"))]),
        "not gridless's: it has the trigger 'spy'"),
}


def _zip(db: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("gridless.db", db)
    return out.getvalue()


def _edited(members: list[tuple[tarfile.TarInfo, bytes]], change: Callable[[dict[str, object]], None]) -> bytes:
    manifest = json.loads(manifest_for(members))
    change(manifest["files"][0])
    return json.dumps(manifest).encode()


def _after_manifest(db: bytes) -> bytes:
    data = archive(good(db))
    extra = archive([member("media/images/late.png", b"late")], with_manifest=False)
    return data.rstrip(b"\0") + b"\0" * (-len(data.rstrip(b"\0")) % 512) + extra


def _huge_pax_header(db: bytes) -> bytes:
    info, _ = member("media/images/x.png", b"", type=tarfile.XHDTYPE)
    info.size = 64 * 1024 * 1024  # tarfile would read all of it into memory
    return _prefix(db) + info.tobuf(tarfile.USTAR_FORMAT) + b"a=b\n" * 1000


def _prefix(db: bytes) -> bytes:
    """The first member of an archive, without its end blocks."""
    out = io.BytesIO()
    info, _ = member("gridless.db", db)
    out.write(info.tobuf(tarfile.PAX_FORMAT))
    out.write(db + b"\0" * (-len(db) % 512))
    return out.getvalue()


def _with(db: bytes, sql: str) -> bytes:
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.db"
        path.write_bytes(db)
        conn = sqlite3.connect(path)
        conn.executescript(sql)
        conn.close()
        return path.read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_a_sentence_and_nothing_touched(case: str, live: Settings, database: bytes) -> None:
    make, expected = CASES[case]
    data = make(database)
    before = snapshot(live)
    with pytest.raises(AppError) as caught:
        check_and_stage(io.BytesIO(data), live)
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert expected in caught.value.message, caught.value.message
    assert caught.value.message[0].isupper() and caught.value.message.endswith(".")
    assert snapshot(live) == before
    assert leftovers(live) == []


def test_a_good_hand_made_archive_is_taken(live: Settings, database: bytes) -> None:
    """The cases above differ from this one in the one thing they name."""
    staged = check_and_stage(io.BytesIO(archive(good(database))), live)
    try:
        assert staged.counts["conversations"] == 1 and staged.counts["media_files"] == 1
        assert (staged.media / "images" / IMAGE[0].rsplit("/", 1)[1]).read_bytes() == IMAGE[1]
    finally:
        staged.discard()
    assert leftovers(live) == []


def test_declared_sizes_beyond_free_space_or_the_cap_are_refused_before_writing(
        live: Settings, database: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    big = archive([*good(database), member("media/images/big.bin", b"\0" * 3_000_000)])
    before = snapshot(live)
    monkeypatch.setattr(backup_read, "free_bytes", lambda path: backup_read.FREE_SPACE_MARGIN + 2_000_000)
    with pytest.raises(AppError, match="not enough free space"):
        check_and_stage(io.BytesIO(big), live)
    monkeypatch.undo()
    with pytest.raises(AppError, match="more than a restore takes"):
        check_and_stage(io.BytesIO(big), live, max_bytes=2_000_000)
    assert snapshot(live) == before and leftovers(live) == []


def test_a_second_restore_while_one_is_staged_is_a_conflict(live: Settings, database: bytes) -> None:
    staged = check_and_stage(io.BytesIO(archive(good(database))), live)
    try:
        with pytest.raises(AppError) as caught:
            check_and_stage(io.BytesIO(archive(good(database))), live)
        assert caught.value.code == ErrorCode.CONFLICT
        assert staged.database.is_file()  # the first one's staging is untouched
    finally:
        staged.discard()


def test_a_backup_of_its_own_is_taken_whole(live: Settings, tmp_path: Path) -> None:
    out = io.BytesIO()
    write_backup(out, live, include_models=True)
    target = settings_in(tmp_path / "other")
    staged = check_and_stage(io.BytesIO(out.getvalue()), target)
    try:
        assert staged.manifest.models[0].id == "live-model"
        assert staged.model_members == ["live-model.gguf"]
        assert hashlib.sha256((staged.models_staging / "live-model.gguf").read_bytes()).hexdigest() == \
            hashlib.sha256((live.model_folder / "live-model.gguf").read_bytes()).hexdigest()
        assert MANIFEST_NAME not in {p.name for p in staged.staging.rglob("*")}
    finally:
        staged.discard()
