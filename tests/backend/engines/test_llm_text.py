from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backend.engines.llm_text import StopStreamer


def feed_all(streamer: StopStreamer, pieces: list[bytes]) -> str:
    return "".join(streamer.feed(p) for p in pieces) + streamer.flush()


def test_plain_text_passes_through() -> None:
    s = StopStreamer([])
    assert s.feed(b"Hello") == "Hello"
    assert s.feed(b" world") == " world"
    assert s.flush() == ""


def test_split_utf8_is_held_until_complete() -> None:
    s = StopStreamer([])
    euro = "€".encode()
    assert s.feed(euro[:1]) == ""
    assert s.feed(euro[1:]) == "€"


def test_stop_string_across_pieces_is_cut() -> None:
    s = StopStreamer(["END"])
    out = feed_all(s, [b"one two E", b"N", b"D three"])
    assert out == "one two "
    assert s.stopped


def test_false_start_of_stop_string_is_released() -> None:
    s = StopStreamer(["END"])
    assert s.feed(b"EN") == ""
    assert s.feed(b"ough") == "ENough"


@given(st.text(max_size=60), st.integers(min_value=1, max_value=7))
def test_chunking_never_changes_the_text(text: str, size: int) -> None:
    data = text.encode()
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    stop = "<<STOP>>"
    s = StopStreamer([stop])
    assert feed_all(s, [*pieces, stop.encode(), b"tail"]) == text.split(stop)[0]
