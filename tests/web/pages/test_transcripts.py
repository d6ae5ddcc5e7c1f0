"""The Transcripts page: stored recordings newest first, with their text or why there is none; delete."""

from __future__ import annotations

import time
from pathlib import Path

from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from backend.storage.transcripts import Transcript, TranscriptState
from tests.audiofiles import write_wav

from ..finders import by_testid, click, dialog, find_testid, inside, no_dialog, press, shown, wait_for


async def stored(services: Services, tmp_path: Path, *, name: str, minutes_ago: float,
                 state: TranscriptState = TranscriptState.DONE, text: str = "", error: str | None = None) -> Transcript:
    """A transcript as the service leaves one, with its recording in the media folder."""
    audio = services.media.new_name("audio", "wav")
    await services.media.write_bytes(audio, write_wav(tmp_path / f"{name}.wav", 1.0).read_bytes())
    when = time.time() - minutes_ago * 60
    return await services.transcripts.store.add(Transcript(
        audio=audio, mime="audio/wav", bytes=services.media.path(audio).stat().st_size, name=name, duration=95.0,
        language="en", state=state, text=text, error=error, created_at=when, updated_at=when))


def cards(user: User) -> list[ui.card]:
    return [c for c in inside(user, None, ui.card) if str(c.props.get("data-testid", "")).startswith("transcript-")]


def card_of(user: User, transcript: Transcript) -> ui.card:
    return find_testid(user, f"transcript-{transcript.id}", ui.card)


def texts_in(user: User, card: ui.card) -> list[str]:
    return [label.text for label in inside(user, card, ui.label)]


async def test_no_recordings_yet(owner: User) -> None:
    await owner.open("/transcripts")
    assert "No recordings yet" in (await shown(owner, "transcripts-empty", ui.label)).text


async def test_recordings_are_listed_newest_first_with_their_text(owner: User, services: Services,
                                                                  tmp_path: Path) -> None:
    shopping = await stored(services, tmp_path, name="Shopping list", minutes_ago=30, text="Milk, eggs and bread.")
    silent = await stored(services, tmp_path, name="Pocket recording", minutes_ago=20)
    broken = await stored(services, tmp_path, name="Voice memo", minutes_ago=10, state=TranscriptState.ERROR,
                          error="The speech model could not be loaded.")
    await owner.open("/transcripts")
    await wait_for(owner, lambda: len(cards(owner)) == 3, "three recordings")
    assert [c.props["data-testid"] for c in cards(owner)] == \
        [f"transcript-{t.id}" for t in (broken, silent, shopping)]

    shopping_card = card_of(owner, shopping)
    assert "Shopping list" in texts_in(owner, shopping_card)
    assert find_testid(owner, "transcript-text", ui.label, within=shopping_card).text == "Milk, eggs and bread."
    assert any(t.endswith(" · 1:35 · EN") for t in texts_in(owner, shopping_card))
    assert by_testid(owner, "transcript-copy", within=shopping_card)

    silent_card = card_of(owner, silent)
    assert "No speech was heard." in texts_in(owner, silent_card)
    assert not by_testid(owner, "transcript-text", within=silent_card)

    broken_card = card_of(owner, broken)
    assert "The speech model could not be loaded." in texts_in(owner, broken_card)
    assert find_testid(owner, "transcript-state", ui.badge, within=broken_card).text == "failed"


async def test_deleting_a_recording_asks_and_removes_it_and_its_audio(owner: User, services: Services,
                                                                      tmp_path: Path) -> None:
    kept = await stored(services, tmp_path, name="Shopping list", minutes_ago=30, text="Milk, eggs and bread.")
    doomed = await stored(services, tmp_path, name="Voice memo", minutes_ago=10, text="Call the plumber.")
    await owner.open("/transcripts")
    await wait_for(owner, lambda: len(cards(owner)) == 2, "two recordings")

    click(owner, find_testid(owner, "transcript-delete", within=card_of(owner, doomed)))
    press(owner, await dialog(owner, "Delete “Voice memo”?"), "Cancel")
    await no_dialog(owner, "Delete “Voice memo”?")
    assert await services.transcripts.get(doomed.id) is not None
    assert len(cards(owner)) == 2

    click(owner, find_testid(owner, "transcript-delete", within=card_of(owner, doomed)))
    asked = await dialog(owner, "Delete “Voice memo”?")
    click(owner, find_testid(owner, "confirm-ok", within=asked))
    await wait_for(owner, lambda: len(cards(owner)) == 1, "the recording to leave the list")
    assert [c.props["data-testid"] for c in cards(owner)] == [f"transcript-{kept.id}"]
    assert await services.transcripts.get(doomed.id) is None
    assert not services.media.path(doomed.audio).exists()
    assert services.media.path(kept.audio).exists()
