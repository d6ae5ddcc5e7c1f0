"""The SHA-256 whose state is saved beside a partial download, and resumes that use it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.models import transfer
from backend.models.checksum import Sha256, drop_checkpoint, load_checkpoint, save_checkpoint
from backend.models.downloads import Download
from tests.backend.models.conftest import MODEL_FILE, REPO, Env, wait_for

pytestmark = pytest.mark.skipif(not Sha256.resumable(), reason="OpenSSL's SHA-256 context is not reachable here")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=5000))
def test_a_restored_state_gives_hashlibs_digest(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    first = Sha256()
    first.update(data[:cut])
    state = first.state()
    assert state is not None
    second = Sha256(state)
    second.update(data[cut:])
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    assert first.hexdigest() == hashlib.sha256(data[:cut]).hexdigest()  # digest does not consume the state


def test_checkpoint_round_trip_and_refusals(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    part = tmp_path / "0.part"
    part.write_bytes(data[:200_000])
    hasher = Sha256()
    hasher.update(data[:150_000])
    save_checkpoint(part, 150_000, hasher.state() or b"")
    loaded = load_checkpoint(part, 200_000)
    assert loaded is not None and loaded[0] == 150_000
    loaded[1].update(data[150_000:])
    assert loaded[1].hexdigest() == hashlib.sha256(data).hexdigest()
    assert load_checkpoint(part, 149_999) is None  # describes more than the file holds
    part.with_name("0.part.sha256state").write_text("{not json")
    assert load_checkpoint(part, 200_000) is None
    drop_checkpoint(part)
    assert load_checkpoint(part, 200_000) is None


async def half_done(env: Env, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Download]:
    """A download, throttled, that has saved its checksum state every 1 MB and is half done."""
    monkeypatch.setattr(transfer, "_SYNC_EVERY", 1024 * 1024)
    size = env.hub.repos[REPO].files[MODEL_FILE].size
    env.hub.throttle_bps = size // 2
    dl = await env.manager.pull(REPO, MODEL_FILE)
    async with asyncio.timeout(20):
        while dl.bytes_done < size * 0.5:
            await asyncio.sleep(0.02)
    return size, dl


async def test_resume_reads_back_only_what_follows_the_saved_state(env: Env, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a state saved every 1 MB, a resume of a half-done download reads back less than 1 MB
    (counted by wrapping the hasher), and a damaged saved state is caught by reading it all."""
    size, dl = await half_done(env, monkeypatch)
    read_back: list[tuple[int, int]] = []  # (where the checksum went on from, bytes on disk after that)
    real_hash = transfer.FollowingHasher._hash

    def counting(self: transfer.FollowingHasher) -> None:
        start = self.start_at[0] if self.start_at else 0
        read_back.append((start, self.available - start))
        real_hash(self)

    monkeypatch.setattr(transfer.FollowingHasher, "_hash", counting)  # hashers started from now on
    await env.restart()
    env.hub.throttle_bps = None
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    assert len(read_back) == 1, read_back
    start, reread = read_back[0]
    assert start >= size * 0.3 and reread < 1024 * 1024 + 512 * 1024, read_back
    assert not list((env.settings.model_folder / ".partial").rglob("*.sha256state"))


async def test_a_damaged_saved_state_is_caught(env: Env, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    _, dl = await half_done(env, monkeypatch)
    part_dir = env.settings.model_folder / ".partial" / dl.id

    def damage() -> None:
        checkpoint = next(part_dir.glob("*.sha256state"))
        garbage = Sha256()
        garbage.update(b"not these bytes")
        save_checkpoint(part_dir / checkpoint.name.removesuffix(".sha256state"), 1024 * 1024, garbage.state() or b"")

    await env.restart(between=damage)
    env.hub.throttle_bps = None
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error  # the whole file was read again, and it matched
    assert "checksum from a saved state differs" in caplog.text
    record = env.manager.get(done.model_id or "")
    assert record is not None and hashlib.sha256(record.path.read_bytes()).hexdigest() == record.sha256
