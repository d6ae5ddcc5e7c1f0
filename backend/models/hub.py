"""Talking to the Hugging Face hub (or any server speaking its protocol, set by `HF_ENDPOINT`).

All calls block; callers run them in a thread. Every name that comes back is checked
before anything else uses it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, get_session

from ..core.errors import AppError, ErrorCode
from .gguf_info import quantization_from_name
from .names import UnsafeName, safe_relative_path, safe_repo_id

__all__ = ["HubClient", "HubError", "RemoteFile", "RepoListing"]

# Nothing but the requests the owner asked for: no telemetry, and no fetching of the
# library's agent-detection registry for its User-Agent header.
hf_constants.HF_HUB_DISABLE_TELEMETRY = True
# The app says what went wrong itself; the library's retry warnings would repeat it. (Every
# request it makes stays in the server log, from its HTTP client's own log lines.)
logging.getLogger("huggingface_hub").setLevel(logging.ERROR)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
T = TypeVar("T")


class HubError(AppError):
    """The hub could not answer; the message is for people."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.HUB_UNAVAILABLE) -> None:
        super().__init__(code, message)


@dataclass(kw_only=True, slots=True, frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None
    """For files kept in LFS (all model weights)."""
    git_sha1: str | None = None
    """For small files kept in git: the blob id, sha1 of `blob <size>\\0<content>`."""
    revision: str | None = None
    url: str | None = None

    @property
    def quantization(self) -> str | None:
        return quantization_from_name(self.path)

    @property
    def is_projector(self) -> bool:
        return self.path.rsplit("/", 1)[-1].lower().startswith("mmproj")


@dataclass(kw_only=True, slots=True)
class RepoListing:
    repo: str
    files: list[RemoteFile]
    rejected: list[str]
    """Names in the listing that were not safe to use (never written anywhere)."""

    def gguf_groups(self) -> dict[str, list[RemoteFile]]:
        """Model files by quantization (projectors apart, under 'mmproj')."""
        groups: dict[str, list[RemoteFile]] = {}
        for f in self.files:
            if not f.path.endswith(".gguf"):
                continue
            key = "mmproj" if f.is_projector else (f.quantization or "other")
            groups.setdefault(key, []).append(f)
        return groups

    def projectors(self) -> list[RemoteFile]:
        return [f for f in self.files if f.path.endswith(".gguf") and f.is_projector]


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except GatedRepoError:
        raise HubError(f"{what}: this repository is gated; accept its licence on the hub and log in first") from None
    except RepositoryNotFoundError:
        raise HubError(f"{what}: no such repository on the hub", ErrorCode.NOT_FOUND) from None
    except RevisionNotFoundError:
        raise HubError(f"{what}: no such revision on the hub", ErrorCode.NOT_FOUND) from None
    except EntryNotFoundError:
        raise HubError(f"{what}: no such file in the repository", ErrorCode.NOT_FOUND) from None
    except OfflineModeIsEnabled:
        raise HubError(f"{what}: offline mode is on (HF_HUB_OFFLINE)") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubError(f"{what}: the hub answered with HTTP {status}") from None
    except (httpx2.TransportError, OSError) as exc:
        raise HubError(f"{what}: the hub cannot be reached (no network?): {exc.__class__.__name__}") from None


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None, timeout: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.token = token
        self.timeout = timeout
        self.api = HfApi(endpoint=self.endpoint, token=token)

    def check_reachable(self, what: str) -> None:
        """One quick request, so that being offline is said at once rather than after the
        library's retries (about 20 s) on every listing and search."""
        try:
            get_session().head(f"{self.endpoint or hf_constants.ENDPOINT}/api/models", timeout=min(self.timeout, 5))
        except httpx2.TransportError as exc:
            raise HubError(f"{what}: the hub cannot be reached (no network?)") from exc

    def search(self, query: str, limit: int = 30) -> list[dict[str, Any]]:
        """GGUF model repositories matching `query`, most downloaded first."""
        self.check_reachable("search")
        query = query.strip()[:100]
        models = _call("search", lambda: list(self.api.list_models(
            search=query or None, filter="gguf", sort="downloads", limit=limit)))
        found = []
        for m in models:
            try:
                repo = safe_repo_id(m.id)
            except UnsafeName:
                continue
            found.append({"repo": repo, "downloads": getattr(m, "downloads", None) or 0,
                          "likes": getattr(m, "likes", None) or 0,
                          "updated": m.last_modified.isoformat() if m.last_modified is not None else None})
        return found

    def listing(self, repo: str, revision: str | None = None) -> RepoListing:
        repo = safe_repo_id(repo)
        self.check_reachable(repo)
        entries = _call(repo, lambda: list(self.api.list_repo_tree(repo, recursive=True, revision=revision)))
        files: list[RemoteFile] = []
        rejected: list[str] = []
        for entry in entries:
            if not isinstance(entry, RepoFile):
                continue
            try:
                path = safe_relative_path(entry.path)
            except UnsafeName:
                rejected.append(entry.path)
                continue
            lfs = entry.lfs
            files.append(RemoteFile(path=path, size=int(entry.size),
                                    sha256=lfs.sha256 if lfs is not None else None,
                                    git_sha1=entry.blob_id if lfs is None else None, revision=revision))
        return RepoListing(repo=repo, files=files, rejected=rejected)

    def file(self, repo: str, path: str, revision: str | None = None) -> RemoteFile:
        """Exact size, checksum, commit and download address of one file."""
        repo, path = safe_repo_id(repo), safe_relative_path(path)
        url = hf_hub_url(repo, path, revision=revision, endpoint=self.endpoint)
        meta = _call(f"{repo}/{path}", lambda: get_hf_file_metadata(url, token=self.token, timeout=self.timeout))
        etag = (meta.etag or "").strip('"').lower()
        if meta.size is None:
            raise HubError(f"{repo}/{path}: the hub did not say how large the file is")
        return RemoteFile(path=path, size=int(meta.size), sha256=etag if _SHA256.match(etag) else None,
                          git_sha1=etag if _SHA1.match(etag) else None, revision=meta.commit_hash,
                          url=hf_hub_url(repo, path, revision=meta.commit_hash or revision, endpoint=self.endpoint))

    def fetch_start(self, remote: RemoteFile, dest: Path, nbytes: int) -> int:
        """Make `dest` hold the first `nbytes` of a file, asking (with a Range request) only
        for what it does not have yet; returns its size."""
        if remote.url is None:
            raise HubError(f"{remote.path}: no download address")
        have = dest.stat().st_size if dest.exists() else 0
        if have >= nbytes:
            return have
        headers = build_hf_headers(token=self.token) | {"Range": f"bytes={have}-{nbytes - 1}"}

        def fetch() -> int:
            written = have
            with get_session().stream("GET", remote.url or "", headers=headers, follow_redirects=True,
                                      timeout=self.timeout) as response, dest.open("ab") as fh:
                response.raise_for_status()
                if response.status_code == 200:  # the server ignored Range: start over
                    fh.truncate(0)
                    written = 0
                for chunk in response.iter_bytes(256 * 1024):
                    chunk = chunk[: nbytes - written]
                    fh.write(chunk)
                    written += len(chunk)
                    if written >= nbytes:
                        break
            return written

        try:
            return fetch()
        except httpx2.HTTPStatusError as exc:
            raise HubError(f"{remote.path}: the hub answered HTTP {exc.response.status_code}") from None
        except (httpx2.TransportError, OSError) as exc:
            raise HubError(f"{remote.path}: the hub cannot be reached (no network?): "
                           f"{exc.__class__.__name__}") from None
