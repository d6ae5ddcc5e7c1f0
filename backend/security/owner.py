"""The owner's credential: a token printed as a link, exchanged for a cookie.

The cookie value is derived from the token (HMAC), so the token itself never sits in a
cookie and a restart with the same token keeps the owner signed in.
"""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from pathlib import Path

__all__ = ["OwnerCredential", "load_or_create_token"]

TOKEN_FILE = "owner_token"


def load_or_create_token(data_dir: Path, given: str | None) -> str:
    """The token from the settings, else the one saved in the data folder, else a new one."""
    if given:
        return given
    path = data_dir / TOKEN_FILE
    try:
        saved = path.read_text(encoding="ascii").strip()
        if len(saved) >= 16:
            return saved
    except (OSError, UnicodeDecodeError):
        pass
    token = secrets.token_urlsafe(24)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token


class OwnerCredential:
    COOKIE = "gridless_session"

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._session = hmac.new(self._token, b"gridless owner session v1", sha256).hexdigest()

    @property
    def token(self) -> str:
        return self._token.decode()

    @property
    def session_value(self) -> str:
        return self._session

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._token)  # type: ignore[union-attr]

    def session_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._session.encode())  # type: ignore[union-attr]
