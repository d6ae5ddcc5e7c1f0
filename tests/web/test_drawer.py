"""Organising conversations from the drawer (pin, archive, select several, show more, move to a
project), a project's page, and the versions of a message on the chat page."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User

from backend.chat.presets import preset
from backend.services import Services
from backend.storage.projects import Project
from web.components.drawer import PAGE_SIZE

from .components.test_message_jump import branched
from .finders import arrived, by_testid, click, dialog, find_testid, inside, press, sees, shown, wait_for
from .test_frame import drawer_item, drawer_titles, row_menu, three_conversations, visit


async def test_pinned_first_with_a_pin_and_archived_out_of_the_list(owner: User, services: Services) -> None:
    first, second, third = await three_conversations(services)
    await visit(owner, "/", 3)
    row_menu(owner, "Bread recipe", "Pin")
    await wait_for(owner, lambda: drawer_titles(owner)[0] == "Bread recipe", "the pinned one first")
    assert by_testid(owner, "pinned", within=drawer_item(owner, "Bread recipe"))
    assert not by_testid(owner, "pinned", within=drawer_item(owner, "Packing list"))
    assert (await services.store.get(second.id)).pinned  # type: ignore[union-attr]

    row_menu(owner, "Trip to Turin", "Archive")
    await wait_for(owner, lambda: drawer_titles(owner) == ["Bread recipe", "Packing list"], "two left")
    click(owner, find_testid(owner, "show-archived"))
    await wait_for(owner, lambda: drawer_titles(owner) == ["Trip to Turin"], "the archived one")
    row_menu(owner, "Trip to Turin", "Unarchive")
    await wait_for(owner, lambda: drawer_titles(owner) == [], "no archived one")
    click(owner, find_testid(owner, "archived-back"))
    await wait_for(owner, lambda: len(drawer_titles(owner)) == 3, "all three back")
    assert not (await services.store.get(third.id)).archived  # type: ignore[union-attr]
    assert first.id != third.id


async def test_select_several_and_delete_them_after_saying_how_many(owner: User, services: Services) -> None:
    first, second, third = await three_conversations(services)
    await visit(owner, "/", 3)
    click(owner, find_testid(owner, "select-mode"))
    (await wait_for_boxes(owner, 3))[1].value = True  # Trip to Turin
    await wait_for(owner, lambda: text_of_count(owner) == "1 selected", "one selected")
    (await wait_for_boxes(owner, 3))[2].value = True  # Bread recipe (the list was drawn again)
    await wait_for(owner, lambda: text_of_count(owner) == "2 selected", "two selected")
    click(owner, find_testid(owner, "selected-delete"))
    asked = await dialog(owner, "Delete 2 conversations?")
    click(owner, find_testid(owner, "confirm-ok", within=asked))
    await wait_for(owner, lambda: drawer_titles(owner) == ["Packing list"], "one left")
    assert await services.store.get(second.id) is None and await services.store.get(third.id) is None
    assert await services.store.get(first.id) is not None


async def wait_for_boxes(user: User, count: int) -> list[ui.checkbox]:
    await wait_for(user, lambda: len(by_testid(user, "select-conversation", ui.checkbox)) == count, "checkboxes")
    return by_testid(user, "select-conversation", ui.checkbox)


def text_of_count(user: User) -> str:
    found = by_testid(user, "selected-count", ui.label)
    return found[0].text if found else ""


async def test_the_list_starts_short_and_shows_more(owner: User, services: Services) -> None:
    for i in range(PAGE_SIZE + 5):
        await services.store.create(title=f"Chat {i}")
    await visit(owner, "/", PAGE_SIZE)
    assert drawer_titles(owner)[0] == f"Chat {PAGE_SIZE + 4}"  # the newest first
    click(owner, find_testid(owner, "show-more"))
    await wait_for(owner, lambda: len(drawer_titles(owner)) == PAGE_SIZE + 5, "all of them")
    assert not by_testid(owner, "show-more")


async def test_a_project_from_a_preset_its_chats_and_deleting_it(owner: User, services: Services) -> None:
    packing, _, _ = await three_conversations(services)
    await visit(owner, "/", 3)
    click(owner, find_testid(owner, "new-project"))
    asked = await dialog(owner, "New project")
    [translator] = [i for i in by_testid(owner, "preset", ui.item, within=asked)
                    if inside(owner, i, ui.item_label, "Translator")]
    click(owner, translator)
    expected = preset("translator")
    assert expected is not None
    assert find_testid(owner, "project-name", ui.input, within=asked).value == "Translator"
    assert find_testid(owner, "project-prompt", ui.textarea, within=asked).value == expected.system_prompt
    left = owner.client
    click(owner, find_testid(owner, "project-create", within=asked))
    [project] = await wait_projects(services, 1)
    assert project.preset == "translator" and project.settings == expected.settings
    await arrived(owner, f"/p/{project.id}", left)
    await sees(owner, "No chats in this project yet.")

    row_menu(owner, "Packing list", "Move to project…")
    asked = await dialog(owner, "Move to project")
    find_testid(owner, "move-project", ui.select, within=asked).value = project.id
    click(owner, find_testid(owner, "move-ok", within=asked))
    await wait_for(owner, lambda: owner.notify.contains("Moved to Translator"), "the move")
    assert (await services.store.get(packing.id)).project_id == project.id  # type: ignore[union-attr]

    left = owner.client
    await owner.open(f"/p/{project.id}")
    await wait_for(owner, lambda: by_testid(owner, "project-conversation"), "the project's chat")
    click(owner, find_testid(owner, "project-new-chat"))
    await arrived(owner, f"/?project={project.id}", left)
    chip = await shown(owner, "new-chat-project", ui.chip)
    assert chip.text == "New chat in Translator"
    click(owner, await shown(owner, "settings"))
    settings = await dialog(owner, "Conversation settings")
    [prompt] = inside(owner, settings, ui.textarea, "System prompt")
    assert prompt.value == expected.system_prompt
    press(owner, settings, "Save")  # saving before the first message makes the chat, in the project
    await wait_for(owner, lambda: owner.notify.contains("Settings saved"), "saved")
    in_project = await services.store.list_recent(project_id=project.id)
    assert len(in_project) == 2 and in_project[0].system_prompt == expected.system_prompt
    assert in_project[0].settings["temperature"] == expected.settings["temperature"]

    await owner.open(f"/p/{project.id}")
    click(owner, await shown(owner, "project-delete"))
    asked = await dialog(owner, "Delete project “Translator”?")
    left = owner.client
    click(owner, find_testid(owner, "confirm-ok", within=asked))
    await arrived(owner, "/", left)
    assert await services.projects.list() == []
    kept = await services.store.get(packing.id)
    assert kept is not None and kept.project_id is None  # its chats stay, in no project


async def wait_projects(services: Services, count: int) -> list[Project]:
    """The projects, once there are `count` (the dialog's handler stores it after it closes)."""
    for _ in range(50):
        found = await services.projects.list()
        if len(found) == count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} projects, found {len(await services.projects.list())}")


async def test_versions_of_an_answer_can_be_switched(owner: User, services: Services) -> None:
    conv, first, second = await branched(services)
    await owner.open(f"/c/{conv.id}")
    await sees(owner, "Green.")
    assert [label.text for label in by_testid(owner, "branch-label", ui.label)] == ["2/2"]
    assert not find_testid(owner, "branch-next").enabled
    click(owner, find_testid(owner, "branch-prev"))
    await sees(owner, "Violet, like the flower.")
    await wait_for(owner, lambda: [lb.text for lb in by_testid(owner, "branch-label", ui.label)] == ["1/2"], "1/2")
    assert (await services.store.messages(conv.id))[-1].id == first.id  # the chat goes on from here
    assert second.id != first.id
