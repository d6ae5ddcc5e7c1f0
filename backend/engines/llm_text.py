"""Turning a stream of token bytes into text deltas, honouring stop strings."""

from __future__ import annotations

import codecs

__all__ = ["StopStreamer", "held_back"]


def held_back(text: str, markers: list[str] | tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is the start of one of `markers`: text to hold
    back until it is known whether a marker follows."""
    longest = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:n]):
                longest = n
                break
    return longest


class StopStreamer:
    """Feeds token bytes in, gets safe-to-show text out.

    Multi-byte UTF-8 characters split across tokens are held until complete, and text
    that could be the start of a stop string is held back until it is known not to be.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.text = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """Returns the text that may be shown now ('' while held back or after a stop)."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(piece)
        if not self.stops:
            out, self._pending = self._pending, ""
            self.text += out
            return out
        for stop in self.stops:
            at = self._pending.find(stop)
            if at >= 0:
                self.stopped = True
                out = self._pending[:at]
                self._pending = ""
                self.text += out
                return out
        keep = held_back(self._pending, self.stops)
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep:]
        self.text += out
        return out

    def flush(self) -> str:
        """At the end of generation: whatever is left was not a stop string."""
        if self.stopped:
            return ""
        out = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        self.text += out
        return out
