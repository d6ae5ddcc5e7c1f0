"""Pairing a tablet: a one-time code from the QR, then the owner's approval.

1. While sharing is on, the owner's screen shows a QR code for `<address>/pair#<code>`.
   The code is random (128 bits), single use and expires in at most five minutes. It
   sits in the URL fragment, which browsers never send, so it reaches no log; the pair
   page posts it in a request body.
2. A valid code opens a request, shown on both screens with the same four digits
   ("Allow Chrome on Android? code 4821"), so the owner approves the tablet in their
   hand and not somebody else who saw the QR code.
3. On approval the device gets its session (see `devices.py`) when it next asks for
   its request's status; the session token is handed over once and then forgotten.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Literal

from ..core.errors import AppError, ErrorCode
from .devices import Device, DeviceStore, clean_device_name
from .ratelimit import FailureLimiter

__all__ = ["Pairing", "PairingRequest"]

CODE_TTL_MAX_S = 300.0
MAX_WAITING = 5
"""Requests waiting for the owner at once; more are refused until the owner answers."""
COLLECT_WITHIN_S = 120.0
"""An approved or denied request is kept this long for its device to learn the answer."""

RequestState = Literal["waiting", "approved", "denied", "expired"]


@dataclass(slots=True)
class PairingRequest:
    id: str
    """Random; the asking browser holds it in an HttpOnly cookie to ask for the answer."""
    confirm: str
    name: str
    address: str
    user_agent: str
    created_at: float
    state: RequestState = "waiting"
    answered_at: float = 0.0


def _digest(code: str) -> bytes:
    return sha256(code.encode("utf-8", "surrogatepass")).digest()


class Pairing:
    def __init__(self, devices: DeviceStore, limiter: FailureLimiter, ttl_s: float = CODE_TTL_MAX_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.devices = devices
        self.limiter = limiter
        self.ttl_s = min(ttl_s, CODE_TTL_MAX_S)
        self.clock = clock
        self.open = False
        """Codes are issued and accepted only while sharing is on."""
        self.version = 0
        """Bumped on every change, so the owner's pages know to redraw."""
        self._code: str | None = None
        self._code_digest: bytes | None = None
        self._code_expires = 0.0
        self._requests: dict[str, PairingRequest] = {}

    # the owner's side

    def start(self) -> None:
        self.open = True
        self._changed()

    def stop(self) -> None:
        """Sharing stopped: the code dies and unanswered requests are dropped."""
        self.open = False
        self._code = self._code_digest = None
        self._requests.clear()
        self._changed()

    def code(self) -> tuple[str, float]:
        """The code for the QR and its remaining seconds; a new one once used or expired."""
        if not self.open:
            raise AppError(ErrorCode.NOT_SHARING, "Sharing is off.")
        now = self.clock()
        if self._code is None or now >= self._code_expires:
            self.new_code()
        assert self._code is not None
        return self._code, self._code_expires - now

    def new_code(self) -> str:
        self._code = secrets.token_urlsafe(16)
        self._code_digest = _digest(self._code)
        self._code_expires = self.clock() + self.ttl_s
        self._changed()
        return self._code

    def waiting(self) -> list[PairingRequest]:
        self._expire()
        return [r for r in self._requests.values() if r.state == "waiting"]

    def approve(self, request_id: str) -> None:
        """The device is added when it collects its session, so an approval nobody
        collects leaves no device behind."""
        request = self._answerable(request_id)
        request.state, request.answered_at = "approved", self.clock()
        self._changed()

    def deny(self, request_id: str) -> None:
        request = self._answerable(request_id)
        request.state, request.answered_at = "denied", self.clock()
        self._changed()

    # the device's side

    def ask(self, code: str, name: str | None, address: str, user_agent: str) -> PairingRequest:
        """A device presents the code from the QR; on success its request waits for the owner."""
        wait = self.limiter.retry_after(address)
        if wait > 0:
            raise AppError(ErrorCode.TOO_MANY_ATTEMPTS,
                           f"Too many wrong codes from this address; try again in {int(wait) + 1} s.", retry_after=wait)
        if not self.open:
            raise AppError(ErrorCode.NOT_SHARING, "Sharing is off on the phone; ask its owner to share again.",
                           status=403)
        self._expire()
        valid = (self._code_digest is not None and self.clock() < self._code_expires
                 and hmac.compare_digest(_digest(code or ""), self._code_digest))
        if not valid:
            self.limiter.failed(address)
            raise AppError(ErrorCode.INVALID_CODE, "This pairing code is not valid: it has expired or was already "
                                                   "used. Scan the QR code on the phone again.")
        if len(self.waiting()) >= MAX_WAITING:
            raise AppError(ErrorCode.TOO_MANY_WAITING,
                           "Several devices are already waiting for approval; try again in a minute.", retry_after=60)
        self._code = self._code_digest = None  # single use: the next QR shows a new code
        request = PairingRequest(id=secrets.token_urlsafe(24), confirm=f"{secrets.randbelow(10000):04d}",
                                 name=clean_device_name(name, "Unnamed device"), address=address[:64],
                                 user_agent=user_agent[:300], created_at=self.clock())
        self._requests[request.id] = request
        self._changed()
        return request

    def status(self, request_id: str | None) -> PairingRequest | None:
        self._expire()
        return self._requests.get(request_id) if request_id else None

    async def collect(self, request_id: str) -> tuple[Device, str] | None:
        """For an approved request: the new device and its session token, handed over once."""
        request = self._requests.get(request_id)
        if request is None or request.state != "approved":
            return None
        del self._requests[request_id]
        device, token = await self.devices.add(request.name, request.address, request.user_agent)
        self._changed()
        return device, token

    # internals

    def _answerable(self, request_id: str) -> PairingRequest:
        self._expire()
        request = self._requests.get(request_id)
        if request is None or request.state != "waiting":
            raise AppError(ErrorCode.UNKNOWN_REQUEST, "That request is no longer waiting (it expired or was "
                                                      "answered).")
        return request

    def _expire(self) -> None:
        now = self.clock()
        for request in list(self._requests.values()):
            if request.state == "waiting" and now - request.created_at > self.ttl_s:
                request.state, request.answered_at = "expired", now
                self._changed()
            elif request.state != "waiting" and now - request.answered_at > COLLECT_WITHIN_S:
                del self._requests[request.id]

    def _changed(self) -> None:
        self.version += 1
