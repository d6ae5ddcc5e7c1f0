"""Moving to a new device, as a person does it: on the old device's Move page they make an offer, on
the new device's Move page they type the address and code it shows, wait, and open the moved
conversation there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.movepair import OLD_TITLE, OLD_WORDS, seed_old_device
from tests.server import ServerProcess

from .conftest import DESKTOP, wait_live

pytestmark = pytest.mark.e2e

MOVE_TIMEOUT_MS = 90_000


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    seed_old_device(tmp_path / "old")
    with ServerProcess(data_dir=tmp_path / "old") as old, ServerProcess(data_dir=tmp_path / "new") as new:
        yield old, new


def open_move(page: Page, server: ServerProcess) -> None:
    page.goto(server.owner_link)
    wait_live(page)
    page.locator("[data-testid=nav-move]").click()  # from the drawer, as a person finds it
    expect(page).to_have_url(f"{server.base}/move")
    wait_live(page)


def test_move_a_conversation_to_a_new_device(two: tuple[ServerProcess, ServerProcess], context: BrowserContext,
                                             browser: Browser) -> None:
    old, new = two
    second = browser.new_context(viewport=DESKTOP)  # two browser profiles, as two devices
    old_page, new_page = context.new_page(), second.new_page()
    open_move(old_page, old)
    old_page.locator("[data-testid=move-offer]").click()
    expect(old_page.locator("[data-testid=move-offer-state]")).to_contain_text("Ready")
    code = old_page.locator("[data-testid=move-code]").inner_text()
    address = old_page.locator("[data-testid=move-address]").inner_text()
    if address == "—":  # no network address here to share on: reach the old device on loopback
        address = f"127.0.0.1:{old.port}"

    new_page.goto(new.owner_link)
    wait_live(new_page)
    new_page.goto(f"{new.base}/move")
    wait_live(new_page)
    new_page.locator("input[data-testid=move-from-address]").fill(address)
    new_page.locator("input[data-testid=move-from-code]").fill(code)
    new_page.locator("[data-testid=move-from-start]").click()
    new_page.locator("[data-testid=confirm-ok]").click()
    expect(new_page.locator("[data-testid=move-pull-done]")).to_be_visible(timeout=MOVE_TIMEOUT_MS)
    expect(new_page.locator("[data-testid=move-file-archive]")).to_have_text("done")
    # the old device sees that the new one has everything
    expect(old_page.locator("[data-testid=move-offer-ended]")).to_contain_text("the new device has everything")

    new_page.goto(f"{new.base}/")
    wait_live(new_page)
    new_page.locator("[data-testid=conversation-item]", has_text=OLD_TITLE).click()
    expect(new_page.locator("[data-testid=user-message]").first).to_have_text(OLD_WORDS)
    second.close()


def test_a_wrong_code_is_shown_on_the_new_device(two: tuple[ServerProcess, ServerProcess],
                                                 context: BrowserContext) -> None:
    old, new = two
    page = context.new_page()
    open_move(page, new)
    page.locator("input[data-testid=move-from-address]").fill(f"127.0.0.1:{old.port}")
    page.locator("input[data-testid=move-from-code]").fill("1234 5678")
    page.locator("[data-testid=move-from-start]").click()
    page.locator("[data-testid=confirm-ok]").click()
    expect(page.locator("[data-testid=move-pull-error]")).to_contain_text("move code is not valid")
