"""Opening a conversation at one message (`/c/<id>?m=<message id>`, a search hit): the branch
holding it is shown, the page scrolls to it and marks it for a moment."""

from __future__ import annotations

import json

from backend.core.errors import AppError
from backend.services import Services

__all__ = ["FLASH_MS", "scroll_to_message_js", "show_message"]

FLASH_MS = 2500


async def show_message(services: Services, conversation_id: str, message_id: str) -> str | None:
    """Makes the branch holding the message the one shown; returns what to tell the person when
    it cannot be (the message is not there, an answer is being written on another branch)."""
    shown = await services.store.messages(conversation_id)
    if any(m.id == message_id for m in shown):
        return None  # already on screen: nothing to switch, even while an answer is written
    try:
        await services.conversations.switch(conversation_id, message_id)
    except AppError as exc:
        return exc.message
    return None


def scroll_to_message_js(message_id: str) -> str:
    """Scrolls the message into view once the page has drawn it (it may arrive after this runs)
    and marks it briefly. The id is passed as a JSON string, never as code."""
    return f"""(() => {{
  const id = {json.dumps(message_id)};
  let tries = 0;
  const look = () => {{
    const el = document.querySelector(`[data-message-id="${{CSS.escape(id)}}"]`);
    if (!el) {{ if (++tries < 50) setTimeout(look, 100); return; }}
    el.scrollIntoView({{block: 'center'}});
    el.classList.add('gl-flash');
    setTimeout(() => el.classList.remove('gl-flash'), {FLASH_MS});
  }};
  look();
}})()"""
