"""The Backup page: a backup written on the server with progress, then downloaded; what it says of
models and of a restore that just happened. (Sending a file to restore needs a browser:
tests/e2e/test_backup.py.)"""

from __future__ import annotations

import io
import tarfile

from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from backend.storage.backup_format import MANIFEST_NAME, Manifest

from ..finders import by_testid, click, find_testid, sees, shown, text_of, wait_for


async def test_back_up_now_writes_the_file_and_the_browser_downloads_it(owner: User, services: Services) -> None:
    await services.store.create(title="worth keeping")
    await owner.open("/backup")
    switch = await shown(owner, "backup-models", ui.switch)
    assert "none added" in switch.text and not switch.enabled  # only the bundled models: never included
    click(owner, find_testid(owner, "backup-start"))
    download = await owner.download.next(timeout=20)
    assert download.status_code == 200, download.text
    assert download.headers["content-disposition"].startswith('attachment; filename="gridless-backup-')
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        manifest = Manifest.parse(tar.extractfile(MANIFEST_NAME).read())  # type: ignore[union-attr]
    assert manifest.files[0].path == "gridless.db"
    await wait_for(owner, lambda: by_testid(owner, "backup-latest"), "the latest backup")
    latest = services.backups.latest()
    assert latest is not None and latest.name in text_of(owner, "backup-latest")
    assert latest.stat().st_size == len(download.content)


async def test_the_latest_backup_can_be_downloaded_again(owner: User, services: Services) -> None:
    run = services.backups.start(include_models=False)
    await wait_for(owner, lambda: run.finished, "the backup")
    await owner.open("/backup")
    click(owner, await shown(owner, "backup-download"))
    again = await owner.download.next(timeout=10)
    assert run.file is not None and again.content == run.file.read_bytes()


async def test_after_a_restore_the_page_says_what_came_back(owner: User) -> None:
    await owner.open("/backup?restored=1&conversations=4&messages=17&media_files=2")
    await sees(owner, "The backup was restored: 4 conversations, 17 messages, 2 media files.")
    assert find_testid(owner, "restore-start", ui.button)
