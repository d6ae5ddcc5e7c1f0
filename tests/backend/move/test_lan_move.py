"""A move across a real network link: the old device runs in its own network namespace (a second
host joined to ours by a veth pair) and shares on its LAN address, the new device on our side
reaches it only over that link, through the LAN listener and its Host check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.movepair import OLD_TITLE, conversation_titles, seed_old_device, wait_pull
from tests.netns import SecondHost, netns_available
from tests.server import ServerProcess

if not netns_available():
    pytest.skip("network namespaces are not available (needs root and `ip netns`)", allow_module_level=True)

pytestmark = pytest.mark.slow  # two server processes


class OldDevice:
    def __init__(self, host: SecondHost, server: ServerProcess) -> None:
        self.host, self.server = host, server

    def owner(self, method: str, path: str) -> Any:
        """The old device's owner, on its own loopback (inside the namespace)."""
        response = self.host.run(lambda: httpx.request(method, self.server.base + path, headers=self.server.headers(),
                                                       timeout=30))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def old(tmp_path: Path) -> Iterator[OldDevice]:
    seed_old_device(tmp_path / "old")
    with SecondHost() as host:
        server = ServerProcess(data_dir=tmp_path / "old", command=[sys.executable, "-m", "backend.cli"])
        host.run(server.start, timeout=60)  # started from a thread in the namespace: the server lives there
        try:
            yield OldDevice(host, server)
        finally:
            server.stop()


@pytest.fixture
def new(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path / "new") as server:
        yield server


def test_the_new_device_pulls_over_the_lan(old: OldDevice, new: ServerProcess) -> None:
    offer = old.owner("POST", "/api/move/offer")
    assert offer["sharing_problem"] is None
    address = offer["address"]
    assert address == f"{old.host.peer_address}:{old.server.port}"  # sharing was turned on for the move
    # from our side the old device's loopback is out of reach: only the LAN address works
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{old.server.port}/healthz", timeout=2)
    started = httpx.post(new.base + "/api/move/pull", headers=new.headers(),
                         json={"address": address, "code": offer["code"]})
    assert started.status_code == 200, started.text
    state = wait_pull(new)
    assert state["state"] == "done", state
    assert {f["name"]: f["state"] for f in state["files"]} == {
        "gridless-move.tar": "installed", "tiny-moved.gguf": "installed", "tiny-shared.gguf": "installed"}
    assert OLD_TITLE in conversation_titles(new)
    finished = old.owner("GET", "/api/move/offer")
    assert finished["state"] == "finished" and finished["puller"] == old.host.host_address


def test_a_guesser_on_the_lan_is_held_back(old: OldDevice) -> None:
    offer = old.owner("POST", "/api/move/offer")
    origin = f"http://{offer['address']}"
    wrong = f"{(int(offer['code'].replace(' ', '')) + 1) % 10 ** 8:08d}"
    answers = [httpx.post(origin + "/api/move/session", json={"code": wrong}).status_code for _ in range(6)]
    assert answers == [403] * 5 + [429]
    # the LAN listener answers only to its own address as Host
    refused = httpx.post(origin + "/api/move/session", json={"code": wrong}, headers={"Host": "evil.example"})
    assert refused.status_code == 400
