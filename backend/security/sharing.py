"""Share on this network: a second listener on one LAN address, started and stopped at run time.

The main server keeps listening on loopback only. Sharing binds the address the owner
picked (never all addresses) and serves the same application, so every request still
passes the security gate, which knows which listener a request arrived on. In secure
mode that listener speaks HTTPS with a certificate from the local CA, and a plain-HTTP
listener on the next port serves only the CA and its install guide (a tablet cannot
open the HTTPS address before it trusts the CA).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from ..core.errors import AppError, ErrorCode
from .certs import LocalCA, ServerCertificate
from .interfaces import lan_interfaces
from .pairing import Pairing

__all__ = ["ShareState", "Sharing", "cannot_share"]

log = logging.getLogger(__name__)

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
WATCH_S = 3.0


def cannot_share(message: str) -> AppError:
    return AppError(ErrorCode.CANNOT_SHARE, message)


@dataclass(frozen=True, slots=True)
class ShareState:
    address: str
    port: int
    secure: bool
    guide_port: int | None
    started_at: float

    @property
    def origin(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}"

    @property
    def guide_url(self) -> str | None:
        """Where a tablet gets the CA, over plain HTTP (secure mode only)."""
        if self.guide_port is None:
            return None
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.guide_port}/ca"


class _Listener:
    """One uvicorn server on an already bound socket, inside the running event loop."""

    def __init__(self, app: ASGIApp, sock: socket.socket, certificate: ServerCertificate | None) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False,
            server_header=False, timeout_graceful_shutdown=2,
            ssl_certfile=str(certificate.cert_file) if certificate else None,
            ssl_keyfile=str(certificate.key_file) if certificate else None)
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self._task = asyncio.create_task(self.server.main_loop())

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.shutdown(sockets=[self.sock])


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise cannot_share(f"Port {port} on {address} is already in use; pick another port.") from exc
        raise cannot_share(f"Cannot listen on {address}:{port}: {exc.strerror or exc}.") from exc
    return sock


class Sharing:
    def __init__(self, app: ASGIApp, guide_app: ASGIApp, certs: LocalCA, pairing: Pairing) -> None:
        self.app = app
        self.guide_app = guide_app
        self.certs = certs
        self.pairing = pairing
        self.state: ShareState | None = None
        self.stopped_reason: str | None = None
        """Why sharing stopped by itself (the address went away), for the owner's page."""
        self._listeners: list[_Listener] = []
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def addresses(self) -> set[str]:
        return {self.state.address} if self.state else set()

    async def start(self, address: str, port: int, secure: bool = False) -> ShareState:
        async with self._lock:
            await self._stop()
            known = {i.address for i in await asyncio.to_thread(lan_interfaces)}
            if address not in known:
                raise cannot_share(f"{address} is not an address of this device's network interfaces.")
            certificate = None
            if secure:
                try:
                    certificate = await asyncio.to_thread(self.certs.server_certificate, address)
                except AppError as exc:
                    raise cannot_share(exc.message) from exc
            listeners = [_Listener(self.app, _bind(address, port), certificate)]
            guide_port = None
            if secure:
                guide_port = port + 1 if port < 65535 else port - 1
                try:
                    listeners.append(_Listener(self.guide_app, _bind(address, guide_port), None))
                except AppError:
                    listeners[0].sock.close()
                    raise
            started: list[_Listener] = []
            try:
                for listener in listeners:
                    await listener.start()
                    started.append(listener)
            except BaseException:
                for listener in started:
                    await listener.stop()
                for listener in listeners[len(started):]:
                    listener.sock.close()
                raise
            self._listeners = listeners
            self.state = ShareState(address, port, secure, guide_port, time.time())
            self.stopped_reason = None
            self.pairing.start()
            self._watch = asyncio.create_task(self._watch_address(address))
            log.warning("sharing on %s", self.state.origin)
            return self.state

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        self._watch = None
        listeners, self._listeners = self._listeners, []
        was = self.state
        self.state = None
        self.pairing.stop()
        for listener in listeners:
            try:
                await listener.stop()
            except Exception:
                log.exception("stopping a listener failed")
        if was is not None:
            log.warning("sharing on %s stopped", was.origin)

    async def _watch_address(self, address: str) -> None:
        """Stop when the address goes away (the hotspot was turned off, Wi-Fi changed)."""
        while True:
            await asyncio.sleep(WATCH_S)
            present = await asyncio.to_thread(lambda: {i.address for i in lan_interfaces()})
            if address not in present:
                async with self._lock:
                    # the reason first: whoever sees sharing off must also see why
                    self.stopped_reason = f"{address} is no longer an address of this device, so sharing " \
                                          "stopped. Share again on the current network."
                    await self._stop()
                return
