"""The Models page: what is loaded in memory, downloads with live progress, and a tab per job with
its installed models (for chat also the engine servers on other machines), import, the recommended
catalog and hub search.

Each part is its own component and keeps itself current: twice a second (and after every action)
the page asks each part to `sync`, and a part redraws only when what it shows has changed. A
running download moves its bars and figures in place, so its progress redraws nothing else.
"""

from __future__ import annotations

from nicegui import ui

from backend.core.i18n import _
from backend.services import Services

from ...frame import frame
from .catalog import CatalogList
from .downloads import DownloadsPanel
from .engines import EngineServers
from .importing import ImportSection
from .installed import InstalledList
from .memory import MemoryPanel
from .search import HubSearch
from .status import Part, job_names

__all__ = ["register"]

JOBS = ("chat", "vision", "images", "speech", "voice", "embeddings")
"""The jobs, a tab each, in this order (as `job_names` lists them)."""
ICONS = {"chat": "chat", "vision": "photo_camera", "images": "image", "speech": "mic", "voice": "record_voice_over",
         "embeddings": "manage_search"}
TICK_S = 0.5


class ModelsPage:
    def __init__(self, services: Services, tab: str = "chat") -> None:
        self.services = services
        self.tab = tab if tab in JOBS else "chat"
        self.parts: list[Part] = []

    async def build(self) -> None:
        await self.services.models.registry.load()  # the command line may have changed it
        self.client = ui.context.client  # a download may start from a dialog that is gone by then
        async with frame(self.services, current=None, title=_("Models")) as page:
            self.parts.append(MemoryPanel(self.services, changed=self.sync))
            self.downloads = DownloadsPanel(self.services, changed=self.sync)
            self.parts.append(self.downloads)
            with ui.tabs().classes("w-full").props("dense align=left outside-arrows mobile-arrows") as tabs:
                for job, label in job_names().items():
                    ui.tab(job, label, ICONS[job]).props(f"no-caps data-testid=tab-{job}")
            with ui.tab_panels(tabs, value=self.tab).classes("w-full"):
                for job in JOBS:
                    with ui.tab_panel(job).classes("q-px-none"), ui.column().classes("w-full gap-3"):
                        self.parts.append(InstalledList(self.services, job, frame=page, changed=self.sync))
                        if job == "chat":
                            self.parts.append(EngineServers(self.services, changed=self.sync))
                        if job in ("chat", "vision", "images"):
                            ImportSection(self.services, job, changed=self.sync)
                        self.parts.append(CatalogList(self.services, job, changed=self.sync))
                        if job in ("chat", "vision"):
                            HubSearch(self.services, job, started=self.download_started)
        ui.timer(TICK_S, self.sync)

    def sync(self) -> None:
        for part in self.parts:
            part.sync()

    def download_started(self) -> None:
        self.sync()
        row = self.downloads.first_row()
        if row is not None:  # the progress is at the top of the page; the search is at the bottom
            # after the dialog has closed and given the page its scroll position back
            self.client.run_javascript(f"setTimeout(() => getHtmlElement({row.id})"
                                       "?.scrollIntoView({behavior: 'smooth', block: 'center'}), 800)")


def register(services: Services) -> None:
    @ui.page("/models")
    async def models_page(tab: str = "chat") -> None:
        await services.ready()
        await ModelsPage(services, tab).build()
