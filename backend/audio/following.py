"""Reading an answer aloud while it is still being written.

`SpokenPieces` cuts a growing Markdown answer into pieces as soon as they are whole: a
sentence once its end mark and the space after it have arrived, a line (a list item, a
heading) once it ends, and — so that the first sound comes early — a first clause once a
comma is followed by the next word. Nothing inside a code block is cut or read (the block
is said to be left out once it closes). `follow_aloud` speaks each piece with the voice
engine as it comes, and ends when the answer has ended and its last piece is spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

from ..core.errors import AppError, ErrorCode
from ..engines.voice import SpeakRequest, speakable
from ..runtime.host import EngineHost
from .engines import spoken

__all__ = ["SpokenPieces", "follow_aloud"]

_BOUNDARY = re.compile(r"[.!?…][\"'”’»)\]]*\s+|\n+")
_CLAUSE = re.compile(r"[,;:—][\"'”’»)]*\s+(?=\S)")
_ITEM_NUMBER = re.compile(r"[ \t]*\d+")
"""What stands before the period of a numbered list item ("2. Add the pasta."): not a sentence end."""
_FENCE = "```"
FIRST_CLAUSE_MIN = 12
"""A first clause shorter than this (characters) waits for more: "Sure, " is not worth a pause."""
LONGEST_WAIT = 200
"""Text without a sentence or clause end this long (characters) is cut at its last space rather
than waited on (a list of words, or a model that writes without stops)."""
POLL_S = 0.03


class SpokenPieces:
    """Feed it the whole answer so far, each time; it returns the pieces that became whole."""

    def __init__(self) -> None:
        self._taken = 0
        self._spoken_any = False

    def feed(self, text: str, *, final: bool = False) -> list[str]:
        cut = len(text) if final else self._last_boundary(text)
        if cut <= self._taken:
            return []
        piece = text[self._taken:cut]
        self._taken = cut
        said = re.sub(r"([!?…,;:])\.(?=\s|$)", r"\1", speakable(piece))  # "Why?." from a line's end
        if not said or not re.search(r"\w", said):
            return []
        self._spoken_any = True
        return [said]

    def _last_boundary(self, text: str) -> int:
        """Where the text can be cut now: after its last whole sentence or line outside a code
        block (or after a first clause, before anything was spoken)."""
        outside = _outside_code(text)
        best = self._taken
        for match in _BOUNDARY.finditer(text, self._taken):
            line = text.rfind("\n", 0, match.start()) + 1
            if outside(match.start()) and not _ITEM_NUMBER.fullmatch(text, line, match.start()):
                best = match.end()
        if best == self._taken and not self._spoken_any:
            for match in _CLAUSE.finditer(text, self._taken):
                if match.start() - self._taken >= FIRST_CLAUSE_MIN and outside(match.start()):
                    return match.end()
        if best == self._taken and len(text) - self._taken >= LONGEST_WAIT:
            space = text.rfind(" ", self._taken, len(text))
            if space > self._taken and outside(space):
                return space + 1
        return best


def _outside_code(text: str) -> Callable[[int], bool]:
    """Whether a position is outside every code block (an unclosed fence runs to the end)."""
    fences = [m.start() for m in re.finditer(re.escape(_FENCE), text)]
    spans = [(fences[i], fences[i + 1] + len(_FENCE) if i + 1 < len(fences) else len(text) + 1)
             for i in range(0, len(fences), 2)]
    return lambda at: not any(start <= at < end for start, end in spans)


async def follow_aloud(voice: EngineHost, current: Callable[[], tuple[str, bool]], *, speed: float = 1.0,
                       choose_voice: Callable[[str], str | None] | None = None) -> AsyncIterator[tuple[int, bytes]]:
    """The sample rate and PCM of an answer read aloud as it is written. `current()` gives the
    answer's text so far and whether it has ended; `choose_voice(first piece)` the voice (a
    model id, None for the active one), chosen once so an answer keeps one voice. A piece
    with nothing to say is skipped; a voice that fails ends the reading with its error."""
    feed = SpokenPieces()
    voice_id: str | None = None
    chosen = False
    while True:
        text, ended = current()
        for piece in feed.feed(text, final=ended):
            if not chosen:
                voice_id, chosen = (choose_voice(text) if choose_voice else None), True
            try:
                rate, pcm = await spoken(voice, SpeakRequest(text=piece, speed=speed), model_id=voice_id)
            except AppError as exc:
                if exc.code in (ErrorCode.NOTHING_TO_SAY, ErrorCode.BAD_REQUEST):
                    continue
                raise
            async with contextlib.aclosing(pcm) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    yield rate, chunk
        if ended:
            return
        await asyncio.sleep(POLL_S)
