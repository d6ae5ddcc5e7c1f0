"""Keys for apps on the Share page: the owner makes a key with the chat scope, reads it from the
dialog that shows it once, an app uses it, the owner revokes it on the page and the app is refused."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.server import ServerProcess

from .conftest import wait_live
from .test_chat import sign_in

pytestmark = pytest.mark.e2e


def test_make_use_and_revoke_a_key(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    page.goto(f"{server.base}/sharing")
    wait_live(page)
    expect(page.get_by_text("Keys for apps", exact=True)).to_be_visible()
    expect(page.get_by_test_id("keys-empty")).to_have_text("No app has a key yet.")

    # no scope chosen: refused with the reason, nothing made
    page.get_by_label("Name of the app").fill("Tasker")
    page.get_by_test_id("key-create").click()
    expect(page.get_by_test_id("key-error")).to_have_text("Give the key at least one scope.")
    expect(page.get_by_test_id("keys-empty")).to_be_visible()

    page.get_by_test_id("key-scope-chat").click()
    page.get_by_test_id("key-create").click()
    dialog = page.get_by_test_id("key-dialog")
    expect(dialog).to_contain_text("it will not be shown again")
    expect(dialog.get_by_role("button", name="Copy the key")).to_be_visible()
    secret = dialog.get_by_test_id("key-secret").inner_text().strip()
    assert re.fullmatch(r"gl-[A-Za-z0-9_-]{43}", secret), secret
    dialog.get_by_test_id("key-done").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text(secret)).to_have_count(0)  # shown once: gone from the page

    card = page.locator("[data-testid^=key-]", has=page.get_by_test_id("key-name-shown")).first
    expect(card.get_by_test_id("key-name-shown")).to_have_text("Tasker")
    expect(card.get_by_test_id("key-scope-chip-chat")).to_be_visible()
    expect(card).to_contain_text(secret[:8])
    expect(card.get_by_test_id("key-usage")).to_have_text("Never used.")

    app = {"Authorization": f"Bearer {secret}"}
    models = httpx.get(f"{server.base}/v1/models", headers=app)
    assert models.status_code == 200 and models.json()["data"]
    assert httpx.get(f"{server.base}/api/conversations", headers=app).status_code == 403  # not its scope
    # the page follows the key's use
    expect(card.get_by_test_id("key-usage")).to_have_text("Last used just now; 1 request in all.")

    card.get_by_role("button", name="Revoke").click()
    confirm = page.locator(".q-dialog")
    expect(confirm).to_contain_text("Revoke the key “Tasker”?")
    confirm.get_by_test_id("confirm-ok").click()
    expect(card.get_by_test_id("key-usage")).to_contain_text("Revoked just now")
    expect(card.get_by_role("button", name="Revoke")).to_have_count(0)

    refused = httpx.get(f"{server.base}/v1/models", headers=app)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
