"""kill -9 the server while an answer streams: after a restart the text so far is there, interrupted."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server import ServerProcess

pytestmark = pytest.mark.e2e


def answer_row(db: Path) -> tuple[str, str]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status, content FROM messages WHERE role = 'assistant'").fetchone()
    assert row is not None
    return row[0], row[1]


def test_killed_server_leaves_the_answer_interrupted(page: Page, server: ServerProcess, tmp_path: Path) -> None:
    page.goto(server.owner_link)
    composer = page.locator("textarea[data-testid=composer]")
    expect(composer).to_be_visible()
    composer.fill("Write a very long story about a lighthouse keeper and a storm, with many details.")
    composer.press("Enter")
    answer = page.locator("[data-testid=assistant-message] .gl-answer").last
    expect(answer).to_have_text(re.compile(r"\S{3,}.*\S{3,}", re.S), timeout=90_000)
    conversation_url = page.url
    db = server.data_dir / "gridless.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the server has saved some of it
        status, saved = answer_row(db)
        if saved:
            break
        time.sleep(0.2)
    assert status == "streaming" and saved
    server.kill_hard()
    status, after_kill = answer_row(db)
    assert status == "streaming" and after_kill.startswith(saved)

    context = page.context
    page.close()  # the old page would reload itself when its server comes back; look with a fresh one
    restarted = ServerProcess(data_dir=server.data_dir, port=server.port, extra_args=server.extra_args).start()
    try:
        page = context.new_page()
        page.goto(conversation_url)
        expect(page.locator("[data-testid=interrupted]")).to_be_visible(timeout=30_000)
        shown = page.locator("[data-testid=assistant-message] .gl-answer").last.inner_text()
        first_word = after_kill.split()[0].strip("#*_`>")
        assert shown.strip() and first_word in shown
        status, content = answer_row(db)
        assert status == "interrupted" and content == after_kill
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        restarted.stop()
