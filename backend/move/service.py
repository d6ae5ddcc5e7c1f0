"""Both sides of moving to a new device, as one part of the server: the offer this device makes
(it is the old device) and the pull it runs (it is the new one)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import AppError
from ..models.manager import ModelManager
from ..models.registry import ModelRegistry
from ..security.interfaces import lan_interfaces, preselect
from ..security.sharing import Sharing
from .offer import ArchiveWriter, MoveOffers
from .pull import ArchiveApplier, MovePulls

__all__ = ["Moves", "ensure_sharing"]

SHARE_ADDRESS_SETTING = "share.address"
"""The address the owner last shared on (the Share page keeps it)."""


@dataclass(kw_only=True, slots=True)
class Moves:
    offers: MoveOffers
    pulls: MovePulls

    @classmethod
    def build(cls, data_dir: Path, models: ModelManager, *, write_archive: ArchiveWriter | None,
              apply_archive: ArchiveApplier | None) -> Moves:
        return cls(offers=MoveOffers(data_dir / "move-out", models.registry, write_archive),
                   pulls=MovePulls(data_dir / "move-in", models, apply_archive))

    async def start(self) -> None:
        """An offer does not outlive the server: what a killed one prepared is removed. What a
        pull brought in is kept for the next pull to continue from."""
        await asyncio.to_thread(shutil.rmtree, self.offers.out_dir, True)

    async def stop(self) -> None:
        await self.pulls.stop()
        await self.offers.stop()


async def ensure_sharing(sharing: Sharing, registry: ModelRegistry, port: int) -> str | None:
    """Turn on sharing on the local network if it is off, so the new device can reach this one;
    returns why it could not (the offer still works for a device that reaches this one otherwise)."""
    if sharing.state is not None:
        return None
    chosen = preselect(await asyncio.to_thread(lan_interfaces), await registry.get_setting(SHARE_ADDRESS_SETTING))
    if chosen is None:
        return "This device has no network address; turn on the hotspot or Wi-Fi, then make a new offer."
    try:
        await sharing.start(chosen.address, port)
    except AppError as exc:
        return exc.message
    return None
