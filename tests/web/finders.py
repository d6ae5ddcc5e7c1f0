"""Finding what a person sees on a simulated page, and tapping it.

The pages mark elements with `data-testid` props for the browser tests; NiceGUI's own finders
look at markers and content instead, so these helpers read the same props here and the two
kinds of tests name things alike.

`user.open` can return before a page is complete: a page's timer waits for the browser to
connect, and NiceGUI then answers with what is built so far while the rest of the page (what
it reads from the database) is still on its way, as in a browser. So a test waits for what it
looks for (`sees`, `shown`, `wait_for`) before judging what is not there.

Dialogs get their own helpers: a closed dialog stays on the page (the browser hides it), where
NiceGUI's `should_see` would still find what it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from nicegui import Client, ElementFilter, ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

__all__ = ["arrived", "by_testid", "click", "dialog", "find_testid", "inside", "no_dialog", "notified", "press",
           "sees", "shown", "text_of", "wait_for"]

T = TypeVar("T", bound=ui.element)


def inside(user: User, container: ui.element | None, kind: type[T], content: str | None = None) -> list[T]:
    """Visible elements of a kind (showing `content`) within `container` (or the whole page), in page order."""
    with user:
        found = ElementFilter(kind=kind, content=content, only_visible=True, local_scope=False)
        return list(found.within(instance=container) if container is not None else found)


def by_testid(user: User, testid: str, kind: type[T] = ui.element,  # type: ignore[assignment]
              within: ui.element | None = None) -> list[T]:
    """Visible elements with this `data-testid`, in page order."""
    return [e for e in inside(user, within, kind) if e.props.get("data-testid") == testid]


def find_testid(user: User, testid: str, kind: type[T] = ui.element,  # type: ignore[assignment]
                within: ui.element | None = None) -> T:
    """The one element with this `data-testid`; fails unless there is exactly one."""
    found = by_testid(user, testid, kind, within)
    assert len(found) == 1, f"expected one element with data-testid={testid}, found {len(found)}:\n" \
                            f"{user.current_layout}"
    return found[0]


async def sees(user: User, text: str) -> None:
    """Until an element showing `text` is on the page (NiceGUI's `should_see` gives up after 0.3 s)."""
    await wait_for(user, lambda: inside(user, None, ui.element, text), f"something showing {text!r}")


async def shown(user: User, testid: str, kind: type[T] = ui.element,  # type: ignore[assignment]
                within: ui.element | None = None) -> T:
    """The one element with this `data-testid`, once the page shows it."""
    await wait_for(user, lambda: by_testid(user, testid, kind, within), f"data-testid={testid}")
    return find_testid(user, testid, kind, within)


def text_of(user: User, testid: str) -> str:
    """The text of the one label with this `data-testid`."""
    return find_testid(user, testid, ui.label).text


def click(user: User, element: ui.element) -> None:
    """Tap this one element, as a person would."""
    UserInteraction(user, {element}, None).click()


def press(user: User, within: ui.element | None, label: str) -> None:
    """Tap the one button labelled `label` within `within` (or on the page)."""
    buttons = [b for b in inside(user, within, ui.button) if b.text == label or b.props.get("label") == label]
    assert len(buttons) == 1, f"expected one button '{label}', found {len(buttons)}:\n{within or user.current_layout}"
    click(user, buttons[0])


async def wait_for(user: User, condition: Callable[[], object], what: str, tries: int = 50) -> None:
    """Until `condition()` is true (a page's timer or a background task may need a moment)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}:\n{user.current_layout}")


async def notified(user: User, text: str) -> str:
    """The notification containing `text`, once the page has shown it."""
    await wait_for(user, lambda: user.notify.contains(text), f"a notification saying {text!r} "
                                                                  f"(shown: {user.notify.messages})")
    return next(m for m in user.notify.messages if text in m)


async def arrived(user: User, path: str, left: Client | None) -> None:
    """Until the page at `path` replaced the page `left`: the simulated `ui.navigate.to` opens
    it in the background."""
    await wait_for(user, lambda: user.client is not left and user.back_history[-1:] == [path], f"the page {path}")


def _open_dialogs(user: User, text: str) -> list[ui.dialog]:
    with user:
        dialogs = [d for d in ElementFilter(kind=ui.dialog, local_scope=False) if d.value]
    return [d for d in dialogs if inside(user, d, ui.element, text)]


async def dialog(user: User, text: str) -> ui.dialog:
    """The open dialog showing `text`, once it has opened."""
    await wait_for(user, lambda: _open_dialogs(user, text), f"a dialog showing {text!r}")
    [shown] = _open_dialogs(user, text)
    return shown


async def no_dialog(user: User, text: str) -> None:
    """Until no open dialog shows `text`."""
    await wait_for(user, lambda: not _open_dialogs(user, text), f"the dialog showing {text!r} to close")
