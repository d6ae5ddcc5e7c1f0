"""Photos and documents in the chat, in a real Chromium against a real `gridless serve`: the camera's
viewfinder and shutter, the offer of a vision model, PDFs and tables through the file chooser, the
device camera on plain http, refused files and a refused camera.

The camera is Chromium's fake capture device playing a still picture the test writes (white on the
left, blue on the right), so the photo that arrives can be checked. The data folder has the bundled
SmolLM2 as the chat model, which cannot see, and "Tiny vision" (SmolLM2 with a random projector),
whose answers are noise but real.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from backend.chat.conversations import LONG_DOCUMENT_NOTICE
from tests.camerafiles import CAMERA_SIZE, camera_pattern_problems, jpeg_bytes, write_y4m, zip_bytes
from tests.documentfiles import pdf_bytes
from tests.ggufs import write_tiny_mmproj
from tests.imagefiles import png_claiming
from tests.server import ServerProcess
from tests.vision_models import VISION, vision_data_dir

from .conftest import CHROMIUM, CHROMIUM_ARGS, wait_live
from .test_chat import ASSISTANT, COMPOSER, MODEL, SEND, STATS, USER, sign_in, wait_complete
from .test_voice import FORCE_PLAIN_HTTP

pytestmark = pytest.mark.e2e

MAX_ATTACHMENT_MB = 1  # the server's limit here, so a file over it is quick to make and send
UPLOAD_TIMEOUT_MS = 30_000  # an upload with its checks and thumbnail, on a possibly busy machine
CAMERA_TIMEOUT_MS = 15_000  # from the camera button to a playing viewfinder

CAMERA_BUTTON = "[data-testid=camera-button]"
ATTACH_BUTTON = "[data-testid=attach-button]"
CAMERA = "[data-testid=camera]"
CAMERA_VIEW = "[data-testid=camera-view]"
SHUTTER = "[data-testid=camera-shutter]"
CAMERA_SWITCH = "[data-testid=camera-switch]"
CAMERA_CLOSE = "[data-testid=camera-close]"
CAMERA_MESSAGE = "[data-testid=camera-message]"
TRAY = "[data-testid=attachment-tray]"
UPLOADING = "[data-testid=attachment-uploading]"
PENDING_IMAGE = "[data-testid=pending-image]"
PENDING_DOCUMENT = "[data-testid=pending-document]"
PENDING = f"{PENDING_IMAGE}, {PENDING_DOCUMENT}"
REMOVE = "[data-testid=remove-attachment]"
OFFER = "[data-testid=vision-offer]"
USE_VISION = "[data-testid=use-vision-model]"
MESSAGE_PHOTO = "[data-testid=message-photo]"
PHOTO_FULL = "[data-testid=photo-full]"
MESSAGE_DOCUMENT = "[data-testid=message-document]"
DOCUMENT_NAME = "[data-testid=document-name]"
DOCUMENT_INFO = "[data-testid=document-info]"
DOCUMENT_NOTICE = "[data-testid=document-notice]"
TABLE_PREVIEW = "[data-testid=table-preview]"
NOTIFICATION = ".q-notification"

ATTACHMENT_SRC = re.compile(r"^/api/attachments/([0-9a-f]{32})/(thumb|file)$")
REFUSE_CAMERA = ("navigator.mediaDevices.getUserMedia = "
                 "() => Promise.reject(new DOMException('denied', 'NotAllowedError'))")
IMAGE_LOADED_JS = "img => img.complete && img.naturalWidth > 0"


# the server and the browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[ServerProcess]:
    """One server for the module: SmolLM2 answers by default, Tiny vision is installed."""
    folder = tmp_path_factory.mktemp("attachments")
    projector = write_tiny_mmproj(folder / "mmproj-tiny.gguf")
    with ServerProcess(data_dir=vision_data_dir(folder, smollm_path, projector),
                       env={"GRIDLESS_MAX_ATTACHMENT_MB": str(MAX_ATTACHMENT_MB)}) as srv:
        yield srv


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="module")
def browser(playwright: Playwright, camera_video: Path) -> Iterator[Browser]:
    """This module's own Chromium, whose camera shows `camera_video` and is allowed without asking."""
    if not CHROMIUM.exists():
        pytest.skip("end-to-end tests need Debian's chromium at /usr/bin/chromium")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_video}"])
    yield browser
    browser.close()


# helpers ------------------------------------------------------------------------------------------

def attach(page: Page, *paths: Path) -> None:
    """Choose files with the paperclip, as a person does in the system's file chooser."""
    with page.expect_file_chooser(timeout=10_000) as chooser_info:
        page.locator(ATTACH_BUTTON).click()
    chooser = chooser_info.value
    assert chooser.is_multiple(), "the paperclip's chooser takes one file only"
    chooser.set_files(list(paths))


def attachment_id(page: Page, selector: str) -> str:
    """The id of the attachment a thumbnail shows, from its picture's address (once it has loaded)."""
    img = page.locator(f"{selector} img").first
    page.wait_for_function(IMAGE_LOADED_JS, arg=img.element_handle(), timeout=UPLOAD_TIMEOUT_MS)
    src = img.get_attribute("src") or ""
    match = ATTACHMENT_SRC.match(src)
    assert match, f"the thumbnail's address is {src!r}"
    return match.group(1)


def api_get(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", headers=server.headers(), timeout=10)


def send_with_attachments(page: Page, text: str) -> None:
    """Send what is in the tray with `text` (may be empty) and wait until the message is shown."""
    answers = page.locator(ASSISTANT).count()
    page.locator(COMPOSER).fill(text)
    page.locator(SEND).click()
    expect(page.locator(ASSISTANT)).to_have_count(answers + 1)
    expect(page.locator(COMPOSER)).to_have_value("")
    expect(page.locator(PENDING)).to_have_count(0)  # the files went with the message
    if text:
        expect(page.locator(USER).last).to_have_text(text)


def follow_up(page: Page, text: str) -> str:
    answers = page.locator(ASSISTANT).count()
    composer = page.locator(COMPOSER)
    composer.fill(text)
    composer.press("Enter")
    expect(page.locator(ASSISTANT)).to_have_count(answers + 1)
    expect(page.locator(USER).last).to_have_text(text)
    return wait_complete(page)


def expect_refused(page: Page, message: str | re.Pattern[str]) -> None:
    """The file was refused with `message`, and nothing was left in the tray."""
    expect(page.locator(NOTIFICATION).last).to_contain_text(message, timeout=UPLOAD_TIMEOUT_MS)
    expect(page.locator(UPLOADING)).to_have_count(0)
    expect(page.locator(PENDING)).to_have_count(0)


def vehicle_report(pages: int) -> bytes:
    """A fleet report of `pages` pages, about 1,300 characters of text on each."""
    return pdf_bytes([
        [f"Fleet report, page {n} of {pages}", *(f"Vehicle {v}: {v * 100 + n * 7} km, fuel {v + n % 5} l, "
                                                  f"service due in {30 + v + n} days, depot {chr(65 + v % 7)}."
                                                  for v in range(1, 21))]
        for n in range(1, pages + 1)])


# tests --------------------------------------------------------------------------------------------

def test_photo_from_the_camera_answered_by_a_vision_model(server: ServerProcess, phone_page: Page) -> None:
    page = phone_page
    sign_in(page, server)
    expect(page.locator(MODEL)).to_contain_text("smollm2")
    expect(page.locator(CAMERA)).to_have_count(0)

    page.locator(CAMERA_BUTTON).click()
    camera = page.locator(CAMERA)
    expect(camera).to_be_visible()
    box = camera.bounding_box()
    assert box is not None and box["width"] >= 389 and box["height"] >= 843, \
        f"the viewfinder does not fill the phone's screen: {box}"
    expect(page.locator(f"{SHUTTER}:not([disabled])")).to_be_visible(timeout=CAMERA_TIMEOUT_MS)
    video = page.locator(CAMERA_VIEW)
    live = video.evaluate("v => ({w: v.videoWidth, h: v.videoHeight, playing: !v.paused && v.readyState >= 2})")
    assert live == {"w": CAMERA_SIZE[0], "h": CAMERA_SIZE[1], "playing": True}, f"the viewfinder is not live: {live}"
    expect(page.locator(CAMERA_MESSAGE)).to_have_text("")
    cameras = page.evaluate("async () => (await navigator.mediaDevices.enumerateDevices())"
                            ".filter(d => d.kind === 'videoinput').length")
    if cameras < 2:
        expect(page.locator(CAMERA_SWITCH)).to_be_hidden()
    else:
        expect(page.locator(CAMERA_SWITCH)).to_be_visible()

    page.locator(SHUTTER).click()
    expect(camera).to_have_count(0)  # the viewfinder closes with the picture taken
    expect(page.locator(PENDING_IMAGE)).to_have_count(1, timeout=UPLOAD_TIMEOUT_MS)
    photo_id = attachment_id(page, PENDING_IMAGE)
    stored = api_get(server, f"/api/attachments/{photo_id}/file")
    assert stored.status_code == 200, stored.text
    assert stored.headers["content-type"] == "image/jpeg"
    problems = camera_pattern_problems(stored.content)
    assert not problems, f"the stored photo is not what the camera showed: {problems}"
    row = api_get(server, f"/api/attachments/{photo_id}").json()
    assert (row["kind"], row["width"], row["height"]) == ("image", *CAMERA_SIZE), row
    assert re.fullmatch(r"photo-\d{8}-\d{6}\.jpg", row["name"]), row["name"]

    offer = page.locator(OFFER)
    expect(offer).to_contain_text("SmolLM2 135M Instruct cannot see photos.")
    expect(offer.locator(USE_VISION)).to_have_count(1)
    expect(offer.locator(USE_VISION)).to_contain_text("Tiny vision")
    offer.locator(USE_VISION).click()
    expect(page.locator(MODEL)).to_contain_text(VISION)
    expect(page.locator(OFFER)).to_have_count(0)
    expect(page.locator(PENDING_IMAGE)).to_have_count(1)  # choosing the model kept the photo

    send_with_attachments(page, "What is in this photo?")
    thumb = page.locator(MESSAGE_PHOTO)
    expect(thumb).to_have_count(1)
    assert attachment_id(page, MESSAGE_PHOTO) == photo_id
    wait_complete(page)
    expect(page.locator(ASSISTANT).last.locator("[data-testid=answer-error]")).to_have_count(0)
    url = page.url
    assert re.search(r"/c/[0-9a-f]{32}$", url), url

    follow_up(page, "Describe its colours in one sentence.")
    expect(page.locator(ASSISTANT)).to_have_count(2)
    expect(page.locator(STATS)).to_have_count(2)
    for stats in page.locator(STATS).all():
        expect(stats).to_contain_text("tokens")
    expect(page.locator(MODEL)).to_contain_text(VISION)

    page.reload()
    wait_live(page)
    assert page.url == url
    expect(page.locator(MESSAGE_PHOTO)).to_have_count(1)
    assert attachment_id(page, MESSAGE_PHOTO) == photo_id
    expect(page.locator(MODEL)).to_contain_text(VISION)
    page.locator(MESSAGE_PHOTO).click()
    full = page.locator(f"{PHOTO_FULL} img")
    expect(full).to_be_visible()
    page.wait_for_function(IMAGE_LOADED_JS, arg=full.element_handle())
    assert ATTACHMENT_SRC.match(full.get_attribute("src") or "") is not None
    assert full.get_attribute("src") == f"/api/attachments/{photo_id}/file"
    assert full.evaluate("img => [img.naturalWidth, img.naturalHeight]") == list(CAMERA_SIZE)


def test_long_and_short_pdfs(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    report = tmp_path / "fleet-report.pdf"
    report.write_bytes(vehicle_report(30))
    memo = tmp_path / "memo.pdf"
    memo.write_bytes(pdf_bytes([["Memo: Vehicle 7: 1700 km this month."], ["Signed, the depot."]]))
    sign_in(page, server)

    attach(page, report, memo)  # both at once from the chooser
    pending = page.locator(PENDING_DOCUMENT)
    expect(pending).to_have_count(2, timeout=UPLOAD_TIMEOUT_MS)
    expect(page.locator(UPLOADING)).to_have_count(0)
    expect(pending.filter(has_text="fleet-report.pdf")).to_contain_text("PDF · 30 pages")
    expect(pending.filter(has_text="memo.pdf")).to_contain_text("PDF · 2 pages")
    expect(page.locator(OFFER)).to_have_count(0)  # SmolLM2 reads documents; only photos need a vision model

    send_with_attachments(page, "Summarise the document.")
    cards = page.locator(MESSAGE_DOCUMENT)
    expect(cards).to_have_count(2)
    long = cards.filter(has=page.locator(DOCUMENT_NAME, has_text="fleet-report.pdf"))
    short = cards.filter(has=page.locator(DOCUMENT_NAME, has_text="memo.pdf"))
    expect(long.locator(DOCUMENT_INFO)).to_have_text("PDF · 30 pages")
    # too long for the context: cut at first, then indexed, and answered from its passages
    expect(long.locator(DOCUMENT_NOTICE)).to_have_text(re.compile(
        r"^(Only (page 1|pages 1–\d+)( and part of page \d+)? of 30 (was|were) included \((\d+|less than 1) %\) "
        r"to fit the model's context\.|" + re.escape(LONG_DOCUMENT_NOTICE) + ")$"))
    expect(short.locator(DOCUMENT_INFO)).to_have_text("PDF · 2 pages")
    expect(short.locator(DOCUMENT_NOTICE)).to_have_count(0)  # all of it was given to the model
    for card, sent in ((long, report), (short, memo)):
        href = card.locator(DOCUMENT_NAME).get_attribute("href") or ""
        assert ATTACHMENT_SRC.match(href), href
        served = api_get(server, href)
        assert served.status_code == 200 and served.content == sent.read_bytes(), f"{sent.name} was not kept as sent"
    wait_complete(page)
    expect(page.locator(MODEL)).to_contain_text("smollm2")

    page.reload()  # what was given to the model is kept with the message
    wait_live(page)
    expect(page.locator(MESSAGE_DOCUMENT)).to_have_count(2)
    expect(page.locator(DOCUMENT_NOTICE)).to_have_count(1)
    expect(page.locator(DOCUMENT_NOTICE)).to_have_text(LONG_DOCUMENT_NOTICE)


def test_csv_shows_a_table_preview(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    cities = tmp_path / "cities.csv"
    cities.write_text("city,country,population\nLyon,France,522250\nOsaka,Japan,2753862\n"
                      "Porto,Portugal,231800\n", encoding="utf-8")
    sign_in(page, server)

    attach(page, cities)
    pending = page.locator(PENDING_DOCUMENT)
    expect(pending).to_contain_text("Table · 3 rows × 3 columns", timeout=UPLOAD_TIMEOUT_MS)

    send_with_attachments(page, "")  # the table alone, no words
    card = page.locator(MESSAGE_DOCUMENT)
    expect(card).to_have_count(1)
    expect(page.locator(USER)).to_have_count(0)  # no empty bubble for the missing words
    expect(card.locator(DOCUMENT_NAME)).to_have_text("cities.csv")
    expect(card.locator(DOCUMENT_INFO)).to_have_text("Table · 3 rows × 3 columns")
    table = card.locator(TABLE_PREVIEW)
    expect(table.locator("thead th")).to_have_text(["city", "country", "population"])
    expect(table.locator("tbody tr").first.locator("td")).to_have_text(["Lyon", "France", "522250"])
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(card.locator(DOCUMENT_NOTICE)).to_have_count(0)
    wait_complete(page)
    expect(page).to_have_title(re.compile("cities.csv"))  # named after the file, as there were no words


def test_plain_http_takes_photos_with_the_device_camera(server: ServerProcess, context: BrowserContext,
                                                       tmp_path: Path) -> None:
    context.add_init_script(FORCE_PLAIN_HTTP)
    page = context.new_page()
    sign_in(page, server)
    assert page.evaluate("window.isSecureContext") is False
    picture = tmp_path / "IMG_0001.jpg"
    picture.write_bytes(jpeg_bytes(640, 480))

    with page.expect_file_chooser(timeout=10_000) as chooser_info:
        page.locator(CAMERA_BUTTON).click()
    chooser = chooser_info.value
    assert not chooser.is_multiple()
    assert chooser.element.get_attribute("accept") == "image/*"
    assert chooser.element.get_attribute("capture") == "environment"
    expect(page.locator(CAMERA)).to_have_count(0)  # no viewfinder in the page itself

    chooser.set_files(picture)
    expect(page.locator(PENDING_IMAGE)).to_have_count(1, timeout=UPLOAD_TIMEOUT_MS)
    photo_id = attachment_id(page, PENDING_IMAGE)
    row = api_get(server, f"/api/attachments/{photo_id}").json()
    assert (row["name"], row["width"], row["height"]) == ("IMG_0001.jpg", 640, 480), row
    expect(page.locator(OFFER)).to_contain_text("cannot see photos.")


def test_refused_files_say_why_and_lose_nothing(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    sign_in(page, server)
    words = "Here are the pictures from the trip."
    composer = page.locator(COMPOSER)
    composer.fill(words)

    archive = tmp_path / "photo.jpg"
    archive.write_bytes(zip_bytes())
    attach(page, archive)
    expect_refused(page, "photo.jpg: This is a ZIP archive, not")

    panorama = tmp_path / "panorama.png"
    panorama.write_bytes(png_claiming(10_000, 5_000))
    attach(page, panorama)
    expect_refused(page, "panorama.png: The image is 10,000 × 5,000 pixels")

    big = tmp_path / "big-notes.txt"
    big.write_bytes(b"All work and no play.\n" * (MAX_ATTACHMENT_MB * 1024 * 1024 // 22 + 1000))
    attach(page, big)
    expect_refused(page, f"big-notes.txt: The request is larger than the limit of {MAX_ATTACHMENT_MB} MB.")
    expect(composer).to_have_value(words)

    good = tmp_path / "beach.jpg"
    good.write_bytes(jpeg_bytes())
    attach(page, good)
    expect(page.locator(PENDING_IMAGE)).to_have_count(1, timeout=UPLOAD_TIMEOUT_MS)
    photo_id = attachment_id(page, PENDING_IMAGE)
    assert api_get(server, f"/api/attachments/{photo_id}").status_code == 200
    page.locator(PENDING_IMAGE).locator(REMOVE).click()
    expect(page.locator(PENDING)).to_have_count(0)
    expect(page.locator(OFFER)).to_have_count(0)  # no photo, nothing to offer
    expect(page.locator(TRAY)).to_be_empty()
    assert api_get(server, f"/api/attachments/{photo_id}").status_code == 404
    assert api_get(server, f"/api/attachments/{photo_id}/file").status_code == 404
    expect(composer).to_have_value(words)
    expect(page.locator(USER)).to_have_count(0)  # nothing was sent


def test_refused_camera_explains_and_closes(server: ServerProcess, context: BrowserContext) -> None:
    context.add_init_script(REFUSE_CAMERA)
    page = context.new_page()
    sign_in(page, server)

    page.locator(CAMERA_BUTTON).click()
    expect(page.locator(CAMERA)).to_be_visible()
    expect(page.locator(CAMERA_MESSAGE)).to_contain_text("Camera access was refused.", timeout=CAMERA_TIMEOUT_MS)
    expect(page.locator(CAMERA_MESSAGE)).to_contain_text("paperclip")
    expect(page.locator(SHUTTER)).to_be_disabled()
    assert page.locator(CAMERA_VIEW).evaluate("v => v.srcObject") is None

    page.locator(CAMERA_CLOSE).click()
    expect(page.locator(CAMERA)).to_have_count(0)
    expect(page.locator(PENDING)).to_have_count(0)
    page.locator(CAMERA_BUTTON).click()  # it can be opened again, and says the same
    expect(page.locator(CAMERA_MESSAGE)).to_contain_text("Camera access was refused.", timeout=CAMERA_TIMEOUT_MS)
    page.keyboard.press("Escape")
    expect(page.locator(CAMERA)).to_have_count(0)


PASTE_OR_DROP_JS = """([kind, b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, {type}));
  const event = kind === 'paste'
    ? new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true})
    : new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true});
  const target = kind === 'paste' ? document.querySelector('textarea[data-testid=composer]') : document.body;
  target.dispatchEvent(event);
  return event.defaultPrevented;
}"""


def test_pasted_picture_and_dropped_file_are_attached(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    wait_live(page)
    picture = base64.b64encode(jpeg_bytes(80, 60)).decode()
    assert page.evaluate(PASTE_OR_DROP_JS, ["paste", picture, "image.png", "image/jpeg"]) is True, \
        "the page left a pasted picture to the browser"
    expect(page.locator(PENDING_IMAGE)).to_have_count(1, timeout=UPLOAD_TIMEOUT_MS)
    row = api_get(server, f"/api/attachments/{attachment_id(page, PENDING_IMAGE)}").json()
    assert (row["kind"], row["width"], row["height"]) == ("image", 80, 60), row
    assert re.fullmatch(r"pasted-\d{8}-\d{6}\.png", row["name"]), row["name"]
    expect(page.locator(COMPOSER)).to_have_value("")  # nothing pasted as text

    notes = base64.b64encode(b"Shopping: eggs, flour, milk.\n").decode()
    assert page.evaluate(PASTE_OR_DROP_JS, ["drop", notes, "shopping.txt", "text/plain"]) is True, \
        "the browser would have opened the dropped file in place of the app"
    expect(page.locator(PENDING_DOCUMENT)).to_have_count(1, timeout=UPLOAD_TIMEOUT_MS)
    expect(page.locator(PENDING_DOCUMENT)).to_contain_text("shopping.txt")
    expect(page.locator(PENDING)).to_have_count(2)
