"""Projects and the presets they start from, under `/api`.

- `GET /api/presets`: the ready-made projects (name, description, system prompt, settings).
- `GET/POST /api/projects`, `GET/PATCH/DELETE /api/projects/{id}`. A project's settings are what
  its new chats start with, checked as a conversation's are (`settings_checked`): a setting not
  known, or out of its bounds, is refused with its name rather than kept and ignored later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from ..chat.params import GenerationSettings
from ..chat.presets import PRESETS, preset
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..services import Services
from ..storage.projects import Project
from .deps import ServicesDep
from .responses import not_found

__all__ = ["MAX_SYSTEM_PROMPT", "SETTING_NAMES", "invalid", "router", "settings_checked"]

router = APIRouter(include_in_schema=False)
NAME_MAX = 100
MAX_SYSTEM_PROMPT = 8000
"""As the settings dialog allows."""
SETTING_NAMES = (*GenerationSettings.model_fields, "model")
"""`model` is the language model a conversation answers with (the app's chat model when unset)."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]
SystemPrompt = Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT)]


def invalid(param: str, message: str) -> AppError:
    """A field of a request that is wrong, in the shape the framework's own validation has under /api."""
    return AppError(ErrorCode.INVALID_VALUE, f"{param}: {message}", param=param, status=422)


def settings_checked(services: Services, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes` applied (a null removes a setting, back to its default), each
    change checked against its bounds; an unknown setting or model is refused."""
    unknown = sorted(set(changes) - set(SETTING_NAMES))
    if unknown:
        raise invalid(f"settings.{unknown[0]}", f"there is no such setting (the settings are "
                                                f"{', '.join(SETTING_NAMES)})")
    given = {k: v for k, v in changes.items() if v is not None and k != "model"}
    try:
        parsed = GenerationSettings.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise invalid(f"settings.{'.'.join(str(p) for p in first['loc'])}", first["msg"]) from None
    model = changes.get("model")
    if model is not None:
        record = services.answers.get(model) if isinstance(model, str) else None
        if record is None or not Job(record.job).is_language:
            raise invalid("settings.model", "no language model with that id is installed")
    merged = {**current, **parsed.model_dump(include=set(given))}
    for key in (k for k, v in changes.items() if v is None):
        merged.pop(key, None)
    if model is not None:
        merged["model"] = model
    return merged


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    system_prompt: SystemPrompt | None = None
    settings: dict[str, Any] | None = None
    preset: str | None = None
    """A preset's key: its name, system prompt and settings, which the other fields override."""


class ProjectChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    system_prompt: SystemPrompt | None = None
    settings: dict[str, Any] | None = None
    """Changes to the settings: a null removes one."""


async def _find(services: Services, project_id: str) -> Project:
    found = await services.projects.get(project_id)
    if found is None:
        raise not_found("There is no project with that id.")
    return found


@router.get("/api/presets")
async def presets() -> dict[str, Any]:
    return {"presets": [{"key": p.key, "name": p.name, "description": p.description,
                         "system_prompt": p.system_prompt, "settings": p.settings} for p in PRESETS]}


@router.get("/api/projects")
async def projects(services: ServicesDep) -> dict[str, Any]:
    return {"projects": [p.to_json() for p in await services.projects.list()]}


@router.post("/api/projects")
async def create_project(body: ProjectCreate, services: ServicesDep) -> JSONResponse:
    start = preset(body.preset) if body.preset is not None else None
    if body.preset is not None and start is None:
        raise invalid("preset", f"there is no preset {body.preset!r} (the presets are "
                                f"{', '.join(p.key for p in PRESETS)})")
    name = body.name or (start.name if start else None)
    if name is None:
        raise invalid("name", "a project needs a name, or a preset to start from")
    settings = settings_checked(services, dict(start.settings) if start else {}, body.settings or {})
    system_prompt = body.system_prompt if body.system_prompt is not None else start.system_prompt if start else ""
    project = await services.projects.create(name, system_prompt=system_prompt, settings=settings,
                                             preset=start.key if start else None)
    return JSONResponse(project.to_json(), status_code=201)


@router.get("/api/projects/{project_id}")
async def project(project_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await _find(services, project_id)).to_json()


@router.patch("/api/projects/{project_id}")
async def change_project(project_id: str, body: ProjectChange, services: ServicesDep) -> dict[str, Any]:
    found = await _find(services, project_id)
    settings = settings_checked(services, found.settings, body.settings) if body.settings is not None else None
    await services.projects.update(project_id, name=body.name, system_prompt=body.system_prompt, settings=settings)
    return (await _find(services, project_id)).to_json()


@router.delete("/api/projects/{project_id}")
async def delete_project(project_id: str, services: ServicesDep) -> dict[str, Any]:
    """The project goes; its conversations stay, in no project."""
    if not await services.projects.delete(project_id):
        raise not_found("There is no project with that id.")
    return {"id": project_id, "deleted": True}
