"""Back up on the Backup page, lose a conversation, restore the downloaded file on the page: it is back."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server import ServerProcess

from .conftest import wait_live
from .test_chat import ITEM, more_menu, send, sign_in, wait_complete

pytestmark = pytest.mark.e2e


def open_backup_page(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.base}/backup")
    expect(page.get_by_test_id("backup-start")).to_be_visible()
    wait_live(page)


def test_back_up_delete_restore_and_the_conversation_is_back(server: ServerProcess, page: Page,
                                                             tmp_path: Path) -> None:
    sign_in(page, server)
    send(page, "Remember the lighthouse.")
    wait_complete(page)
    expect(page.locator(ITEM)).to_have_count(1)

    page.get_by_test_id("nav-backup").click()  # in the drawer, open beside the chat on a wide screen
    expect(page).to_have_url(f"{server.base}/backup")
    expect(page.get_by_test_id("backup-start")).to_be_visible()
    wait_live(page)
    with page.expect_download(timeout=60_000) as started:
        page.get_by_test_id("backup-start").click()
    download = started.value
    assert download.suggested_filename.startswith("gridless-backup-") and download.suggested_filename.endswith(".tar")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.stat().st_size > 10_000
    expect(page.get_by_test_id("backup-latest")).to_contain_text(download.suggested_filename)

    page.goto(f"{server.base}/")
    wait_live(page)
    more_menu(page, page.locator(ITEM).first, "Delete")
    page.locator(".q-dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(ITEM)).to_have_count(0)

    open_backup_page(page, server)
    page.get_by_test_id("restore-file").set_input_files(str(saved))
    page.get_by_test_id("restore-start").click()
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Replace everything with this backup?")
    dialog.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("restore-done")).to_have_text(
        "The backup was restored: 1 conversation, 2 messages, no media files.", timeout=60_000)
    expect(page.locator(ITEM)).to_have_count(1)
    expect(page.locator(ITEM)).to_contain_text("Remember the lighthouse.")

    page.locator(ITEM).first.click()
    expect(page.locator("[data-testid=user-message]")).to_have_text(["Remember the lighthouse."])


def test_a_file_that_is_not_a_backup_is_refused_on_the_page(server: ServerProcess, page: Page,
                                                            tmp_path: Path) -> None:
    sign_in(page, server)
    open_backup_page(page, server)
    photo = tmp_path / "holiday.tar"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo, renamed" * 200)
    page.get_by_test_id("restore-file").set_input_files(str(photo))
    page.get_by_test_id("restore-start").click()
    page.locator(".q-dialog").get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("restore-status")).to_have_text(
        "This file is not a gridless backup (it is not a tar archive).", timeout=30_000)
    expect(page).to_have_url(f"{server.base}/backup")
