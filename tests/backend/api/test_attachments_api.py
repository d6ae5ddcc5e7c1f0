"""`/api/attachments` through a real server: raw uploads under a 1 MB cap, the row, the file and the
thumbnail with their safety headers, removal of one not sent, and refusals that keep nothing."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.storage.attachments import AttachmentStore
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.documentfiles import pdf_bytes
from tests.imagefiles import png_claiming
from tests.loops import run_alone
from tests.server import ServerProcess

CSP = "sandbox; default-src 'none'"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module, attachments capped at 1 MB; tests leave other tests' files alone."""
    data = tmp_path_factory.mktemp("attachments-api") / "data"
    with ServerProcess(data_dir=data, env={"GRIDLESS_MAX_ATTACHMENT_MB": "1"}) as server:
        yield server


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.base}{path}", headers=server.headers(), timeout=60, **kw)


def upload(server: ServerProcess, body: Any, name: str) -> httpx.Response:
    return api(server, "POST", "/api/attachments", params={"name": name}, content=body)


@dataclass(frozen=True)
class Stored:
    rows: set[str]
    files: set[str]


def stored(server: ServerProcess) -> Stored:
    """Attachment rows and media files (hidden and partial ones included)."""
    media = server.data_dir / "media"
    files = {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()} if media.exists() else set()
    with sqlite3.connect(server.data_dir / "gridless.db") as conn:
        rows = {row[0] for row in conn.execute("SELECT id FROM attachments")}
    return Stored(rows, files)


def jpeg(size: tuple[int, int] = (800, 600)) -> bytes:
    picture = Image.new("RGB", size, "orange")
    picture.paste("navy", (0, 0, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, str] = response.json()["error"]
    assert error["message"]
    return error


def refused(server: ServerProcess, body: Any, name: str, status: int) -> dict[str, str]:
    before = stored(server)
    response = upload(server, body, name)
    assert response.status_code == status, response.text
    assert stored(server) == before
    assert "Traceback" not in server.log()
    return error_of(response)


async def _send(data_dir: Path, attachment_id: str) -> str:
    """Make the attachment part of a sent message, as sending one does; returns the message id."""
    db = Database(data_dir / "gridless.db")
    await db.open()
    try:
        conversations, attachments = ConversationStore(db), AttachmentStore(db)
        conv = await conversations.create(title="sent")
        message = await conversations.add_message(conv.id, "user", "see the file")
        found = await attachments.pending([attachment_id], "owner")
        assert [a.id for a in found] == [attachment_id]
        await attachments.link(message.id, found)
        return message.id
    finally:
        await db.close()


# --- photos ------------------------------------------------------------------------------------

def test_photo_upload_and_its_file_and_thumbnail(srv: ServerProcess) -> None:
    response = upload(srv, jpeg(), "holiday.jpg")
    assert response.status_code == 201, response.text
    body = response.json()
    aid = body["id"]
    assert (body["kind"], body["mime"], body["name"], body["width"], body["height"]) == \
        ("image", "image/jpeg", "holiday.jpg", 800, 600)
    assert body["message_id"] is None and body["sent_notice"] is None and body["chars"] == 0
    assert body["url"] == f"/api/attachments/{aid}/file" and body["thumbnail"] == f"/api/attachments/{aid}/thumb"
    assert body["info"] == {"source_format": "JPEG", "original_width": 800, "original_height": 600}
    assert api(srv, "GET", f"/api/attachments/{aid}").json() == body

    file = api(srv, "GET", body["url"])
    assert file.status_code == 200 and file.headers["content-type"] == "image/jpeg"
    assert file.headers["x-content-type-options"] == "nosniff" and file.headers["content-security-policy"] == CSP
    assert file.headers["content-disposition"] == "inline; filename*=UTF-8''holiday.jpg"
    assert len(file.content) == body["bytes"]
    assert Image.open(io.BytesIO(file.content)).size == (800, 600)

    thumb = api(srv, "GET", body["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["x-content-type-options"] == "nosniff" and thumb.headers["content-security-policy"] == CSP
    small = Image.open(io.BytesIO(thumb.content))
    assert small.format == "JPEG" and small.size == (320, 240)


def test_huge_png_is_refused_from_its_header(srv: ServerProcess) -> None:
    error = refused(srv, png_claiming(20_000, 20_000), "huge.png", 413)
    assert error["code"] == "image_too_large"


def test_broken_photo_is_refused(srv: ServerProcess) -> None:
    data = jpeg()
    error = refused(srv, data[:len(data) // 2], "cut.jpg", 422)
    assert error["code"] == "broken_image"


# --- documents ---------------------------------------------------------------------------------

def test_csv_upload_has_a_preview_and_is_served_as_a_download(srv: ServerProcess) -> None:
    text = "name,city,score\nAlice,Paris,91\nBob,Berlin,78\n"
    response = upload(srv, text.encode(), "people.csv")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["kind"], body["mime"], body["thumbnail"], body["width"]) == \
        ("document", "text/csv; charset=utf-8", None, None)
    assert body["info"]["kind"] == "table" and body["info"]["rows"] == 2
    assert body["info"]["columns"] == ["name", "city", "score"]
    assert body["info"]["preview"] == [["name", "city", "score"], ["Alice", "Paris", "91"], ["Bob", "Berlin", "78"]]
    assert body["chars"] > 0 and "text" not in body

    file = api(srv, "GET", body["url"])
    assert file.status_code == 200 and file.text == text
    assert file.headers["content-type"] == "text/csv; charset=utf-8"
    assert file.headers["content-disposition"] == "attachment; filename*=UTF-8''people.csv"
    assert file.headers["x-content-type-options"] == "nosniff" and file.headers["content-security-policy"] == CSP

    thumb = api(srv, "GET", f"/api/attachments/{body['id']}/thumb")
    assert thumb.status_code == 404 and error_of(thumb)["code"] == "not_found"


def test_html_is_never_served_as_a_page(srv: ServerProcess) -> None:
    page = b"<html><body><script>alert(1)</script></body></html>\n"
    body = upload(srv, page, "page.html").json()
    file = api(srv, "GET", body["url"])
    assert file.content == page and file.headers["content-type"].startswith("text/plain")
    assert file.headers["content-disposition"].startswith("attachment;")
    assert file.headers["content-security-policy"] == CSP


def test_pdf_is_served_inline(srv: ServerProcess) -> None:
    data = pdf_bytes([["First page"], ["Second page"]])
    body = upload(srv, data, "two pages.pdf").json()
    assert body["mime"] == "application/pdf" and body["info"]["pages"] == 2
    file = api(srv, "GET", body["url"])
    assert file.content == data and file.headers["content-type"] == "application/pdf"
    assert file.headers["content-disposition"] == "inline; filename*=UTF-8''two%20pages.pdf"


def test_program_named_like_a_photo_is_refused(srv: ServerProcess) -> None:
    error = refused(srv, b"\x7fELF\x02\x01\x01" + bytes(300), "x.jpg", 415)
    assert error == {"code": "not_a_document", "message": "This is a program, not a document."}


def test_empty_body_is_refused(srv: ServerProcess) -> None:
    error = refused(srv, b"", "nothing.txt", 400)
    assert error["code"] == "empty_document"


# --- the size cap ------------------------------------------------------------------------------

def test_declared_body_over_the_cap_is_refused_at_the_gate(srv: ServerProcess) -> None:
    before = stored(srv)
    response = upload(srv, b"a" * (1024 * 1024 + 1), "big.txt")
    assert response.status_code == 413 and response.headers["content-type"] == "application/json"
    assert response.json()["error"] == {"code": "request_too_large",
                                        "message": "The request is larger than the limit of 1 MB."}
    assert stored(srv) == before


def test_streamed_body_over_the_cap_is_cut_off(srv: ServerProcess) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(40):  # 2.5 MB without a Content-Length
            yield b"b" * (64 * 1024)

    error = refused(srv, body(), "big.txt", 413)
    assert error["code"] == "file_too_large" and "1 MB" in error["message"]


def test_body_of_exactly_the_cap_is_taken(srv: ServerProcess) -> None:
    line = b"x" * 63 + b"\n"
    response = upload(srv, line * (1024 * 1024 // len(line)), "full.txt")
    assert response.status_code == 201, response.text
    assert response.json()["bytes"] == 1024 * 1024
    assert api(srv, "DELETE", f"/api/attachments/{response.json()['id']}").status_code == 200


# --- unknown ids, removal ----------------------------------------------------------------------

@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/file"), ("GET", "/thumb"), ("DELETE", "")])
def test_unknown_id_is_404(srv: ServerProcess, method: str, suffix: str) -> None:
    response = api(srv, method, f"/api/attachments/0123456789abcdef{suffix}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_without_a_key_nothing_is_taken(srv: ServerProcess) -> None:
    before = stored(srv)
    response = httpx.post(f"{srv.base}/api/attachments", params={"name": "a.txt"}, content=b"hello\n", timeout=30)
    assert response.status_code == 401
    assert stored(srv) == before


def test_pending_attachment_can_be_deleted_once(srv: ServerProcess) -> None:
    before = stored(srv)
    body = upload(srv, jpeg((200, 100)), "delete-me.jpg").json()
    assert len(stored(srv).files - before.files) == 2  # the photo and its thumbnail
    response = api(srv, "DELETE", f"/api/attachments/{body['id']}")
    assert response.status_code == 200 and response.json() == {"id": body["id"], "deleted": True}
    assert stored(srv) == before
    again = api(srv, "DELETE", f"/api/attachments/{body['id']}")
    assert again.status_code == 404 and error_of(again)["code"] == "not_found"
    assert api(srv, "GET", body["url"]).status_code == 404


def test_sent_attachment_cannot_be_deleted(srv: ServerProcess) -> None:
    body = upload(srv, b"minutes of the meeting\n", "minutes.txt").json()
    message_id = run_alone(_send(srv.data_dir, body["id"]))
    response = api(srv, "DELETE", f"/api/attachments/{body['id']}")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    row = api(srv, "GET", f"/api/attachments/{body['id']}").json()
    assert row["message_id"] == message_id
    assert api(srv, "GET", body["url"]).text == "minutes of the meeting\n"
    assert body["id"] in stored(srv).rows
