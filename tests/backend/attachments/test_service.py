"""Uploads turned into pending attachments: photos prepared with a thumbnail, documents read, refusals
that leave nothing behind, what a model is given of a document, removal and the start-up sweep."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from backend.attachments.service import MEDIA_KIND, PENDING_TTL_S, THUMB_SIDE, AttachmentService
from backend.core.config import Settings
from backend.core.errors import AppError
from backend.storage.attachments import Attachment, AttachmentStore
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from backend.storage.media import MediaStore
from tests.documentfiles import REPORT_PAGES, encrypted, pdf_bytes
from tests.imagefiles import encoded, photo, png_claiming

RED, BLUE = (255, 0, 0), (0, 0, 255)
@pytest.fixture
def media(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


@pytest.fixture
def service(tmp_path: Path, db: Database, media: MediaStore) -> AttachmentService:
    settings = Settings(data_dir=tmp_path, token="t" * 20, max_attachment_mb=2)
    return AttachmentService(settings, AttachmentStore(db), media)


# --- helpers -----------------------------------------------------------------------------------

async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inside.txt", "hello " * 100)
    return out.getvalue()


def files(media: MediaStore) -> list[str]:
    """Every file in the media folder, hidden and partial ones included."""
    if not media.root.exists():
        return []
    return sorted(str(p.relative_to(media.root)) for p in media.root.rglob("*") if p.is_file())


async def rows(service: AttachmentService) -> int:
    row = await service.store.db.fetch_one("SELECT COUNT(*) FROM attachments")
    assert row is not None
    return int(row[0])


async def accepted(service: AttachmentService, data: bytes, name: str, uploader: str = "owner") -> Attachment:
    return await service.accept(chunks(data), name=name, uploader=uploader)


async def refused(service: AttachmentService, data: bytes, name: str) -> AppError:
    with pytest.raises(AppError) as caught:
        await accepted(service, data, name)
    assert files(service.media) == []  # no upload, no .part, no half-written photo or thumbnail
    assert await rows(service) == 0
    return caught.value


def stored_image(media: MediaStore, relative: str | None) -> Image.Image:
    assert relative is not None
    image = Image.open(media.path(relative))
    image.load()
    return image


def close_to(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


# --- photos ------------------------------------------------------------------------------------

async def test_rotated_jpeg_is_stored_upright_without_exif_with_a_thumbnail(
        service: AttachmentService, media: MediaStore) -> None:
    sensor = Image.new("RGB", (900, 600), BLUE)  # landscape as the sensor wrote it
    sensor.paste(RED, (0, 0, 150, 150))  # its top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # turn 90° clockwise to view
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (52.0, 31.0, 12.0)
    upload = encoded(sensor, "JPEG", exif=exif, quality=95)

    a = await accepted(service, upload, "IMG_0001.JPG", uploader="device:phone")
    assert (a.kind, a.mime, a.name, a.uploader, a.message_id) == ("image", "image/jpeg", "IMG_0001.JPG",
                                                                  "device:phone", None)
    assert (a.width, a.height) == (600, 900)  # portrait, as the phone was held
    assert a.info == {"source_format": "JPEG", "original_width": 600, "original_height": 900}
    assert a.path.startswith(f"{MEDIA_KIND}/") and a.path.endswith(".jpg")
    assert a.thumb is not None and a.thumb.endswith(".jpg") and a.thumb != a.path

    data = media.path(a.path).read_bytes()
    assert a.bytes == len(data) and data != upload
    assert b"Exif" not in data and b"PhoneMaker" not in data
    picture = stored_image(media, a.path)
    assert picture.format == "JPEG" and picture.size == (600, 900) and not picture.getexif()
    assert close_to(picture.getpixel((590, 10)), RED)  # the sensor's top-left is now top-right
    assert close_to(picture.getpixel((10, 10)), BLUE) and close_to(picture.getpixel((590, 890)), BLUE)

    thumb = stored_image(media, a.thumb)
    assert thumb.format == "JPEG" and max(thumb.size) <= THUMB_SIDE and thumb.size == (213, 320)
    assert close_to(thumb.getpixel((thumb.width - 4, 4)), RED)
    assert files(media) == sorted([a.path, a.thumb])  # the upload itself is not kept
    assert await service.store.get(a.id) == a


async def test_large_photo_is_made_smaller(service: AttachmentService, media: MediaStore) -> None:
    a = await accepted(service, encoded(photo(2400, 1200), "JPEG", quality=85), "wide.jpg")
    assert (a.width, a.height) == (1536, 768)
    assert (a.info["original_width"], a.info["original_height"]) == (2400, 1200)
    assert stored_image(media, a.path).size == (1536, 768)
    assert stored_image(media, a.thumb).size == (320, 160)


async def test_transparent_png_stays_png_and_its_thumbnail_is_a_jpeg(
        service: AttachmentService, media: MediaStore) -> None:
    sticker = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    sticker.paste((255, 0, 0, 255), (100, 50, 300, 150))
    a = await accepted(service, encoded(sticker, "PNG"), "sticker.png")
    assert (a.mime, a.width, a.height) == ("image/png", 400, 200) and a.path.endswith(".png")
    stored = stored_image(media, a.path)
    assert stored.format == "PNG" and stored.mode == "RGBA"
    assert stored.getpixel((5, 5))[3] == 0 and stored.getpixel((200, 100)) == (255, 0, 0, 255)  # type: ignore[index]
    thumb = stored_image(media, a.thumb)
    assert thumb.format == "JPEG" and thumb.size == (320, 160)
    assert close_to(thumb.getpixel((3, 3)), (255, 255, 255), 10)  # transparency on white, not black


async def test_huge_png_is_refused_from_its_header_fast(service: AttachmentService) -> None:
    data = png_claiming(20_000, 20_000)
    assert len(data) < 200
    started = time.perf_counter()
    error = await refused(service, data, "huge.png")
    assert time.perf_counter() - started < 2
    assert (error.status, error.code) == (413, "image_too_large")
    assert "too many pixels" in error.message and "40 megapixels" in error.message


async def test_truncated_jpeg_is_broken(service: AttachmentService) -> None:
    data = encoded(photo(600, 400), "JPEG")
    error = await refused(service, data[:len(data) // 2], "cut.jpg")
    assert (error.status, error.code) == (422, "broken_image")
    assert "damaged or incomplete" in error.message


async def test_svg_is_refused_as_a_drawing(service: AttachmentService) -> None:
    error = await refused(service, b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "drawing.svg")
    assert (error.status, error.code) == (415, "unsupported_image")


# --- documents ---------------------------------------------------------------------------------

async def test_pdf_named_like_a_photo_is_taken_as_a_document(service: AttachmentService, media: MediaStore) -> None:
    data = pdf_bytes(REPORT_PAGES)
    a = await accepted(service, data, "photo.jpg")
    assert (a.kind, a.mime, a.thumb, a.width) == ("document", "application/pdf", None, None)
    assert a.path.endswith(".pdf") and a.name == "photo.jpg"
    assert media.path(a.path).read_bytes() == data  # the document is kept as it came
    assert a.info["kind"] == "pdf" and a.info["pages"] == 4


async def test_several_page_pdf_is_read(service: AttachmentService, media: MediaStore) -> None:
    a = await accepted(service, pdf_bytes(REPORT_PAGES), "reports/q3 report.pdf")
    assert a.name == "q3 report.pdf"  # no folders
    assert a.info["kind"] == "pdf" and a.info["pages"] == 4 and a.info["pages_read"] == 4
    assert "notice" not in a.info and a.info["total_chars"] == len(a.text)
    lines = a.text.split("\n")
    for expected in ("--- page 1 ---", "Quarterly report", "Apples sold well", "--- page 2 ---",
                     "Second page about bananas", "Third page mentions cherries", "and elderberries"):
        assert expected in lines
    assert a.text.index("bananas") < a.text.index("cherries") < a.text.index("elderberries")
    assert a.bytes == media.path(a.path).stat().st_size == len(pdf_bytes(REPORT_PAGES))
    assert files(media) == [a.path]


async def test_csv_is_read_as_a_table(service: AttachmentService, media: MediaStore) -> None:
    text = "name,city,score\nAlice,Paris,91\nBob,Berlin,78\nCarol,Oslo,85\n"
    a = await accepted(service, text.encode(), "people.csv")
    assert (a.kind, a.mime) == ("document", "text/csv; charset=utf-8") and a.path.endswith(".csv")
    assert a.info["kind"] == "table" and a.info["rows"] == 3
    assert a.info["columns"] == ["name", "city", "score"]
    assert a.info["preview"] == [["name", "city", "score"], ["Alice", "Paris", "91"], ["Bob", "Berlin", "78"],
                                 ["Carol", "Oslo", "85"]]
    assert "| name | city | score |" in a.text and "| Bob | Berlin | 78 |" in a.text
    assert media.path(a.path).read_text() == text
    json_info = a.to_json()["info"]
    assert json_info["preview"][1] == ["Alice", "Paris", "91"]


async def test_text_file_keeps_its_extension(service: AttachmentService) -> None:
    a = await accepted(service, b"def main() -> None:\n    print('hi')\n", "main.py")
    assert a.path.endswith(".py") and a.mime == "text/plain; charset=utf-8"
    assert a.info["kind"] == "code" and a.info["language"] == "python"
    odd = await accepted(service, b"just words\n", "notes.tar.gz/../weird name.!!")
    assert odd.path.endswith(".txt") and odd.name == "weird name.!!"


async def test_text_starting_like_a_bitmap_is_a_document(service: AttachmentService) -> None:
    a = await accepted(service, b"BMI,age\n22.1,30\n25.3,41\n", "bmi.csv")
    assert a.kind == "document" and a.info["kind"] == "table" and a.info["columns"] == ["BMI", "age"]


async def test_html_page_with_an_inline_icon_is_a_document(service: AttachmentService) -> None:
    page = (b'<!doctype html>\n<html><body><header><svg width="16" height="16"><circle r="8"/></svg> Home</header>\n'
            b"<p>Opening hours: 9 to 5.</p></body></html>\n")
    a = await accepted(service, page, "index.html")
    assert a.kind == "document" and "Opening hours" in a.text


@pytest.mark.parametrize(("data", "what"), [
    (b"\x7fELF\x02\x01\x01" + bytes(200), "This is a program, not a document."),
    (zip_archive(), "This is a ZIP archive, not a document."),
])
async def test_binary_named_like_a_photo_is_refused_saying_what_it_is(
        service: AttachmentService, data: bytes, what: str) -> None:
    error = await refused(service, data, "x.jpg")
    assert (error.status, error.code, error.message) == (415, "not_a_document", what)


async def test_encrypted_pdf_is_refused(service: AttachmentService) -> None:
    error = await refused(service, encrypted(pdf_bytes(REPORT_PAGES), "hunter2"), "secret.pdf")
    assert (error.status, error.code) == (422, "encrypted_pdf")
    assert "password" in error.message


async def test_broken_pdf_is_refused(service: AttachmentService) -> None:
    data = pdf_bytes(REPORT_PAGES)
    error = await refused(service, data[:len(data) // 3], "cut.pdf")
    assert (error.status, error.code) == (422, "broken_pdf")
    assert "damaged or incomplete" in error.message


async def test_empty_upload_is_refused(service: AttachmentService) -> None:
    error = await refused(service, b"", "empty.txt")
    assert (error.status, error.code) == (400, "empty_document")


async def test_upload_over_the_limit_is_refused_and_not_read_further(service: AttachmentService) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 50 * 1024 * 1024:
            sent += 256 * 1024
            yield b"a" * (256 * 1024)

    with pytest.raises(AppError) as caught:
        await service.accept(endless(), name="big.txt", uploader="owner")
    assert (caught.value.status, caught.value.code) == (413, "file_too_large")
    assert "2 MB" in caught.value.message
    assert sent <= 2 * 1024 * 1024 + 256 * 1024  # stopped at the limit
    assert files(service.media) == [] and await rows(service) == 0


async def test_upload_of_exactly_the_limit_is_taken(service: AttachmentService) -> None:
    line = b"0123456789abcdef" * 4 + b"\n"
    data = line * (2 * 1024 * 1024 // len(line))
    data += b"x" * (2 * 1024 * 1024 - len(data))
    a = await accepted(service, data, "limit.txt")
    assert a.bytes == len(data) == 2 * 1024 * 1024
    assert 2_000_000 - len(line) < len(a.text) <= 2_000_000 and a.text.endswith("cdef")  # cut at a line end
    assert a.info["total_chars"] == len(data) and a.text.count("\n") < data.count(b"\n")
    assert a.info["notice"] == "Only the first 95 % of the text was read: longer documents are cut at " \
                               "2,000,000 characters."


async def test_a_stream_that_fails_leaves_nothing(service: AttachmentService) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"some text\n" * 1000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await service.accept(broken(), name="gone.txt", uploader="owner")
    assert files(service.media) == [] and await rows(service) == 0


# --- what the model is given -------------------------------------------------------------------

async def test_fitted_cuts_a_long_document_with_a_notice(service: AttachmentService) -> None:
    text = "".join(f"Line {i:05d} of the long document.\n" for i in range(2000))
    a = await accepted(service, text.encode(), "long.txt")
    fitted = service.fitted(a, 5000)
    assert fitted is a and a.sent_text is not None
    assert len(a.sent_text) <= 5000 and a.sent_text.startswith("Line 00000")
    assert a.sent_text.endswith(".") and "Line 01999" not in a.sent_text
    assert a.sent_notice is not None and a.sent_notice.startswith("Only the first ")
    assert "to fit the model's context" in a.sent_notice
    assert a.text == text  # the whole text stays in the row


async def test_fitted_leaves_a_short_document_whole(service: AttachmentService) -> None:
    a = await accepted(service, b"name,score\nAlice,1\nBob,2\n", "short.csv")
    service.fitted(a, 10_000)
    assert a.sent_text == a.text and a.sent_notice is None


async def test_fitted_counts_pdf_pages_and_table_rows(service: AttachmentService) -> None:
    pdf = await accepted(service, pdf_bytes(REPORT_PAGES), "report.pdf")
    budget = pdf.text.index("--- page 3 ---") - 1
    service.fitted(pdf, budget)
    assert pdf.sent_text is not None and "bananas" in pdf.sent_text and "cherries" not in pdf.sent_text
    assert pdf.sent_notice is not None and pdf.sent_notice.startswith("Only pages 1–2 of 4 were included (50 %)")

    table = await accepted(service, ("n,square\n" + "".join(f"{i},{i * i}\n" for i in range(100))).encode(), "t.csv")
    service.fitted(table, 200)
    assert table.sent_text is not None and table.sent_text.startswith("| n | square |\n| --- | --- |\n| 0 | 0 |")
    kept = table.sent_text.count("\n") - 1
    assert 0 < kept < 100 and table.sent_notice == f"Only the first {kept} of 100 rows were included ({kept} %) " \
                                                    f"to fit the model's context."


async def test_fitted_leaves_photos_alone(service: AttachmentService) -> None:
    a = await accepted(service, encoded(photo(64, 48), "JPEG"), "p.jpg")
    service.fitted(a, 0)
    assert a.sent_text is None and a.sent_notice is None
    assert await service.image_bytes([a]) == [service.media.path(a.path).read_bytes()]


# --- removal -----------------------------------------------------------------------------------

async def test_discard_by_the_uploader_removes_row_and_files(service: AttachmentService, media: MediaStore) -> None:
    pic = await accepted(service, encoded(photo(64, 48), "JPEG"), "p.jpg", uploader="device:phone")
    doc = await accepted(service, b"some notes\n", "notes.txt", uploader="device:phone")
    assert len(files(media)) == 3

    assert not await service.discard(pic.id, "owner")
    assert not await service.discard(pic.id, "device:laptop")
    assert len(files(media)) == 3 and await service.store.get(pic.id) is not None

    assert await service.discard(pic.id, "device:phone")
    assert await service.store.get(pic.id) is None and files(media) == [doc.path]
    assert not await service.discard(pic.id, "device:phone")
    assert await service.discard(doc.id, "device:phone")
    assert files(media) == [] and await rows(service) == 0


async def test_discard_of_a_sent_attachment_does_nothing(service: AttachmentService, db: Database) -> None:
    conversations = ConversationStore(db)
    conv = await conversations.create()
    a = await accepted(service, b"notes\n", "notes.txt")
    await service.store.link((await conversations.add_message(conv.id, "user", "see")).id, [a])
    assert not await service.discard(a.id, "owner")
    assert files(service.media) == [a.path] and await rows(service) == 1


async def test_sweep_removes_orphans_and_expired_pending(service: AttachmentService, media: MediaStore,
                                                         db: Database) -> None:
    conversations = ConversationStore(db)
    conv = await conversations.create()
    old_sent = await accepted(service, encoded(photo(64, 48), "JPEG"), "sent.jpg")
    await service.store.link((await conversations.add_message(conv.id, "user", "see")).id, [old_sent])
    expired = await accepted(service, encoded(photo(64, 48, seed=1), "JPEG"), "expired.jpg")
    recent = await accepted(service, b"recent notes\n", "recent.txt")
    long_ago = time.time() - PENDING_TTL_S - 60
    await db.execute("UPDATE attachments SET created_at = ? WHERE id IN (?, ?)", (long_ago, old_sent.id, expired.id))
    orphan = media.new_name(MEDIA_KIND, "jpg")
    await media.write_bytes(orphan, b"left by a crash")
    elsewhere = media.new_name("audio", "wav")
    await media.write_bytes(elsewhere, b"not an attachment")
    half_written = media.path(MEDIA_KIND + "/.0123abcd.upload.part")
    half_written.write_bytes(b"an upload cut off by a crash")

    assert await service.sweep() == 4  # the orphan, a half-written upload, the expired photo and its thumbnail
    assert not half_written.exists()
    assert await service.store.get(expired.id) is None
    assert await service.store.get(recent.id) is not None and await service.store.get(old_sent.id) is not None
    assert old_sent.thumb is not None
    assert files(media) == sorted([old_sent.path, old_sent.thumb, recent.path, elsewhere])
    assert await service.sweep() == 0
