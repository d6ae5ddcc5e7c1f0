"""The voice conversation's web socket: `/api/voice?conversation=<id>&language=<code>`.

The browser sends the microphone as binary messages of 16-bit mono PCM at 16 kHz, and JSON
text messages `{"type": "stop"}` (stop the answer) and `{"type": "language", "language":
"it" | null}`. The server sends JSON events (see `chat/voice_turns.py`) and the answer's
sound as binary messages: a little-endian uint32 turn number, a uint32 sample rate, then
16-bit mono PCM. The socket is opened by the owner or a paired device (the security
middleware has checked who and from where before this runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..audio.voices import voice_chooser
from ..chat.voice_turns import VoiceConversation
from ..core.errors import AppError, ErrorCode
from ..core.i18n import _
from ..engines.speech import TranscribeRequest
from ..runtime.host import EngineJob
from ..services import Services

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_TEXT_MESSAGE = 4096


@router.websocket("/api/voice")
async def voice_socket(websocket: WebSocket, conversation: str | None = None, language: str | None = None) -> None:
    services: Services = websocket.app.state.services
    await services.ready()
    await websocket.accept()

    async def send(event: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(event, ensure_ascii=False))

    async def send_audio(turn: int, rate: int, pcm: bytes) -> None:
        await websocket.send_bytes(struct.pack("<II", turn, rate) + pcm)

    if conversation is not None and await services.store.get(conversation) is None:
        await send({"type": "error", "code": ErrorCode.NOT_FOUND.value,
                    "message": _("There is no conversation with that id.")})
        await websocket.close(code=4404)
        return

    def transcribe(request: TranscribeRequest, job: EngineJob) -> Any:
        return services.speech.stream(request, job)

    session = VoiceConversation(
        conversations=services.conversations, transcribe=transcribe, voice=services.voice, media=services.media,
        conversation_id=conversation, send=send, send_audio=send_audio, choose_voice=voice_chooser(services.models),
        language=_language(language))
    _keep(asyncio.get_running_loop().create_task(_warm(services), name="voice-warm"))
    await send({"type": "listening"})
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                await session.hear(message["bytes"])
            elif message.get("text") is not None:
                await _command(session, message["text"])
    except (WebSocketDisconnect, RuntimeError):
        pass
    except AppError as exc:
        with contextlib.suppress(Exception):
            await send({"type": "error", "code": exc.code.value, "message": exc.message})
            await websocket.close(code=4400)
    finally:
        await session.close()


_warming: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    """Loading ahead is not cancelled when the socket closes (a worker cut off while it starts is
    left behind); the task is kept until it ends."""
    _warming.add(task)
    task.add_done_callback(_warming.discard)


async def _warm(services: Services) -> None:
    """Load the speech model, the voice and the chat model while the person starts to speak, so
    the first turn is answered as quickly as the next ones."""
    for host in (services.speech, services.voice, services.chat):
        try:
            await host.warm()
        except AppError as exc:  # the turn that needs it will say so
            log.info("voice conversation: %s not loaded ahead (%s)", type(host).__name__, exc.message)


def _language(code: str | None) -> str | None:
    return code if code and code.isalpha() and 2 <= len(code) <= 3 else None


async def _command(session: VoiceConversation, text: str) -> None:
    if len(text) > MAX_TEXT_MESSAGE:
        raise AppError(ErrorCode.BAD_REQUEST, "voice commands are short JSON messages")
    try:
        command = json.loads(text)
    except ValueError:
        raise AppError(ErrorCode.BAD_REQUEST, "voice commands are JSON") from None
    kind = command.get("type") if isinstance(command, dict) else None
    if kind == "stop":
        await session.stop()
    elif kind == "language":
        session.language = _language(command.get("language"))
    else:
        raise AppError(ErrorCode.BAD_REQUEST, f"unknown voice command {str(kind)[:40]!r}")
