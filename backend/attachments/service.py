"""Attachments from upload to the model: stored once, read by every later turn.

`accept` streams an upload into the media folder under a byte cap, then decides from the
bytes what it is. A picture is prepared (`images.prepare_image`: upright, bounded, no
metadata) and stored with a thumbnail; the upload itself is not kept, so neither is the GPS
position in it. Anything else must be a document (`documents.extract`): the file is kept as
it came, with its text in the row. A refused file leaves nothing behind.

`for_model` fixes, when a message is sent, how much of each document the model reads (cut
to a share of its context with a notice for the person), so that every later turn gives the
model the same text: its evaluation is then reused instead of read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from ..core import kinds
from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.thumbnails import jpeg_thumbnail
from ..storage.attachments import Attachment, AttachmentStore
from ..storage.media import MediaStore, MediaTooLarge
from . import documents
from .images import prepare_image

__all__ = ["MEDIA_KIND", "AttachmentService"]

log = logging.getLogger(__name__)

MEDIA_KIND = "attachments"
THUMB_SIDE = 320
PENDING_TTL_S = 24 * 3600
"""An attachment never sent is forgotten after a day (the page that held it is long gone)."""
_MIMES = {"pdf": "application/pdf", "markdown": "text/markdown", "json": "application/json"}
_TABLE_MIMES = {".tsv": "text/tab-separated-values", ".tab": "text/tab-separated-values"}


class AttachmentService:
    def __init__(self, settings: Settings, store: AttachmentStore, media: MediaStore) -> None:
        self.settings = settings
        self.store = store
        self.media = media

    @property
    def max_bytes(self) -> int:
        return self.settings.max_attachment_mb * 1024 * 1024

    async def accept(self, chunks: AsyncIterator[bytes], *, name: str, uploader: str) -> Attachment:
        """Store an upload as a pending attachment of `uploader`; raises AppError."""
        upload = self.media.new_name(MEDIA_KIND, "upload")
        try:
            size = await self.media.write_stream(chunks, upload, self.max_bytes)
        except MediaTooLarge:
            raise AppError(ErrorCode.FILE_TOO_LARGE, f"The file is larger than the limit of "
                                                     f"{self.settings.max_attachment_mb} MB.") from None
        try:
            path = self.media.path(upload)
            head = await asyncio.to_thread(_head, path)
            kind = kinds.identify(head)
            if kind is not None and (kind.image or kind is kinds.SVG):
                return await self._image(upload, name, uploader)
            return await self._document(upload, name, uploader, size)
        except BaseException:
            self.media.delete(upload)
            raise

    async def _image(self, upload: str, name: str, uploader: str) -> Attachment:
        prepared = await asyncio.to_thread(prepare_image, self.media.path(upload), max_bytes=self.max_bytes)
        thumb_data = await asyncio.to_thread(jpeg_thumbnail, prepared.data, THUMB_SIDE, 80)
        path = self.media.new_name(MEDIA_KIND, prepared.extension)
        thumb = self.media.new_name(MEDIA_KIND, "jpg")
        try:
            await self.media.write_bytes(path, prepared.data)
            await self.media.write_bytes(thumb, thumb_data)
            self.media.delete(upload)
            return await self.store.add(Attachment(
                uploader=uploader, kind="image", name=_display_name(name, f"photo.{prepared.extension}"),
                mime=prepared.mime, path=path, thumb=thumb, bytes=len(prepared.data), width=prepared.width,
                height=prepared.height, info={"source_format": prepared.source_format,
                                              "original_width": prepared.original_width,
                                              "original_height": prepared.original_height}))
        except BaseException:
            self.media.delete(path)
            self.media.delete(thumb)
            raise

    async def _document(self, upload: str, name: str, uploader: str, size: int) -> Attachment:
        display = _display_name(name, "document.txt")
        extracted = await asyncio.to_thread(documents.extract, self.media.path(upload), display,
                                            max_bytes=self.max_bytes)
        extension, mime = _file_type(extracted, display)
        path = self.media.new_name(MEDIA_KIND, extension)
        await self.media.move(upload, path)
        try:
            info = {key: value for key, value in (
                ("kind", extracted.kind), ("pages", extracted.pages), ("pages_read", extracted.pages_read),
                ("rows", extracted.rows), ("columns", extracted.columns), ("preview", extracted.preview),
                ("encoding", extracted.encoding), ("language", extracted.language),
                ("notice", extracted.notice), ("total_chars", extracted.total_chars)) if value is not None}
            return await self.store.add(Attachment(uploader=uploader, kind="document", name=extracted.name,
                                                   mime=mime, path=path, bytes=size, text=extracted.text,
                                                   info=info))
        except BaseException:
            self.media.delete(path)
            raise

    async def discard(self, attachment_id: str, uploader: str) -> bool:
        """Remove an attachment that was not sent (only its uploader may)."""
        found = await self.store.delete_pending(attachment_id, uploader)
        if found is None:
            return False
        self.delete_files([found.path, found.thumb] if found.thumb else [found.path])
        return True

    @staticmethod
    def fitted(attachment: Attachment, budget_chars: int) -> Attachment:
        """A document with what the model reads of it fixed: its text cut to `budget_chars`."""
        if attachment.kind == "document":
            extracted = documents.Extracted(
                kind=attachment.info.get("kind", "text"), name=attachment.name, text=attachment.text,
                chars=len(attachment.text), pages=attachment.info.get("pages"),
                rows=attachment.info.get("rows"), total_chars=attachment.info.get("total_chars", 0))
            attachment.sent_text, attachment.sent_notice = documents.fit(extracted, budget_chars)
        return attachment

    async def image_bytes(self, attachments: list[Attachment]) -> list[bytes]:
        return await asyncio.to_thread(lambda: [self.media.path(a.path).read_bytes() for a in attachments])

    def delete_files(self, paths: list[str]) -> None:
        for path in paths:
            self.media.delete(path)

    async def sweep(self) -> int:
        """Forget pending attachments nobody sent and remove files no row refers to (a crash
        between deleting a message and its files, or during an upload); returns the files
        removed. Run at start, before any upload."""
        expired = await self.store.expire_pending(time.time() - PENDING_TTL_S)
        known = await self.store.all_files()
        orphans = list(dict.fromkeys([p for p in self.media.files(MEDIA_KIND) if p not in known] + expired
                                     + self.media.files(MEDIA_KIND, partial=True)))
        self.delete_files(orphans)
        if orphans:
            log.info("removed %d attachment files no message refers to", len(orphans))
        return len(orphans)


def _head(path: object) -> bytes:
    with open(path, "rb") as file:  # type: ignore[call-overload]
        return bytes(file.read(kinds.HEAD_BYTES))


def _display_name(name: str, default: str) -> str:
    """The file's own name (no folders, no control characters, at most 200 characters), for display."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:200] or default


def _file_type(extracted: documents.Extracted, name: str) -> tuple[str, str]:
    """The stored file's extension and the type it is served as."""
    suffix = PurePosixPath(name).suffix.lower()
    own = suffix[1:] if 1 < len(suffix) <= 9 and suffix[1:].isalnum() else ""
    if extracted.kind == "pdf":
        return "pdf", _MIMES["pdf"]
    charset = f"; charset={extracted.encoding}" if extracted.encoding else ""
    if extracted.kind == "table":
        return own or "csv", _TABLE_MIMES.get(suffix, "text/csv") + charset
    if extracted.kind in _MIMES:
        return own or ("md" if extracted.kind == "markdown" else "json"), _MIMES[extracted.kind] + charset
    return own or "txt", "text/plain" + charset
