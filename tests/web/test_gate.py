"""The security gate in front of the pages, as the page tests meet it."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from .conftest import OWNER_TOKEN
from .finders import sees


async def test_a_page_is_refused_without_signing_in(user: User) -> None:
    with pytest.raises(AssertionError, match="401"):
        await user.open("/")


async def test_a_wrong_owner_link_sets_no_cookie(user: User) -> None:
    response = await user.http_client.get("/", params={"token": OWNER_TOKEN[::-1]})
    assert response.status_code == 401
    assert not user.http_client.cookies
    with pytest.raises(AssertionError, match="401"):
        await user.open("/")


async def test_the_owner_link_opens_the_pages(owner: User) -> None:
    await owner.open("/")
    await sees(owner, "Ask anything. It stays on this device.")
