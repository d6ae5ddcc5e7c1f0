"""Reading a backup archive as a stream into staging folders, refusing at its header every member
that has no business in a backup, before a byte of it is written.

A member is refused when its name is unsafe (absolute, `..`, hidden or empty parts, backslashes) or
has no place in the layout, when it is anything but a plain file (links, devices, FIFOs, folders,
sparse files), when it repeats a name, or when the sizes declared so far pass the free space (less a
margin) or the hard cap. A tar cannot expand like a compressed "bomb", except through its headers
and sparse files: an extended or long-name header over 1 MB and a sparse file are refused as tarfile
parses their 512-byte block, before it acts on them. Each file is hashed as it is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes
from .backup_format import MAX_MANIFEST_BYTES, MAX_MEMBERS, MODELS_DIR, Manifest, ManifestError, member_kind

__all__ = ["FREE_SPACE_MARGIN", "ArchiveReader", "Budget", "free_bytes", "refused", "shown"]

CHUNK = 1024 * 1024
FREE_SPACE_MARGIN = 100 * 1000 * 1000
"""Left free after a restore's files are written, so the device stays usable."""
MAX_HEADER_BYTES = 1024 * 1024
"""Largest extended (pax) or long-name header read: tarfile reads one whole into memory."""
_HEADER_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                 tarfile.GNUTYPE_LONGLINK}
_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
          tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a named pipe", tarfile.DIRTYPE: "a folder entry",
          tarfile.GNUTYPE_SPARSE: "a sparse file", tarfile.CONTTYPE: "a contiguous file"}


def refused(message: str) -> AppError:
    return AppError(ErrorCode.BAD_REQUEST, message)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class Budget:
    """The sizes the archive declares, held against the free space of each file system it writes to
    and against the hard cap, before a byte of the member is read."""

    def __init__(self, data_dir: Path, model_folder: Path, cap: int) -> None:
        existing = next(p for p in (model_folder, *model_folder.parents) if p.exists())
        self.devices = {"data": os.stat(data_dir).st_dev, "model": os.stat(existing).st_dev}
        self.free = {self.devices["data"]: free_bytes(data_dir) - FREE_SPACE_MARGIN}
        self.free.setdefault(self.devices["model"], free_bytes(existing) - FREE_SPACE_MARGIN)
        self.used = dict.fromkeys(self.free, 0)
        self.cap = cap
        self.total = 0

    def take(self, kind: str, size: int) -> None:
        self.total += size
        if self.total > self.cap:
            raise refused(f"The backup declares more than {format_bytes(self.cap)} of files, more than a restore "
                          "takes.")
        device = self.devices["model" if kind == "model" else "data"]
        self.used[device] += size
        if self.used[device] > self.free[device]:
            raise refused(f"There is not enough free space to restore this backup: it needs more than "
                          f"{format_bytes(self.used[device])}, and {format_bytes(max(0, self.free[device]))} are "
                          f"free (keeping {format_bytes(FREE_SPACE_MARGIN)} for the device).")


class _Refused(Exception):
    """A header refused while tarfile reads it."""


class _CheckedInfo(tarfile.TarInfo):
    """Refuses, as its 512-byte block is parsed and before tarfile acts on it, an extended or long-name
    header larger than MAX_HEADER_BYTES (tarfile would read all of it into memory) and a sparse file
    (whose map tarfile would follow block after block)."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _CheckedInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _HEADER_TYPES and info.size > MAX_HEADER_BYTES:
            raise _Refused(f"The backup has a header of {format_bytes(info.size)}; it is not a gridless backup.")
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise _Refused(f"The backup holds {shown(info.name)}, a sparse file: a backup holds only plain files.")
        return info


def shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


class _Prefixed:
    """A stream whose first bytes were already read to recognise the file."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = (self._head, b"") if size < 0 or size >= len(self._head) else \
                (self._head[:size], self._head[size:])
            return head
        return self._rest.read(size)


def _read_head(source: BinaryIO) -> bytes:
    head = b""
    while len(head) < tarfile.BLOCKSIZE:
        piece = source.read(tarfile.BLOCKSIZE - len(head))
        if not piece:
            break
        head += piece
    if not head:
        raise refused("The file is empty; it is not a gridless backup.")
    if head.startswith(b"\x1f\x8b"):
        raise refused("This file is compressed with gzip: it is not a gridless backup (a backup is the .tar file "
                      "gridless makes, as it made it).")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise refused("This is a zip file, not a gridless backup.")
    if len(head) < tarfile.BLOCKSIZE or head[257:262] != b"ustar":
        raise refused("This file is not a gridless backup (it is not a tar archive).")
    return head


class ArchiveReader:
    def __init__(self, staging: Path, models_staging: Path, budget: Budget) -> None:
        self.staging = staging
        self.models_staging = models_staging
        self.budget = budget
        self.staged: dict[str, tuple[int, str]] = {}
        """Each member written: its size and sha256."""
        self.names: set[str] = set()
        self.outside: str | None = None
        """The first member that has no place in this format's layout (a newer format's?)."""

    def read(self, source: BinaryIO) -> tuple[Manifest, dict[str, tuple[int, str]]]:
        head = _read_head(source)
        manifest: bytes | None = None
        try:
            tar = tarfile.open(fileobj=_Prefixed(head, source), mode="r|", bufsize=CHUNK,  # type: ignore[call-overload]
                               tarinfo=_CheckedInfo)
            while (member := tar.next()) is not None:
                tar.members.clear()  # tarfile keeps every header; a stream needs none of them
                if manifest is not None:
                    raise refused("The backup has files after its list of contents; it is not a gridless backup, or "
                                  "it was altered.")
                data = self._member(tar, member)
                if data is not None:
                    manifest = data
        except _Refused as exc:
            raise refused(str(exc)) from None
        except tarfile.ReadError as exc:
            raise refused(f"The backup file is damaged or incomplete ({exc}).") from None
        if manifest is None:
            if self.outside is not None:
                raise refused(f"The backup holds {shown(self.outside)}, which has no place in gridless's data.")
            raise refused("The backup has no list of contents (gridless-backup.json): it is incomplete, or not a "
                          "gridless backup.")
        try:
            parsed = Manifest.parse(manifest)
        except ManifestError as exc:
            raise refused(f"This backup cannot be restored: {exc}.") from None
        if self.outside is not None:
            raise refused(f"The backup holds {shown(self.outside)}, which has no place in gridless's data.")
        return parsed, self.staged

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
        """Stage one member; returns the manifest's bytes when it is the manifest."""
        name = member.name
        try:
            kind = member_kind(name)
        except ValueError as exc:
            raise refused(f"The backup holds {shown(name)}: {exc}. It is refused.") from None
        if name in self.names:
            raise refused(f"The backup holds {shown(name)} twice; it was altered.")
        self.names.add(name)
        if len(self.names) > MAX_MEMBERS:
            raise refused(f"The backup holds more than {MAX_MEMBERS:,} files, more than a restore takes.")
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.issparse():
            what = "a sparse file" if member.issparse() else _KINDS.get(member.type, "a special entry")
            raise refused(f"The backup holds {shown(name)}, {what}: a backup holds only plain files.")
        if kind == "other":
            self.outside = self.outside or name
            return None
        if kind == "manifest":
            if member.size > MAX_MANIFEST_BYTES:
                raise refused("The backup's list of contents is too large.")
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file
            data = extracted.read()
            if len(data) != member.size:
                raise refused("The backup file is incomplete: it ends in its list of contents.")
            return data
        self.budget.take(kind, member.size)
        if kind == "model":
            target = self.models_staging / name.removeprefix(MODELS_DIR + "/")
        else:
            target = self.staging / name
        self.staged[name] = self._extract(tar, member, target)
        return None

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> tuple[int, str]:
        source = tar.extractfile(member)
        assert source is not None  # a regular file
        sha, size = hashlib.sha256(), 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = target.open("xb")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            # a file where another's folder is, or the same name in another case on a file system that ignores it
            raise refused(f"The backup holds {shown(member.name)}, which clashes with another of its files: it was "
                          "altered.") from None
        with out:
            try:
                while chunk := source.read(CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            except tarfile.ReadError:
                raise refused(f"The backup file is incomplete: it ends in the middle of {shown(member.name)}.") \
                    from None
            out.flush()
            os.fsync(out.fileno())
        return size, sha.hexdigest()
