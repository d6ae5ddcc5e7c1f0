"""The conversation drawer every page has: most recent first, open, rename, delete, new chat."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from backend.storage.conversations import Conversation

from .finders import arrived, by_testid, click, dialog, find_testid, inside, no_dialog, press, sees, text_of, wait_for

NEW_CHAT_TEXT = "Ask anything. It stays on this device."


def drawer_items(user: User) -> list[tuple[str, ui.item]]:
    """The conversations the drawer lists, top to bottom: (title, item)."""
    return [(label.text, item) for item in by_testid(user, "conversation-item", ui.item)
            for label in inside(user, item, ui.item_label)]


def drawer_titles(user: User) -> list[str]:
    return [title for title, _ in drawer_items(user)]


def drawer_item(user: User, title: str) -> ui.item:
    found = [item for shown, item in drawer_items(user) if shown == title]
    assert len(found) == 1, f"expected one conversation named {title!r} in the drawer, found {len(found)}"
    return found[0]


async def visit(user: User, path: str, conversations: int) -> None:
    """Open a chat page and wait until its drawer lists this many conversations."""
    await user.open(path)
    await wait_for(user, lambda: len(drawer_titles(user)) == conversations, f"{conversations} in the drawer")


def row_menu(user: User, title: str, action: str) -> None:
    """Tap the ⋮ beside the conversation named `title`, then `action` in its menu."""
    row = drawer_item(user, title).parent_slot.parent  # type: ignore[union-attr]
    [more] = [b for b in inside(user, row, ui.button) if b.props.get("aria-label") == "More"]
    [entry] = [e for section in inside(user, row, ui.item_section, action) for e in section.ancestors()
               if isinstance(e, ui.menu_item)]
    click(user, more)
    click(user, entry)


async def three_conversations(services: Services) -> list[Conversation]:
    """Created first to last; the first then gets a message, which makes it the most recent."""
    first = await services.store.create(title="Packing list")
    second = await services.store.create(title="Bread recipe")
    third = await services.store.create(title="Trip to Turin")
    await services.store.add_message(first.id, "user", "and a torch")
    return [first, second, third]


async def test_the_drawer_lists_conversations_most_recent_first(owner: User, services: Services) -> None:
    await owner.open("/")
    await sees(owner, "No conversations yet")
    await three_conversations(services)
    await visit(owner, "/", 3)
    assert drawer_titles(owner) == ["Packing list", "Trip to Turin", "Bread recipe"]
    await owner.should_not_see("No conversations yet")


async def test_a_conversation_opens_from_the_drawer(owner: User, services: Services) -> None:
    _, second, _ = await three_conversations(services)
    await services.store.add_message(second.id, "user", "How long should the dough rise?")
    await visit(owner, "/", 3)
    left = owner.client
    click(owner, drawer_item(owner, "Bread recipe"))
    await arrived(owner, f"/c/{second.id}", left)
    await wait_for(owner, lambda: len(drawer_titles(owner)) == 3, "the drawer")
    assert text_of(owner, "conversation-title") == "Bread recipe"
    await sees(owner, "How long should the dough rise?")
    assert [title for title, item in drawer_items(owner) if "gl-current" in item.classes] == ["Bread recipe"]


async def test_renaming_a_conversation(owner: User, services: Services) -> None:
    first, second, _ = await three_conversations(services)
    await visit(owner, f"/c/{first.id}", 3)
    row_menu(owner, "Bread recipe", "Rename")
    asked = await dialog(owner, "Rename conversation")
    [field] = inside(owner, asked, ui.input)
    assert field.value == "Bread recipe"
    field.value = "  Sourdough  "
    press(owner, asked, "Save")
    await wait_for(owner, lambda: "Sourdough" in drawer_titles(owner), "the new name in the drawer")
    assert sorted(drawer_titles(owner)) == ["Packing list", "Sourdough", "Trip to Turin"]
    renamed = await services.store.get(second.id)
    assert renamed is not None and renamed.title == "Sourdough"


async def test_renaming_the_open_conversation_renames_its_page(owner: User, services: Services) -> None:
    first, _, _ = await three_conversations(services)
    await visit(owner, f"/c/{first.id}", 3)
    row_menu(owner, "Packing list", "Rename")
    asked = await dialog(owner, "Rename conversation")
    inside(owner, asked, ui.input)[0].value = "Camping"
    press(owner, asked, "Save")
    await wait_for(owner, lambda: text_of(owner, "conversation-title") == "Camping", "the page's new title")


async def test_a_blank_name_or_cancel_keeps_the_old_one(owner: User, services: Services) -> None:
    _, second, _ = await three_conversations(services)
    await visit(owner, "/", 3)
    for answer, button in (("   ", "Save"), ("Never saved", "Cancel")):
        row_menu(owner, "Bread recipe", "Rename")
        asked = await dialog(owner, "Rename conversation")
        inside(owner, asked, ui.input)[0].value = answer
        press(owner, asked, button)
        await no_dialog(owner, "Rename conversation")
        kept = await services.store.get(second.id)
        assert kept is not None and kept.title == "Bread recipe"
        assert "Bread recipe" in drawer_titles(owner)


async def test_deleting_a_conversation_asks_first(owner: User, services: Services) -> None:
    _, second, third = await three_conversations(services)
    await visit(owner, f"/c/{third.id}", 3)
    row_menu(owner, "Bread recipe", "Delete")
    asked = await dialog(owner, "Delete “Bread recipe”?")
    press(owner, asked, "Cancel")
    await no_dialog(owner, "Delete “Bread recipe”?")
    assert await services.store.get(second.id) is not None
    assert "Bread recipe" in drawer_titles(owner)

    row_menu(owner, "Bread recipe", "Delete")
    asked = await dialog(owner, "Delete “Bread recipe”?")
    click(owner, find_testid(owner, "confirm-ok", within=asked))
    await wait_for(owner, lambda: "Bread recipe" not in drawer_titles(owner), "the conversation to leave the drawer")
    assert await services.store.get(second.id) is None
    assert drawer_titles(owner) == ["Packing list", "Trip to Turin"]
    assert text_of(owner, "conversation-title") == "Trip to Turin"  # still on the page that was open


async def test_deleting_the_open_conversation_goes_to_a_new_chat(owner: User, services: Services) -> None:
    first, _, _ = await three_conversations(services)
    await visit(owner, f"/c/{first.id}", 3)
    left = owner.client
    row_menu(owner, "Packing list", "Delete")
    click(owner, find_testid(owner, "confirm-ok", within=await dialog(owner, "Delete “Packing list”?")))
    await arrived(owner, "/", left)
    await sees(owner, NEW_CHAT_TEXT)
    assert await services.store.get(first.id) is None
    await wait_for(owner, lambda: drawer_titles(owner) == ["Trip to Turin", "Bread recipe"], "the two left")


async def test_new_chat_starts_an_empty_conversation(owner: User, services: Services) -> None:
    first, _, _ = await three_conversations(services)
    await visit(owner, f"/c/{first.id}", 3)
    await sees(owner, "and a torch")
    left = owner.client
    click(owner, find_testid(owner, "new-chat"))
    await arrived(owner, "/", left)
    await sees(owner, NEW_CHAT_TEXT)
    await owner.should_not_see("and a torch")
    assert text_of(owner, "conversation-title") == "gridless"
    assert len(await services.store.list_recent()) == 3  # nothing is stored until the first message
