"""Voice in a real Chromium against a real `gridless serve`: dictation into the message box,
answers read aloud, the Transcripts page, the device recorder on plain http, and bad files.

The microphone is Chromium's fake capture device playing a sentence that Piper speaks at the
start of the session, once, with a second of silence either side. Transcripts come from the
bundled Whisper model, so they are compared by word error rate, not letter for letter.
"""

from __future__ import annotations

import re
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, expect

from tests.audiofiles import wer
from tests.server import ServerProcess

from .conftest import CHROMIUM, CHROMIUM_ARGS, wait_live
from .test_chat import ASSISTANT, COMPOSER, SEND, USER, send, sign_in, wait_complete

pytestmark = pytest.mark.e2e

SENTENCE = "What is the capital of France?"
MAX_WER = 0.3
TRANSCRIBE_TIMEOUT_MS = 60_000  # upload, model load and decoding, on a possibly busy machine
SPEECH_TIMEOUT_MS = 60_000  # from the speaker tap to the first sound, on a possibly busy machine

MIC = "[data-testid=mic]"
MIC_STATUS = "[data-testid=mic-status]"
MIC_TEXT = "[data-testid=mic-text]"
SPEAK = "[data-testid=speak]"
AUTO_READ = "[data-testid=auto-read]"
UPLOAD_INPUT = "[data-testid=transcribe-file]"
EMPTY = "[data-testid=transcripts-empty]"

FORCE_PLAIN_HTTP = "Object.defineProperty(window, 'isSecureContext', {get: () => false, configurable: true})"

# the speaker's state at the moment the first sound is scheduled (it notes when that was, in ms after the tap)
FIRST_AUDIO_JS = """el => el.dataset.firstAudioMs && {
  ms: Number(el.dataset.firstAudioMs), state: el.dataset.state, icon: el.querySelector('.q-icon').textContent,
}"""

# the dictation's outcome: 'done' (or 'idle' once the done note went away) with text, or 'error'
DICTATION_OUTCOME_JS = """([status, box]) => {
  const state = document.querySelector(status)?.dataset.state;
  const value = document.querySelector(box)?.value ?? '';
  if (state === 'error' || state === 'done' || (state === 'idle' && value.trim())) return {state, value};
  return null;
}"""

FETCH_JS = """async (src) => {
  const r = await fetch(src, {credentials: 'same-origin'});
  return {status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength};
}"""


# speech for the fake microphone -------------------------------------------------------------------

@dataclass(frozen=True)
class Spoken:
    path: Path
    text: str
    seconds: float  # the whole file, silence included


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    """SENTENCE spoken by the bundled Piper voice as 16-bit mono WAV, a second of silence either side."""
    from piper import PiperVoice

    from backend.models.local import bundled_voice

    model = bundled_voice()
    if model is None:
        pytest.fail("the bundled Piper voice is not installed (see requirements/bundled-models.txt)")
    voice = PiperVoice.load(str(model))
    rate = voice.config.sample_rate
    pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(SENTENCE))
    silence = b"\0\0" * rate
    path = tmp_path_factory.mktemp("voice") / "question.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence + pcm + silence)
    return Spoken(path=path, text=SENTENCE, seconds=(len(pcm) // 2 + 2 * rate) / rate)


@pytest.fixture(scope="module")
def browser(playwright: Playwright, spoken: Spoken) -> Iterator[Browser]:
    """This module's own Chromium, whose microphone plays `spoken` once."""
    if not CHROMIUM.exists():
        pytest.skip("end-to-end tests need Debian's chromium at /usr/bin/chromium")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken.path}%noloop"])
    yield browser
    browser.close()


# helpers ------------------------------------------------------------------------------------------

def assert_heard(text: str, where: str) -> None:
    error = wer(text, SENTENCE)
    print(f"{where}: {text.strip()!r} (word error rate {error:.2f})")
    assert error <= MAX_WER, f"{where}: heard {text!r} for {SENTENCE!r} (word error rate {error:.2f})"


def dictation_outcome(page: Page) -> dict[str, Any]:
    handle = page.wait_for_function(DICTATION_OUTCOME_JS, arg=[MIC_STATUS, COMPOSER], timeout=TRANSCRIBE_TIMEOUT_MS)
    outcome: dict[str, Any] = handle.json_value()
    return outcome


def wait_first_audio(page: Page, speak: Locator) -> dict[str, Any]:
    """Until the page starts playing an answer; the speaker must show that it plays."""
    handle = page.wait_for_function(FIRST_AUDIO_JS, arg=speak.element_handle(), timeout=SPEECH_TIMEOUT_MS)
    first_audio: dict[str, Any] = handle.json_value()
    assert first_audio["ms"] > 0, first_audio
    assert (first_audio["state"], first_audio["icon"]) == ("playing", "stop"), \
        f"the speaker did not show it was playing: {first_audio}"
    return first_audio


def recording_seconds(page: Page) -> int:
    text = page.locator(MIC_TEXT).inner_text()
    match = re.search(r"Recording (\d+):(\d\d)", text)
    assert match, f"the status does not show a recording clock: {text!r}"
    return int(match.group(1)) * 60 + int(match.group(2))


def stored(server: ServerProcess) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.base}/api/transcripts", headers=server.headers(), timeout=10)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def media_files(server: ServerProcess) -> list[Path]:
    media = server.data_dir / "media"
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def open_transcripts(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.base}/transcripts")
    expect(page.locator("[data-testid=transcribe-upload]")).to_be_visible()
    wait_live(page)


@pytest.fixture
def plain_http_context(context: BrowserContext) -> BrowserContext:
    """A profile whose pages believe they are not a secure context, as on a tablet over plain http."""
    context.add_init_script(FORCE_PLAIN_HTTP)
    return context


# tests --------------------------------------------------------------------------------------------

def test_dictate_send_and_hear_the_answer(server: ServerProcess, page: Page, spoken: Spoken) -> None:
    sign_in(page, server)
    mic, status, box = page.locator(MIC), page.locator(MIC_STATUS), page.locator(COMPOSER)
    expect(status).to_be_hidden()

    mic.click()
    expect(status).to_have_attribute("data-state", "recording", timeout=10_000)
    recording_since = time.monotonic()
    expect(mic).to_have_attribute("data-state", "recording")
    expect(status).to_be_visible()
    expect(page.locator(MIC_TEXT)).to_have_text(re.compile(r"^Recording \d+:\d\d"))
    first = recording_seconds(page)
    page.wait_for_timeout(max(1200, (spoken.seconds + 1.0 - (time.monotonic() - recording_since)) * 1000))
    later = recording_seconds(page)
    assert later > first, f"the recording clock did not move ({first} s, then {later} s)"
    assert later >= int(spoken.seconds), f"the clock shows {later} s after {spoken.seconds + 1:.1f} s of recording"
    expect(page.locator(MIC_TEXT)).to_contain_text("tap to stop")
    expect(mic).to_have_attribute("data-state", "recording")

    stopped = time.perf_counter()
    mic.click()
    page.wait_for_function("sel => document.querySelector(sel).value.trim() !== ''", arg=COMPOSER,
                           timeout=TRANSCRIBE_TIMEOUT_MS)
    to_first_text = time.perf_counter() - stopped
    outcome = dictation_outcome(page)
    to_done = time.perf_counter() - stopped
    print(f"\ndictation: stop tap → first text in the box {to_first_text * 1000:.0f} ms, "
          f"→ transcript complete {to_done * 1000:.0f} ms")
    assert outcome["state"] in ("done", "idle"), f"dictation ended in {outcome}"
    assert_heard(box.input_value(), "the message box")
    expect(mic).not_to_have_attribute("data-state", re.compile("recording|transcribing|error"))
    assert [t["name"] for t in stored(server)] == ["Recording"]

    text = box.input_value().strip()
    page.locator(SEND).click()
    expect(page.locator(USER).last).to_have_text(text)
    expect(box).to_have_value("")
    answer = wait_complete(page)
    print(f"answer: {len(answer)} characters")
    expect(page.locator(ASSISTANT)).to_have_count(1)

    speak = page.locator(SPEAK).last
    expect(speak).to_be_visible()
    assert speak.evaluate("el => el.dataset.state ?? 'idle'") == "idle"
    assert speak.evaluate("el => el.dataset.firstAudioMs ?? null") is None
    clicked = time.perf_counter()
    speak.click()
    first_audio = wait_first_audio(page, speak)
    print(f"reading aloud: tap → first audio {(time.perf_counter() - clicked) * 1000:.0f} ms "
          f"(page measured {first_audio['ms']:.0f} ms)")

    expect(speak).to_have_attribute("data-state", "playing")  # still reading
    speak.click()  # tapping again stops it
    expect(speak).to_have_attribute("data-state", "idle")
    expect(speak.locator(".q-icon")).to_have_text("volume_up")
    page.wait_for_timeout(300)
    expect(speak).to_have_attribute("data-state", "idle")


def test_auto_read_reads_new_answers(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    switch = page.locator(AUTO_READ)
    expect(switch).not_to_have_class(re.compile(r"\bgl-on\b"))
    switch.click()
    expect(switch).to_have_class(re.compile(r"\bgl-on\b"))

    send(page, "Say hello.")
    wait_complete(page)
    speak = page.locator(SPEAK).last
    first_audio = wait_first_audio(page, speak)  # nobody tapped the speaker
    print(f"\nread aloud by itself: first audio {first_audio['ms']:.0f} ms after the page asked for it")
    speak.click()
    expect(speak).to_have_attribute("data-state", "idle")

    page.reload()  # the choice belongs to this browser, and stays
    wait_live(page)
    expect(switch).to_have_class(re.compile(r"\bgl-on\b"))
    switch.click()
    expect(switch).not_to_have_class(re.compile(r"\bgl-on\b"))
    page.reload()  # and switched off, it stays off
    wait_live(page)
    expect(page.locator(SPEAK).last).to_be_visible()
    expect(switch).not_to_have_class(re.compile(r"\bgl-on\b"))


def test_transcripts_page_lists_plays_and_deletes(server: ServerProcess, page: Page, spoken: Spoken) -> None:
    sign_in(page, server)
    open_transcripts(page, server)
    expect(page.locator(EMPTY)).to_be_visible()

    page.locator(UPLOAD_INPUT).set_input_files(spoken.path)
    deadline = time.monotonic() + TRANSCRIBE_TIMEOUT_MS / 1000
    while not (items := stored(server)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(items) == 1, items
    card = page.locator(f"[data-testid=transcript-{items[0]['id']}]")
    expect(card).to_be_visible()
    expect(card).to_contain_text("question.wav")
    expect(page.locator(EMPTY)).to_have_count(0)
    text = card.locator("[data-testid=transcript-text]")
    expect(text).to_be_visible(timeout=TRANSCRIBE_TIMEOUT_MS)
    expect(card.locator("[data-testid=transcript-state]")).to_have_count(0, timeout=TRANSCRIBE_TIMEOUT_MS)
    assert_heard(text.inner_text(), "the transcript card")

    src = card.locator("audio").get_attribute("src")
    assert src, "the card's player has no source"
    audio = page.evaluate(FETCH_JS, src)
    assert audio["status"] == 200, audio
    assert (audio["type"] or "").startswith("audio/"), audio
    assert audio["size"] == spoken.path.stat().st_size, audio

    card.locator("[data-testid=transcript-delete]").click()
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Delete “question.wav”?")
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(card).to_have_count(0)
    expect(page.locator(EMPTY)).to_be_visible()
    assert stored(server) == []
    assert media_files(server) == [], "the recording's file was left behind"
    assert page.evaluate(FETCH_JS, src)["status"] == 404


def test_plain_http_falls_back_to_the_device_recorder(server: ServerProcess, plain_http_context: BrowserContext,
                                                      spoken: Spoken) -> None:
    page = plain_http_context.new_page()
    sign_in(page, server)
    assert page.evaluate("window.isSecureContext") is False
    mic = page.locator(MIC)

    with page.expect_file_chooser(timeout=10_000) as chooser_info:
        mic.click()
    chooser = chooser_info.value
    assert not chooser.is_multiple()
    assert "audio/*" in (chooser.element.get_attribute("accept") or "")
    assert chooser.element.get_attribute("capture") is not None, "the file input does not ask for the recorder"
    expect(page.locator(MIC_STATUS)).to_be_hidden()  # nothing recorded in the page itself

    chooser.set_files(spoken.path)
    outcome = dictation_outcome(page)
    assert outcome["state"] in ("done", "idle"), f"dictation ended in {outcome}"
    assert_heard(page.locator(COMPOSER).input_value(), "the message box")
    assert [t["name"] for t in stored(server)] == ["question.wav"]


def test_bad_audio_file_shows_a_clear_error(server: ServerProcess, plain_http_context: BrowserContext,
                                            tmp_path: Path) -> None:
    page = plain_http_context.new_page()
    sign_in(page, server)
    fake = tmp_path / "voice-note.wav"
    fake.write_bytes(page.screenshot())  # a PNG image with an audio name

    with page.expect_file_chooser(timeout=10_000) as chooser_info:
        page.locator(MIC).click()
    chooser_info.value.set_files(fake)
    outcome = dictation_outcome(page)
    assert outcome["state"] == "error", f"a PNG was taken for audio: {outcome}"
    expect(page.locator(MIC_TEXT)).to_have_text("This is a PNG image, not an audio recording.")
    expect(page.locator(MIC)).to_have_attribute("data-state", "error")
    expect(page.locator(MIC_STATUS)).to_be_visible()
    expect(page.locator(COMPOSER)).to_have_value("")

    open_transcripts(page, server)
    page.locator(UPLOAD_INPUT).set_input_files(fake)
    expect(page.locator(".q-notification")).to_contain_text("This is a PNG image, not an audio recording.")
    expect(page.locator(EMPTY)).to_be_visible()
    assert stored(server) == []
    assert media_files(server) == [], "the refused file was left on disk"
