from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..services import Services

__all__ = ["ServicesDep", "get_services"]


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    await services.ready()
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
