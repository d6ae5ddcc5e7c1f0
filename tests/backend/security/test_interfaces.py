from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from backend.security import interfaces
from backend.security.interfaces import NetworkInterface, classify, lan_interfaces, preselect


def test_classify() -> None:
    assert classify("ap0", "192.168.50.1") == "hotspot"
    assert classify("swlan0", "10.1.1.1") == "hotspot"
    assert classify("softap0", "10.1.1.1") == "hotspot"
    assert classify("rmnet_data0", "192.168.43.1") == "hotspot"  # the address Android gives its hotspot
    assert classify("en0", "172.20.10.1") == "hotspot"  # an iPhone's hotspot
    assert classify("wlan0", "192.168.1.20") == "wifi"
    assert classify("WLAN0", "192.168.1.20") == "wifi"
    assert classify("wlp2s0", "192.168.1.20") == "wifi"
    assert classify("eth0", "192.168.1.20") == "ethernet"
    assert classify("enp3s0", "192.168.1.20") == "ethernet"
    assert classify("tun0", "10.8.0.2") == "other"
    assert classify("rmnet_data0", "100.70.1.2") == "other"


def test_label() -> None:
    assert NetworkInterface("wlan0", "192.168.1.20", "wifi").label == "Wi-Fi · wlan0 · 192.168.1.20"


def test_preselect() -> None:
    hotspot = NetworkInterface("ap0", "192.168.43.1", "hotspot")
    wifi = NetworkInterface("wlan0", "192.168.1.20", "wifi")
    found = [hotspot, wifi]
    assert preselect(found) is hotspot
    assert preselect(found, "192.168.1.20") is wifi  # the address used last time
    assert preselect(found, "10.0.0.9") is hotspot  # remembered, but gone
    assert preselect(found, None) is hotspot
    assert preselect([], "192.168.1.20") is None


def addr(family: int, address: str) -> Any:
    return SimpleNamespace(family=family, address=address, netmask=None, broadcast=None, ptp=None)


def stats(up: bool) -> Any:
    return SimpleNamespace(isup=up, duplex=0, speed=0, mtu=1500, flags="")


@pytest.fixture
def no_default_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interfaces, "_default_route_address", lambda: None)


def fake_psutil(monkeypatch: pytest.MonkeyPatch, addrs: dict[str, list[Any]], up: dict[str, bool]) -> None:
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: addrs)
    monkeypatch.setattr(psutil, "net_if_stats", lambda: {name: stats(u) for name, u in up.items()})


@pytest.mark.usefixtures("no_default_route")
def test_lan_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_psutil(monkeypatch, {
        "lo": [addr(socket.AF_INET, "127.0.0.1"), addr(socket.AF_INET6, "::1")],
        "eth0": [addr(socket.AF_INET, "10.0.0.5"), addr(socket.AF_INET6, "fe80::1")],
        "wlan0": [addr(psutil.AF_LINK, "aa:bb:cc:dd:ee:ff"), addr(socket.AF_INET, "192.168.1.20"),
                  addr(socket.AF_INET6, "fd00::20")],
        "ap0": [addr(socket.AF_INET, "192.168.43.1")],
        "wlan2": [addr(socket.AF_INET, "192.168.5.5")],  # down
        "tun0": [addr(socket.AF_INET6, "fd00::1")],  # IPv6 only
        "docker0": [addr(socket.AF_INET, "172.17.0.1")],  # no stats: kept
        "weird0": [addr(socket.AF_INET, "0.0.0.0"), addr(socket.AF_INET, "224.0.0.1")],
    }, {"lo": True, "eth0": True, "wlan0": True, "ap0": True, "wlan2": False, "tun0": True, "weird0": True})
    found = lan_interfaces()
    assert found == [
        NetworkInterface("ap0", "192.168.43.1", "hotspot"),
        NetworkInterface("wlan0", "192.168.1.20", "wifi"),
        NetworkInterface("eth0", "10.0.0.5", "ethernet"),
        NetworkInterface("docker0", "172.17.0.1", "other"),
    ]
    assert preselect(found, "10.0.0.5") == found[2]


def test_default_route_when_nothing_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> dict[str, Any]:
        raise PermissionError("not allowed")

    monkeypatch.setattr(psutil, "net_if_addrs", refuse)
    monkeypatch.setattr(psutil, "net_if_stats", refuse)
    monkeypatch.setattr(interfaces, "_default_route_address", lambda: "192.168.1.77")
    assert lan_interfaces() == [NetworkInterface("default", "192.168.1.77", "other")]


@pytest.mark.usefixtures("no_default_route")
def test_only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_psutil(monkeypatch, {"lo": [addr(socket.AF_INET, "127.0.0.1")]}, {"lo": True})
    assert lan_interfaces() == []


def test_listed_interfaces_win_over_the_default_route(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_psutil(monkeypatch, {"wlan0": [addr(socket.AF_INET, "192.168.1.20")]}, {"wlan0": True})
    monkeypatch.setattr(interfaces, "_default_route_address", lambda: "10.9.9.9")
    assert lan_interfaces() == [NetworkInterface("wlan0", "192.168.1.20", "wifi")]
