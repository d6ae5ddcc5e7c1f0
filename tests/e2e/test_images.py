"""The Images page in a real Chromium against a real `gridless serve` with the random-weight SDXS model.

Its pictures are noise, but loading, sampling, previews, cancel and storage are real, so each
picture takes seconds of CPU (several seconds a step on a busy two-core machine): the waits for
a generation are long, the waits for the page are not. One server with the model serves every
test but the last, which needs a server without one; the pictures are the smallest preset.
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.loops import run_alone
from tests.sdmodels import register_image_model
from tests.server import ServerProcess

from .conftest import wait_live
from .test_models import open_from_drawer

pytestmark = pytest.mark.e2e

GENERATION_TIMEOUT_MS = 300_000  # a picture of a step or two, with the model's loading, on a busy machine
LONG_GENERATION_TIMEOUT_MS = 600_000  # eight steps
UPLOAD_TIMEOUT_MS = 30_000
CANCEL_TIMEOUT_MS = 5_000  # a second's grace, then the worker is stopped
CANCEL_PROMPT_S = 3.5  # what "stops within about a second" may take on a busy machine

PROMPT = "textarea[data-testid=image-prompt]"
SIZE = "[data-testid=image-size]"
BATCH = "[data-testid=image-batch]"
MORE = "[data-testid=image-more]"
STEPS = "input[data-testid=image-steps]"
SEED = "input[data-testid=image-seed]"
SOURCE_PICK = "[data-testid=source-pick]"
SOURCE_THUMB = "[data-testid=source-thumb]"
SOURCE_CLEAR = "[data-testid=source-clear]"
STRENGTH = "[data-testid=image-strength]"
GENERATE = "[data-testid=generate]"
CANCEL = "[data-testid=cancel-generation]"
PROGRESS_TEXT = "[data-testid=image-progress-text]"
PROGRESS_BAR = "[data-testid=image-progress-bar]"
PREVIEW = "[data-testid=image-preview]"
GALLERY = "[data-testid=gallery]"
ITEM = "[data-testid=gallery-item]"
EMPTY = "[data-testid=gallery-empty]"
GALLERY_WATCHED = "[data-testid=gallery-end][data-watched='1']"
SELECT = "[data-testid=gallery-select]"
CHECK = "[data-testid=gallery-check]"
DELETE_SELECTED = "[data-testid=delete-selected]"
CONFIRM = "[data-testid=confirm-ok]"
VIEW = "[data-testid=image-view]"
FULL = "[data-testid=image-full]"
NO_MODEL = "[data-testid=no-image-model]"
NOTIFICATION = ".q-notification"

SMALL = "256 × 256"
MODEL_NAME = "Tiny SDXS"
STEP_TEXT = re.compile(r"^Step (\d+) of (\d+) · [\d.]+ s( · about [\d.]+ s left| · finishing the picture)?$")
DONE_TEXT = re.compile(r"^Done in [\d.]+ s( · [\d.]+ s a picture)?$")
ALLOWED_TEXT = re.compile(r"^(Loading the image model…|Waiting for the image model…|Step \d+ of \d+ · .+|Done in .+)$")
IMAGE_LOADED_JS = "img => img.complete && img.naturalWidth > 0"
ATTACHMENT_THUMB = re.compile(r"^/api/attachments/([0-9a-f]{32})/thumb$")

# samples the progress line, the bar and the preview every 50 ms: a generation's stages go by
# faster than a test could look at them one by one
WATCH_JS = """() => {
  clearInterval(window.__glWatch);
  const seen = window.__glSeen = {texts: [], values: [], preview: null};
  window.__glWatch = setInterval(() => {
    const text = document.querySelector('[data-testid=image-progress-text]');
    if (text && text.innerText && seen.texts.at(-1) !== text.innerText) seen.texts.push(text.innerText);
    const bar = document.querySelector('[data-testid=image-progress-bar]');
    const value = bar && bar.getAttribute('aria-valuenow');
    if (value !== null && value !== undefined && seen.values.at(-1) !== value) seen.values.push(value);
    const img = document.querySelector("[data-testid=image-preview] img[src^='data:image/jpeg']");
    if (img && img.checkVisibility() && img.complete && img.naturalWidth > 0) seen.preview = img.src;
  }, 50);
}"""

# when "Start from a picture" was clicked, and when (and whether) the hidden file input was
CLICK_TIMES_JS = """() => {
  const clicks = window.__glClicks = {button: null, input: null, activeAtInput: null};
  document.addEventListener('click', (e) => {
    if (e.target.closest('[data-testid=source-pick]')) clicks.button = performance.now();
    if (e.target.matches('input[data-testid=source-input]')) {
      clicks.input = performance.now();
      clicks.activeAtInput = navigator.userActivation.isActive;
    }
  }, true);
}"""


# the servers --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sdxs_path: Path) -> Iterator[ServerProcess]:
    """One server for the module, with the random-weight SDXS as its image model."""
    data = tmp_path_factory.mktemp("images") / "data"
    data.mkdir()
    run_alone(register_image_model(data / "gridless.db", sdxs_path))
    with ServerProcess(data_dir=data) as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_generation_left(request: pytest.FixtureRequest, browser: Browser) -> Iterator[None]:
    """After a test that failed mid-generation, cancel what it left running, so that the next
    test's page does not find it."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "server" not in request.fixturenames:
        return
    context = browser.new_context()
    try:
        page = context.new_page()
        open_images(page, request.getfixturevalue("server"))
        if page.locator(CANCEL).is_visible():
            page.locator(CANCEL).click()
            expect(page.locator(GENERATE)).to_be_visible(timeout=30_000)
    finally:
        context.close()


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with no image model."""
    with ServerProcess(data_dir=tmp_path / "data") as srv:
        yield srv


# helpers ------------------------------------------------------------------------------------------

def api_get(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", headers=server.headers(), timeout=30)


def image_ids(server: ServerProcess) -> list[str]:
    """The gallery's images according to the API, newest first."""
    response = api_get(server, "/api/images?limit=200")
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()]


def image_record(server: ServerProcess, image_id: str) -> dict[str, Any]:
    response = api_get(server, f"/api/images/{image_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def image_file(server: ServerProcess, image_id: str) -> bytes:
    response = api_get(server, f"/api/images/{image_id}/file")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return response.content


def pixels(png: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(png)) as picture:
        return picture.size, picture.convert("RGB").tobytes()


def png_text(png: bytes) -> dict[str, str]:
    """The PNG's text chunks."""
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG"
        return {str(key): value for key, value in picture.info.items() if isinstance(value, str)}


def clear_gallery(server: ServerProcess) -> None:
    ids = image_ids(server)
    if ids:
        response = httpx.post(f"{server.base}/api/images/delete", json={"ids": ids}, headers=server.headers(),
                              timeout=30)
        assert response.status_code == 200, response.text
    assert image_ids(server) == []


def open_images(page: Page, server: ServerProcess) -> None:
    """Sign in with the owner link, then open the Images page from the drawer."""
    open_from_drawer(page, server, "images")
    wait_built(page)


def wait_built(page: Page) -> None:
    """Until the page is live and its gallery is filled: the page's HTML comes before the gallery's
    first pictures, which follow over the websocket, and the last thing the page does is watch the
    gallery's end for endless scrolling."""
    wait_live(page)
    expect(page.locator(GALLERY_WATCHED)).to_be_attached()


def choose(page: Page, select: str, option: str) -> None:
    """Pick `option` in a Quasar select, as a person does: open it, click the option."""
    page.locator(select).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(select)).to_contain_text(option)
    expect(page.get_by_role("option")).to_have_count(0)  # the menu has faded out: it covers the form below


def open_more(page: Page) -> None:
    """Open "More settings", and wait until it has slid open (until then the buttons in it move)."""
    if not page.locator(STEPS).is_visible():
        page.locator(MORE).click()
    content = page.locator(f"{MORE} .q-expansion-item__content")
    expect(content).to_be_visible()
    page.wait_for_function("e => !e.style.height", arg=content.element_handle())
    expect(page.locator(STEPS)).to_be_visible()


def set_steps(page: Page, steps: int) -> None:
    open_more(page)
    page.locator(STEPS).fill(str(steps))
    page.locator(STEPS).blur()
    expect(page.locator(STEPS)).to_have_value(str(steps))


def watch(page: Page) -> None:
    page.evaluate(WATCH_JS)


def seen(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.__glSeen")
    return result


def start(page: Page, *, keyboard: bool = False) -> None:
    """Generate (with the button, or Ctrl+Enter in the prompt) and wait until the page follows the new
    generation: its progress line replaces the last one's, which may still say "Done"."""
    page.evaluate("document.querySelectorAll('[data-testid=image-progress-text]')"
                  ".forEach((e) => { e.dataset.glOld = '1'; })")
    if keyboard:
        page.locator(PROMPT).press("Control+Enter")
    else:
        page.locator(GENERATE).click()
    expect(page.locator(f"{PROGRESS_TEXT}:not([data-gl-old])")).to_have_count(1)


def wait_done(page: Page, timeout: int = GENERATION_TIMEOUT_MS) -> str:
    """Until the progress line says the generation is over; fails if it ended in any other way."""
    text = page.locator(PROGRESS_TEXT)
    expect(text).to_have_text(re.compile(r"^(Done in |Cancelled after |It did not work)"), timeout=timeout)
    expect(text).to_have_text(DONE_TEXT)
    expect(page.locator(GENERATE)).to_be_visible()
    expect(page.locator(CANCEL)).to_be_hidden()
    return text.inner_text()


def new_ids(server: ServerProcess, before: list[str], count: int) -> list[str]:
    """The images added since `before`, newest first; there must be `count` of them."""
    after = image_ids(server)
    added = [i for i in after if i not in before]
    assert len(added) == count, f"expected {count} new images, the API lists {added}"
    assert after[:count] == added, f"the new images are not the newest: {after}"
    return added


def open_view(page: Page, image_id: str) -> None:
    page.locator(f"{ITEM}[data-id='{image_id}']").click()
    expect(page.locator(VIEW)).to_be_visible()
    full = page.locator(f"{FULL} img")
    expect(full).to_have_attribute("src", f"/api/images/{image_id}/file")
    page.wait_for_function(IMAGE_LOADED_JS, arg=full.element_handle())


def gallery_order(page: Page) -> list[str]:
    return [item.get_attribute("data-id") or "" for item in page.locator(ITEM).all()]


def notified(page: Page, message: str) -> None:
    expect(page.locator(NOTIFICATION).filter(has_text=message).last).to_be_visible()


def pick_source(page: Page, path: Path) -> None:
    """Press "Start from a picture" and choose `path` in the file chooser. The button asks the server, which
    asks the page to click the hidden file input: when that comes back too late for the browser to
    count it as the person's click, no chooser opens, and the times say so."""
    page.evaluate(CLICK_TIMES_JS)
    try:
        with page.expect_file_chooser(timeout=15_000) as chooser_info:
            page.locator(SOURCE_PICK).click()
    except PlaywrightTimeoutError:
        times = page.evaluate("window.__glClicks")
        pytest.fail(f"no file chooser opened; clicks (ms since the page loaded): {times}")
    chooser_info.value.set_files(path)


def source_png(path: Path) -> Path:
    Image.new("RGB", (300, 200), (200, 40, 40)).save(path, "PNG")
    return path


# tests --------------------------------------------------------------------------------------------

def test_generate_open_download_same_seed_and_delete(server: ServerProcess, page: Page) -> None:
    prompt = "a lighthouse at dawn"
    open_images(page, server)
    before = image_ids(server)
    shown = page.locator(ITEM).count()
    assert shown == len(before)

    page.locator(PROMPT).fill(prompt)
    choose(page, SIZE, SMALL)
    watch(page)
    start(page)
    expect(page.locator(CANCEL)).to_be_visible()
    expect(page.locator(GENERATE)).to_be_hidden()
    wait_done(page)

    run = seen(page)
    texts: list[str] = run["texts"]
    assert all(ALLOWED_TEXT.match(t) for t in texts), f"unexpected progress lines: {texts}"
    steps = [(int(m.group(1)), int(m.group(2))) for t in texts if (m := STEP_TEXT.match(t))]
    assert steps, f"the progress never showed a step: {texts}"
    assert all(total == 1 for _, total in steps), texts
    assert [s for s, _ in steps] == sorted(s for s, _ in steps), f"the steps went backwards: {texts}"
    assert DONE_TEXT.match(texts[-1]), texts
    values = [float(v) for v in run["values"]]
    assert values[-1] == 1.0 and values == sorted(values), f"the bar went {values}"
    bar = page.locator(PROGRESS_BAR)
    expect(bar).to_have_attribute("aria-valuenow", "1")
    expect(bar.locator(".q-linear-progress__model")).to_have_attribute("style", re.compile(r"scale3d\(1, 1, 1\)"))
    assert run["preview"] is not None, f"no preview was shown during the run ({texts})"
    preview = base64.b64decode(run["preview"].split(",", 1)[1])
    with Image.open(io.BytesIO(preview)) as picture:
        assert picture.format == "JPEG" and max(picture.size) <= 256, (picture.format, picture.size)
    expect(page.locator(PREVIEW)).to_be_hidden()  # the preview goes once the picture is there

    (first,) = new_ids(server, before, 1)
    expect(page.locator(ITEM)).to_have_count(shown + 1)
    assert gallery_order(page)[0] == first
    page.wait_for_function(IMAGE_LOADED_JS, arg=page.locator(f"{ITEM}[data-id='{first}'] img").element_handle())
    record = image_record(server, first)
    seed = record["seed"]
    assert isinstance(seed, int)
    assert (record["prompt"], record["width"], record["height"], record["steps"]) == (prompt, 256, 256, 1), record
    png = image_file(server, first)
    size, first_pixels = pixels(png)
    assert size == (256, 256)
    text = png_text(png)
    assert text.get("prompt") == prompt and text.get("seed") == str(seed), text
    assert f"Seed: {seed}" in text.get("parameters", "") and "Size: 256x256" in text.get("parameters", ""), text

    # change the form, so that "Again" and "This seed" have something to put back
    page.locator(PROMPT).fill("something else entirely")
    choose(page, SIZE, "384 × 384")
    open_more(page)
    page.locator(SEED).fill("7")

    open_view(page, first)
    assert page.locator(f"{FULL} img").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [256, 256]
    expect(page.locator("[data-testid=view-prompt]")).to_have_text(prompt)
    expect(page.locator("[data-testid=view-details]")).to_contain_text(
        f"Seed {seed} · 1 step · CFG 1 · euler_a · 256 × 256 · {MODEL_NAME} · ")
    download_link = page.locator("[data-testid=view-download]")
    expect(download_link).to_have_attribute("href", f"/api/images/{first}/file?download=1")
    with page.expect_download(timeout=30_000) as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename == f"a-lighthouse-at-dawn-{seed}.png"
    assert Path(download.path()).read_bytes() == png

    page.get_by_test_id("view-again").click()
    expect(page.locator(VIEW)).to_have_count(0)
    expect(page.locator(PROMPT)).to_have_value(prompt)
    expect(page.locator(SIZE)).to_contain_text(SMALL)
    expect(page.locator(SEED)).to_have_value("")

    open_view(page, first)
    page.get_by_test_id("view-seed").click()
    expect(page.locator(VIEW)).to_have_count(0)
    expect(page.locator(PROMPT)).to_have_value(prompt)
    expect(page.locator(SIZE)).to_contain_text(SMALL)
    expect(page.locator(SEED)).to_have_value(str(seed))

    start(page)
    wait_done(page)
    (second,) = new_ids(server, [first, *before], 1)
    expect(page.locator(ITEM)).to_have_count(shown + 2)
    assert gallery_order(page)[:2] == [second, first]
    assert image_record(server, second)["seed"] == seed
    again = image_file(server, second)
    assert pixels(again) == ((256, 256), first_pixels), "the same seed and settings made a different picture"

    open_view(page, second)
    page.get_by_test_id("view-delete").click()
    page.locator(CONFIRM).click()
    expect(page.locator(VIEW)).to_have_count(0)
    expect(page.locator(f"{ITEM}[data-id='{second}']")).to_have_count(0)
    expect(page.locator(ITEM)).to_have_count(shown + 1)
    assert api_get(server, f"/api/images/{second}").status_code == 404
    assert api_get(server, f"/api/images/{second}/file").status_code == 404
    assert image_ids(server)[0] == first


def test_cancel_a_generation_then_make_another(server: ServerProcess, page: Page) -> None:
    open_images(page, server)
    before = image_ids(server)
    shown = page.locator(ITEM).count()
    page.locator(PROMPT).fill("a slow picture of a snail")
    choose(page, SIZE, SMALL)
    set_steps(page, 8)
    start(page)
    text = page.locator(PROGRESS_TEXT)
    expect(text).to_have_text(re.compile(r"^Step [1-7] of 8 · "), timeout=GENERATION_TIMEOUT_MS)

    pressed = time.monotonic()
    page.locator(CANCEL).click()
    expect(text).to_have_text(re.compile(r"^Cancelled after step [1-8] of 8\.$"), timeout=CANCEL_TIMEOUT_MS)
    took = time.monotonic() - pressed
    assert took < CANCEL_PROMPT_S, f"the generation took {took:.1f} s to stop"
    expect(page.locator(GENERATE)).to_be_visible()
    expect(page.locator(CANCEL)).to_be_hidden()
    expect(page.locator(PREVIEW)).to_be_hidden()
    expect(page.locator(ITEM)).to_have_count(shown)
    assert image_ids(server) == before
    time.sleep(2)  # nothing arrives late either
    assert image_ids(server) == before
    expect(page.locator(ITEM)).to_have_count(shown)
    expect(text).to_have_text(re.compile(r"^Cancelled after "))

    set_steps(page, 1)
    start(page)
    expect(page.locator(CANCEL)).to_be_visible()
    wait_done(page)
    (made,) = new_ids(server, before, 1)
    expect(page.locator(ITEM)).to_have_count(shown + 1)
    assert gallery_order(page)[0] == made
    assert image_record(server, made)["steps"] == 1


def test_batch_of_two_and_delete_both_at_once(server: ServerProcess, page: Page) -> None:
    clear_gallery(server)
    open_images(page, server)
    expect(page.locator(ITEM)).to_have_count(0)
    expect(page.locator(EMPTY)).to_be_visible()
    expect(page.locator(EMPTY)).to_have_text("Pictures you make appear here, newest first.")

    page.locator(PROMPT).fill("two small boats")
    choose(page, SIZE, SMALL)
    choose(page, BATCH, "2")
    start(page)
    done = wait_done(page)
    assert " a picture" in done, f"a batch's time per picture is not shown: {done!r}"
    ids = new_ids(server, [], 2)
    expect(page.locator(ITEM)).to_have_count(2)
    expect(page.locator(EMPTY)).to_be_hidden()
    live = gallery_order(page)
    assert sorted(live) == sorted(ids)
    seeds = [image_record(server, i)["seed"] for i in live]
    assert seeds[0] == seeds[1] + 1, f"the batch's last picture is not on top, as the gallery lists it: {seeds}"
    page.reload()
    wait_built(page)
    assert gallery_order(page) == live, "the batch's order changed when the page was loaded again"

    expect(page.locator(CHECK)).to_have_count(2)
    for check in page.locator(CHECK).all():
        expect(check).to_be_hidden()
    page.locator(SELECT).click()
    expect(page.locator(SELECT)).to_contain_text("Done")
    expect(page.locator(DELETE_SELECTED)).to_be_hidden()
    checks = page.locator(CHECK)
    checks.nth(0).click()
    expect(page.locator(DELETE_SELECTED)).to_be_visible()
    expect(page.locator(DELETE_SELECTED)).to_contain_text("Delete 1")
    page.locator(ITEM).nth(1).locator("img").click()  # in select mode a picture does not open
    expect(page.locator(VIEW)).to_have_count(0)
    checks.nth(1).click()
    expect(page.locator(DELETE_SELECTED)).to_contain_text("Delete 2")
    page.locator(DELETE_SELECTED).click()
    expect(page.get_by_text("Delete 2 pictures?")).to_be_visible()
    page.locator(CONFIRM).click()

    expect(page.locator(ITEM)).to_have_count(0)
    expect(page.locator(EMPTY)).to_be_visible()
    expect(page.locator(SELECT)).to_contain_text("Select")
    expect(page.locator(DELETE_SELECTED)).to_be_hidden()
    for image_id in ids:
        assert api_get(server, f"/api/images/{image_id}").status_code == 404
        assert api_get(server, f"/api/images/{image_id}/file").status_code == 404
    assert image_ids(server) == []

    page.reload()
    wait_built(page)
    expect(page.locator(EMPTY)).to_be_visible()
    expect(page.locator(ITEM)).to_have_count(0)


def test_start_from_a_picture(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    open_images(page, server)
    before = image_ids(server)
    page.locator(PROMPT).fill("a red wall, repainted")
    choose(page, SIZE, SMALL)
    open_more(page)
    expect(page.locator(STRENGTH)).to_be_hidden()
    expect(page.locator(SOURCE_THUMB)).to_have_count(0)

    pick_source(page, source_png(tmp_path / "red-wall.png"))
    thumb = page.locator(f"{SOURCE_THUMB} img")
    expect(thumb).to_be_visible(timeout=UPLOAD_TIMEOUT_MS)
    page.wait_for_function(IMAGE_LOADED_JS, arg=thumb.element_handle())
    match = ATTACHMENT_THUMB.match(thumb.get_attribute("src") or "")
    assert match, f"the starting picture's thumbnail is {thumb.get_attribute('src')!r}"
    source_id = match.group(1)
    attachment = api_get(server, f"/api/attachments/{source_id}")
    assert attachment.status_code == 200, attachment.text
    assert (attachment.json()["width"], attachment.json()["height"]) == (300, 200)

    strength = page.locator(STRENGTH)
    expect(strength).to_be_visible()
    expect(strength).to_have_attribute("aria-valuenow", "0.75")
    expect(page.get_by_text("Change 75 %")).to_be_visible()
    track = strength.locator(".q-slider__track-container")
    for value in ("0.7", "0.65", "0.6", "0.55", "0.5"):  # a key at a time, watching the slider
        track.press("ArrowLeft")
        expect(strength).to_have_attribute("aria-valuenow", value)
    expect(page.get_by_text("Change 50 %")).to_be_visible()

    start(page)
    wait_done(page)
    (made,) = new_ids(server, before, 1)
    expect(page.locator(f"{ITEM}[data-id='{made}']")).to_have_count(1)
    assert gallery_order(page)[0] == made
    record = image_record(server, made)
    assert record["source_image"] == source_id, record
    assert record["strength"] == pytest.approx(0.5), record
    png = image_file(server, made)
    assert pixels(png)[0] == (256, 256)
    assert png_text(png).get("strength") == "0.5"
    expect(thumb).to_have_attribute("src", f"/api/attachments/{source_id}/thumb")  # kept for another go

    open_view(page, made)
    page.get_by_test_id("view-source").click()
    expect(page.locator(VIEW)).to_have_count(0)
    expect(thumb).to_have_attribute("src", f"/api/images/{made}/thumb")
    page.wait_for_function(IMAGE_LOADED_JS, arg=thumb.element_handle())
    expect(strength).to_be_visible()
    expect(page.locator(SOURCE_THUMB)).to_have_count(1)

    page.locator(SOURCE_CLEAR).click()
    expect(page.locator(SOURCE_THUMB)).to_have_count(0)
    expect(strength).to_be_hidden()


def test_reload_finds_the_running_generation(server: ServerProcess, page: Page) -> None:
    open_images(page, server)
    before = image_ids(server)
    shown = page.locator(ITEM).count()
    prompt = page.locator(PROMPT)
    prompt.fill("a long exposure of the sea")
    choose(page, SIZE, SMALL)
    set_steps(page, 8)
    start(page, keyboard=True)
    text = page.locator(PROGRESS_TEXT)
    expect(text).to_have_text(re.compile(r"^Step \d of 8 · "), timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator(CANCEL)).to_be_visible()
    match = STEP_TEXT.match(text.inner_text())
    step_before = int(match.group(1)) if match else 0

    page.reload()
    wait_built(page)
    expect(text).to_have_text(re.compile(r"^Step \d of 8 · "))
    match = STEP_TEXT.match(text.inner_text())
    assert match and int(match.group(1)) >= step_before, f"{text.inner_text()!r} after step {step_before}"
    expect(page.locator(CANCEL)).to_be_visible()
    expect(page.locator(GENERATE)).to_be_hidden()
    expect(page.locator(ITEM)).to_have_count(shown)

    wait_done(page, LONG_GENERATION_TIMEOUT_MS)
    expect(page.locator(PROGRESS_BAR)).to_have_attribute("aria-valuenow", "1")
    (made,) = new_ids(server, before, 1)
    expect(page.locator(ITEM)).to_have_count(shown + 1)
    assert gallery_order(page)[0] == made
    record = image_record(server, made)
    assert (record["prompt"], record["steps"], record["width"]) == ("a long exposure of the sea", 8, 256), record


def test_bad_input_starts_nothing(server: ServerProcess, page: Page) -> None:
    open_images(page, server)
    before = image_ids(server)
    generate = page.locator(GENERATE)

    generate.click()
    notified(page, "Describe the picture first.")
    page.locator(PROMPT).fill("   \n ")
    page.locator(PROMPT).press("Control+Enter")
    repeated = page.locator(NOTIFICATION).filter(has_text="Describe the picture first.")
    expect(repeated).to_have_count(1)
    expect(repeated.locator(".q-notification__badge")).to_have_text("2")  # Quasar counts a repeated message

    page.locator(PROMPT).fill("a red kite")
    open_more(page)
    page.locator(SEED).fill("abc")
    generate.click()
    notified(page, "The seed must be a whole number.")
    page.locator(SEED).fill("-3")
    generate.click()
    notified(page, "Seed: Input should be greater than or equal to 0")

    expect(page.locator(PROGRESS_TEXT)).to_have_count(0)
    expect(page.locator(CANCEL)).to_be_hidden()
    expect(generate).to_be_visible()
    assert image_ids(server) == before
    expect(page.locator(PROMPT)).to_have_value("a red kite")  # nothing the person typed is lost
    expect(page.locator(SEED)).to_have_value("-3")


def test_no_image_model(bare_server: ServerProcess, phone_page: Page) -> None:
    page = phone_page
    open_images(page, bare_server)
    missing = page.locator(NO_MODEL)
    expect(missing).to_be_visible()
    expect(missing).to_contain_text("No image model is installed.")
    expect(page.locator(PROMPT)).to_have_count(0)
    expect(page.locator(GENERATE)).to_have_count(0)
    expect(page.locator(EMPTY)).to_be_visible()
    missing.get_by_role("button", name="Get one on the Models page").click()
    expect(page).to_have_url(f"{bare_server.base}/models?tab=images")
    expect(page.get_by_test_id("tab-images")).to_have_attribute("aria-selected", "true")
