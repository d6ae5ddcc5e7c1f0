"""The one upload helper (`static/upload.js`) in a real Chromium against a real `gridless serve`.

Whatever happens to a file on its way (the route answers, the route refuses, the size gate
answers 413 with a page rather than JSON, the connection is lost, the upload is stopped), the
page gets either the route's answer or the server's own error shape `{error: {code, message}}`
with a sentence to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.server import ServerProcess

from .test_chat import sign_in

pytestmark = pytest.mark.e2e

MAX_REQUEST_BYTES = 64 * 1024  # the gate's limit for paths without their own, small so a body over it is quick
NOTES = "Shopping: eggs, flour, milk.\n" * 40

SEND_JS = """async ([url, options]) => {
  const { sendRaw } = await import('/static/upload.js');
  const body = options.text !== undefined
    ? new Blob([options.text], {type: 'text/plain'})
    : new Blob([new Uint8Array(options.size)], {type: 'application/octet-stream'});
  const controller = new AbortController();
  const progress = [];
  const sending = sendRaw(url, body, {params: options.params || {}, signal: controller.signal,
                                      onProgress: (loaded, total) => progress.push([loaded, total])});
  if (options.stop) controller.abort();
  return {result: await sending, progress};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path_factory.mktemp("uploads") / "data",
                       env={"GRIDLESS_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}) as srv:
        yield srv


def to_attachments(url: str) -> bool:
    return "/api/attachments?" in url


def lose(route: Route) -> None:
    route.abort("connectionreset")


def send(page: Page, url: str, **options: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = page.evaluate(SEND_JS, [url, options])
    return outcome


def test_the_routes_answer_comes_back_with_the_progress(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    outcome = send(page, "/api/attachments", text=NOTES, params={"name": "notes.txt"})
    result = outcome["result"]
    assert result["status"] == 201 and "error" not in result, result
    assert (result["data"]["name"], result["data"]["kind"]) == ("notes.txt", "document"), result
    size = len(NOTES.encode())
    assert outcome["progress"] and outcome["progress"][-1] == [size, size], outcome["progress"]


def test_a_refusal_keeps_the_routes_own_code_and_message(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    zeros = bytes(2000)
    direct = httpx.post(f"{server.base}/api/attachments", params={"name": "photo.jpg"}, content=zeros,
                        headers={**server.headers(), "Content-Type": "application/octet-stream"}, timeout=30)
    assert direct.status_code >= 400, direct.text
    result = send(page, "/api/attachments", size=len(zeros), params={"name": "photo.jpg"})["result"]
    assert result == {"error": direct.json()["error"]}, result


def test_413_without_json_gets_its_own_code_and_sentence(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    # outside /api the gate answers a body over its limit with a short page, not JSON
    direct = httpx.post(f"{server.base}/not-an-upload", content=bytes(MAX_REQUEST_BYTES + 1),
                        headers=server.headers(), timeout=30)
    assert direct.status_code == 413 and direct.headers["content-type"].startswith("text/html"), direct.text
    result = send(page, "/not-an-upload", size=MAX_REQUEST_BYTES + 1)["result"]
    assert result == {"error": {"code": "request_too_large", "message": "The file is larger than the server accepts."}}


def test_a_lost_connection_and_a_stopped_upload_say_so(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    page.route(to_attachments, lose)
    result = send(page, "/api/attachments", text=NOTES, params={"name": "notes.txt"})["result"]
    assert result == {"error": {"code": "connection_lost",
                                "message": "The connection was lost while the file was being sent."}}
    page.unroute(to_attachments, lose)
    result = send(page, "/api/attachments", size=1000, params={"name": "notes.txt"}, stop=True)["result"]
    assert result == {"error": {"code": "cancelled", "message": "The upload was stopped."}}


def test_a_lost_connection_while_attaching_is_shown_and_leaves_nothing_pending(server: ServerProcess, page: Page,
                                                                              tmp_path: Path) -> None:
    sign_in(page, server)
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    page.route(to_attachments, lose)
    with page.expect_file_chooser() as chooser_info:
        page.get_by_test_id("attach-button").click()
    chooser_info.value.set_files(notes)
    expect(page.locator(".q-notification").last).to_contain_text(
        "notes.txt: The connection was lost while the file was being sent.")
    expect(page.get_by_test_id("attachment-uploading")).to_have_count(0)
    expect(page.get_by_test_id("pending-document")).to_have_count(0)
