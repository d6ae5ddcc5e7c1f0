"""Other networks on this machine, made with `ip netns`.

`NoNetwork` is a namespace with nothing but its own loopback, as a phone in airplane mode:
programs run in it with `command(...)` reach each other on 127.0.0.1 and nothing else.

`SecondHost` is a namespace joined to ours by a veth pair, a tablet on the same network: it
makes `<name>` with HOST_ADDRESS on our side and PEER_ADDRESS inside; code that must run "on
the tablet" runs in `host.run(fn)`, a thread that has entered the namespace (sockets belong
to the namespace of the thread that makes them), and programs run under `ip netns exec`.
Nothing is routed anywhere else: the pair is a private /30.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["NoNetwork", "SecondHost", "netns_available"]

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _kill_inside(name: str) -> None:
    """Deleting a namespace leaves its processes running: whatever is still in it goes first."""
    for pid in _ip("netns", "pids", name, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def netns_available() -> bool:
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = f"glprobe{os.getpid()}"
    ok = _ip("netns", "add", probe, check=False).returncode == 0
    _ip("netns", "del", probe, check=False)
    return ok


class NoNetwork:
    def __init__(self, index: int = 0) -> None:
        self.name = f"glo{os.getpid() % 10000}x{index}"

    def __enter__(self) -> NoNetwork:
        _ip("netns", "del", self.name, check=False)
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        _kill_inside(self.name)
        _ip("netns", "del", self.name, check=False)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


class SecondHost:
    def __init__(self, index: int = 0) -> None:
        suffix = f"{os.getpid() % 10000}x{index}"
        self.name = f"gl{suffix}"
        self.veth = f"glh{suffix}"
        third = 100 + (os.getpid() + index) % 150
        self.host_address = f"10.231.{third}.1"
        self.peer_address = f"10.231.{third}.2"
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __enter__(self) -> SecondHost:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self) -> None:
        self.destroy()
        _ip("netns", "add", self.name)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("-n", self.name, "addr", "add", f"{self.peer_address}/30", "dev", "eth0")
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        # under the pair's own route: once the veth is gone (`host_side_down`), nothing meant for the
        # peer leaves by the default route
        _ip("route", "add", "blackhole", self.network, "metric", "4242")

    @property
    def network(self) -> str:
        return self.host_address.rsplit(".", 1)[0] + ".0/30"

    def destroy(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        _kill_inside(self.name)  # deleting a namespace leaves its processes running
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.name, check=False)
        _ip("route", "del", "blackhole", self.network, "metric", "4242", check=False)

    def host_side_down(self) -> None:
        """As if the hotspot were turned off: our address disappears."""
        _ip("link", "del", self.veth, check=False)

    def run(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        """Call `fn` in a thread inside the namespace and return its result."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, initializer=self._enter)
        return self._pool.submit(fn).result(timeout)

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
        finally:
            os.close(fd)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def chromium_wrapper(self, folder: Path) -> Path:
        """An executable that starts Chromium inside the namespace (for Playwright's
        `executable_path`; Playwright talks to it over pipes, which cross namespaces)."""
        wrapper = folder / f"chromium-in-{self.name}"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} /usr/bin/chromium "$@"\n')
        wrapper.chmod(0o755)
        return wrapper
