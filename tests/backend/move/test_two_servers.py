"""A whole move between two real servers on this machine: the old one offers, the new one pulls
the conversations and a model over HTTP, leaves out the model it already has, and installs the rest."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.movepair import OLD_TITLE, conversation_titles, seed_old_device, wait_pull
from tests.server import ServerProcess

pytestmark = pytest.mark.slow  # two server processes


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, Path]]]:
    models = seed_old_device(tmp_path / "old")
    new_models = tmp_path / "new" / "models"
    new_models.mkdir(parents=True)
    shutil.copy(models["shared"], new_models / "already-here.gguf")  # same bytes, another name
    with ServerProcess(data_dir=tmp_path / "old") as old, ServerProcess(data_dir=tmp_path / "new") as new:
        yield old, new, models


def offer(old: ServerProcess) -> dict[str, object]:
    response = httpx.post(old.base + "/api/move/offer", headers=old.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_everything_moves_to_the_new_device(devices: tuple[ServerProcess, ServerProcess, dict[str, Path]]) -> None:
    old, new, models = devices
    code = str(offer(old)["code"])
    # the new device types the old one's address (here its loopback listener) and the code
    started = httpx.post(new.base + "/api/move/pull", headers=new.headers(),
                         json={"address": f"127.0.0.1:{old.port}", "code": code})
    assert started.status_code == 200, started.text
    state = wait_pull(new)
    assert state["state"] == "done", state
    files = {f["name"]: f for f in state["files"]}
    assert files["tiny-moved.gguf"]["state"] == "installed"
    assert files["tiny-shared.gguf"]["state"] == "skipped"  # the new device had it under another name
    assert OLD_TITLE in conversation_titles(new)
    listed = {m["id"] for m in httpx.get(new.base + "/v1/models", headers=new.headers()).json()["data"]}
    assert {"tiny-moved", "already-here"} <= listed and "tiny-shared" not in listed
    moved = new.data_dir / "models" / "imported" / "tiny-moved.gguf"
    assert hashlib.sha256(moved.read_bytes()).digest() == hashlib.sha256(models["moved"].read_bytes()).digest()
    assert not (new.data_dir / "move-in").exists()  # nothing left behind
    # the old device saw it through and ended the offer
    assert httpx.get(old.base + "/api/move/offer", headers=old.headers()).json()["state"] == "finished"


def test_a_wrong_code_is_said_so_and_moves_nothing(
        devices: tuple[ServerProcess, ServerProcess, dict[str, Path]]) -> None:
    old, new, _ = devices
    code = str(offer(old)["code"]).replace(" ", "")
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    httpx.post(new.base + "/api/move/pull", headers=new.headers(),
               json={"address": f"127.0.0.1:{old.port}", "code": wrong})
    state = wait_pull(new)
    assert state["state"] == "failed" and state["error_code"] == "invalid_code", state
    assert OLD_TITLE not in conversation_titles(new)


def test_the_move_routes_refuse_without_a_session(
        devices: tuple[ServerProcess, ServerProcess, dict[str, Path]]) -> None:
    old, _, _ = devices
    offer(old)
    assert httpx.get(old.base + "/api/move/manifest").status_code == 401
    assert httpx.get(old.base + "/api/move/files/archive").status_code == 401
    # the owner's controls stay the owner's, and the Host check still applies to the public ones
    assert httpx.post(old.base + "/api/move/offer").status_code == 401
    assert httpx.get(old.base + "/api/move/manifest", headers={"Host": "evil.example"}).status_code == 400
