"""The Share page (which network, secure mode, and what stops sharing) and the Devices page."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import psutil
import pytest
from nicegui import ui
from nicegui.testing import User

from backend.security import interfaces
from backend.security.devices import DeviceStore
from backend.services import Services

from ..finders import (
    by_testid,
    click,
    dialog,
    find_testid,
    inside,
    no_dialog,
    notified,
    press,
    sees,
    shown,
    text_of,
    wait_for,
)


def network(monkeypatch: pytest.MonkeyPatch, addresses: dict[str, str]) -> None:
    """This device's interfaces as the system reports them: loopback plus `addresses` (name →
    IPv4), all up, and no other route out (what a phone says with Wi-Fi and hotspot off)."""
    reported = {name: [SimpleNamespace(family=socket.AF_INET, address=address, netmask="255.255.255.0")]
                for name, address in {"lo": "127.0.0.1", **addresses}.items()}
    up = SimpleNamespace(isup=True)
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: reported)
    monkeypatch.setattr(psutil, "net_if_stats", lambda: dict.fromkeys(reported, up))
    monkeypatch.setattr(interfaces, "_default_route_address", lambda: None)


async def test_without_a_network_address_the_page_says_so(owner: User, monkeypatch: pytest.MonkeyPatch) -> None:
    network(monkeypatch, {})
    await owner.open("/sharing")
    assert "no network address" in (await shown(owner, "share-no-network", ui.label)).text
    assert not by_testid(owner, "share-start")


async def test_the_hotspot_is_offered_first(owner: User, monkeypatch: pytest.MonkeyPatch) -> None:
    network(monkeypatch, {"eth0": "10.0.0.5", "wlan0": "192.168.1.23", "ap0": "192.168.43.1"})
    await owner.open("/sharing")
    choice = await shown(owner, "share-interface", ui.select)
    assert choice.value == "192.168.43.1"
    assert list(choice.options.values()) == ["Hotspot · ap0 · 192.168.43.1", "Wi-Fi · wlan0 · 192.168.1.23",  # type: ignore[union-attr]
                                             "Ethernet · eth0 · 10.0.0.5"]
    assert find_testid(owner, "share-port", ui.number).value == 8765
    assert not by_testid(owner, "share-no-network")


async def test_secure_mode_needs_a_private_address(owner: User, services: Services,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    network(monkeypatch, {"eth0": "203.0.113.7"})
    await owner.open("/sharing")
    (await shown(owner, "share-secure", ui.switch)).value = True
    click(owner, find_testid(owner, "share-start"))
    await wait_for(owner, lambda: by_testid(owner, "share-error"), "the reason")
    assert text_of(owner, "share-error") == "Secure mode works on private network addresses only (like 192.168.x.x)."
    assert services.share().state is None


async def test_an_address_it_cannot_listen_on_is_reported(owner: User, services: Services,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The system lists the hotspot's address but refuses to listen on it (it is not really
    this machine's): the page shows the service's reason and stays ready to try again."""
    network(monkeypatch, {"ap0": "192.168.43.1"})
    await owner.open("/sharing")
    click(owner, await shown(owner, "share-start"))
    await wait_for(owner, lambda: by_testid(owner, "share-error"), "the reason")
    assert text_of(owner, "share-error").startswith("Cannot listen on 192.168.43.1:8765")
    assert services.share().state is None
    assert by_testid(owner, "share-start")


async def test_devices_page_without_devices(owner: User) -> None:
    await owner.open("/devices")
    assert (await shown(owner, "devices-empty", ui.label)).text == "No paired devices."


async def test_paired_devices_are_listed_and_one_is_revoked(owner: User, services: Services) -> None:
    tablet, tablet_token = await services.devices.add("Kitchen tablet", "192.168.43.20")
    _, laptop_token = await services.devices.add("Laptop", "192.168.43.21")
    await owner.open("/devices")
    await wait_for(owner, lambda: len(device_cards(owner)) == 2, "two devices")
    listed = {text_of_in(owner, card, "device-name"): text_of_in(owner, card, "device-seen")
             for card in device_cards(owner)}
    today = time.strftime("%Y-%m-%d")
    assert listed == {"Kitchen tablet": f"192.168.43.20 · last seen just now · paired {today}",
                     "Laptop": f"192.168.43.21 · last seen just now · paired {today}"}

    click(owner, find_testid(owner, f"revoke-{tablet.id}"))
    asked = await dialog(owner, "Revoke “Kitchen tablet”?")
    press(owner, asked, "Cancel")
    await no_dialog(owner, "Revoke “Kitchen tablet”?")
    assert services.devices.get(tablet.id) is not None

    click(owner, find_testid(owner, f"revoke-{tablet.id}"))
    click(owner, find_testid(owner, "confirm-ok", within=await dialog(owner, "Revoke “Kitchen tablet”?")))
    await notified(owner, "Kitchen tablet can no longer connect")
    await wait_for(owner, lambda: len(device_cards(owner)) == 1, "the revoked device to leave the list")
    assert device_names(owner) == ["Laptop"]
    assert services.devices.authenticate(tablet_token) is None
    assert services.devices.authenticate(laptop_token) is not None


async def test_a_device_is_renamed(owner: User, services: Services) -> None:
    tablet, _ = await services.devices.add("Galaxy Tab", "192.168.43.20")
    await owner.open("/devices")
    await wait_for(owner, lambda: len(device_cards(owner)) == 1, "the device")
    [card] = device_cards(owner)
    [rename] = [b for b in inside(owner, card, ui.button) if b.props.get("aria-label") == "Rename"]
    click(owner, rename)
    asked = await dialog(owner, "Galaxy Tab")
    inside(owner, asked, ui.input, "Name")[0].value = "Anna's tablet"
    press(owner, asked, "Save")
    await wait_for(owner, lambda: device_names(owner) == ["Anna's tablet"], "the new name")
    renamed = services.devices.get(tablet.id)
    assert renamed is not None and renamed.name == "Anna's tablet"


async def test_a_paired_device_gets_the_chats_but_not_the_phones_settings(user: User, services: Services) -> None:
    _, token = await services.devices.add("Kitchen tablet", "127.0.0.1")
    user.http_client.cookies.set(DeviceStore.COOKIE, token)
    await user.open("/")
    await sees(user, "Ask anything. It stays on this device.")  # the page is complete
    assert by_testid(user, "nav-transcripts") and by_testid(user, "nav-images")
    assert not [t for t in ("nav-models", "nav-sharing", "nav-devices", "sharing-on") if by_testid(user, t)]
    for page in ("/devices", "/sharing", "/models"):
        with pytest.raises(AssertionError, match="403"):
            await user.open(page)


def device_cards(user: User) -> list[ui.card]:
    return [c for c in inside(user, None, ui.card) if str(c.props.get("data-testid", "")).startswith("device-")]


def device_names(user: User) -> list[str]:
    return [text_of_in(user, card, "device-name") for card in device_cards(user)]


def text_of_in(user: User, container: ui.element, testid: str) -> str:
    return find_testid(user, testid, ui.label, within=container).text
