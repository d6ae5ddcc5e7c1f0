"""This device's network addresses a tablet could reach, best guess first.

A phone sharing its hotspot is the usual case (Android names that interface `ap0`,
`swlan0` or `softap0` and gives itself 192.168.43.1 or similar; an iPhone uses
172.20.10.1); next a Wi-Fi network both devices joined; then anything else that is up.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal

__all__ = ["NetworkInterface", "lan_interfaces", "preselect"]

Kind = Literal["hotspot", "wifi", "ethernet", "other"]
ORDER: dict[str, int] = {"hotspot": 0, "wifi": 1, "ethernet": 2, "other": 3}
LABELS = {"hotspot": "Hotspot", "wifi": "Wi-Fi", "ethernet": "Ethernet", "other": "Network"}
HOTSPOT_NAMES = ("ap", "swlan", "softap", "wlan1", "rndis", "bridge", "wifi_ap", "uap")
WIFI_NAMES = ("wlan", "wl", "wifi")
ETHERNET_NAMES = ("eth", "en", "usb")
HOTSPOT_ADDRESSES = {"192.168.43.1", "172.20.10.1", "192.168.49.1"}


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    name: str
    address: str
    kind: Kind

    @property
    def label(self) -> str:
        return f"{LABELS[self.kind]} · {self.name} · {self.address}"


def classify(name: str, address: str) -> Kind:
    lowered = name.lower()
    if address in HOTSPOT_ADDRESSES or lowered.startswith(HOTSPOT_NAMES):
        return "hotspot"
    if lowered.startswith(WIFI_NAMES):
        return "wifi"
    if lowered.startswith(ETHERNET_NAMES):
        return "ethernet"
    return "other"


def lan_interfaces() -> list[NetworkInterface]:
    """IPv4 addresses of interfaces that are up, loopback excluded, best first."""
    import psutil

    found: list[NetworkInterface] = []
    try:
        addrs = psutil.net_if_addrs()
        stats = psutil.net_if_stats()
    except (OSError, PermissionError):  # Android may refuse to list interfaces to apps
        addrs, stats = {}, {}
    for name, entries in addrs.items():
        if name in stats and not stats[name].isup:
            continue
        for entry in entries:
            if entry.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(entry.address)
            if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
                continue
            found.append(NetworkInterface(name, entry.address, classify(name, entry.address)))
    if not found and (address := _default_route_address()):
        found.append(NetworkInterface("default", address, "other"))
    return sorted(found, key=lambda i: (ORDER[i.kind], i.name, i.address))


def preselect(interfaces: list[NetworkInterface], remembered: str | None = None) -> NetworkInterface | None:
    """The address used last time if it is still here, else the best guess."""
    for interface in interfaces:
        if interface.address == remembered:
            return interface
    return interfaces[0] if interfaces else None


def _default_route_address() -> str | None:
    """The address the system would send from; connecting a UDP socket sends no packet."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith(("127.", "0.")) else address
