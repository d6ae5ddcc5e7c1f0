"""Assemble the server: NiceGUI pages, the /v1 API, the security gate, and start-up/shutdown."""

from __future__ import annotations

import socket
import sys
import time

from fastapi.middleware.gzip import GZipMiddleware
from nicegui import __version__ as nicegui_version
from nicegui import app, core, ui
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from backend import __version__
from backend.api import attachments, audio, model_upload, pairing, voice
from backend.api import backup as backup_api
from backend.api import collections as collections_api
from backend.api import conversations as conversations_api
from backend.api import engines as engines_api
from backend.api import images as images_api
from backend.api import keys as keys_api
from backend.api import move as move_api
from backend.api import sharing as sharing_api
from backend.api.errors import install_error_handlers
from backend.api.health import router as health_router
from backend.api.model_upload import UPLOAD_PATH
from backend.api.router import api_router
from backend.core.config import Settings
from backend.security.middleware import SecurityMiddleware
from backend.security.policy import AccessGuard
from backend.security.sharing import Sharing
from backend.services import Services
from backend.storage.backup_format import MAX_ARCHIVE_BYTES

from . import i18n, pwa, socket_guard
from .asset_cache import AssetCache
from .pages import backup, chat, images, knowledge, models, move, sharing, transcripts

__all__ = ["create", "run"]

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
ASSET_PREFIXES = ("/static/", f"/_nicegui/{nicegui_version}/")
"""Files that are the same for everyone and do not change while the server runs."""
ADMIN_PREFIXES = ("/models", "/sharing", "/devices", "/move", "/backup", "/api/models", "/api/sharing", "/api/pairing",
                  "/api/engines", "/api/keys",
                  "/api/devices", "/api/move/offer", "/api/move/pull", backup_api.BACKUP_PATH, backup_api.RESTORE_PATH)
"""What only the owner may open; a paired device gets the chats and nothing that manages the phone."""


def allowed_hosts(settings: Settings) -> set[str]:
    hosts = set(LOOPBACK_NAMES)
    if settings.host not in ("0.0.0.0", "::"):
        hosts.add(settings.host)
    else:  # every address of this machine, and its name
        import psutil

        hosts.update(a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                     if a.family in (socket.AF_INET, socket.AF_INET6))
        hosts.add(socket.gethostname())
    return hosts


def create(settings: Settings) -> Services:
    """Register everything on NiceGUI's app; returns the services it will start."""
    services = Services.build(settings)
    app.state.services = services

    def https_origin() -> str | None:
        state = services.sharing.state if services.sharing else None
        return state.origin if state and state.secure else None

    guard = _guard(services)
    guide = SecurityMiddleware(pairing.guide_app(services.certs, https_origin), guard=guard)
    services.sharing = Sharing(app, guide, services.certs, services.pairing)
    # innermost first: compression, then the assets kept compressed, then the gate in front of both
    # backups are tar files of mostly compressed media: packing them again costs the phone's CPU for little
    app.add_middleware(GZipMiddleware, exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, backup_api.TAR))
    app.add_middleware(AssetCache, prefixes=ASSET_PREFIXES)
    app.add_middleware(SecurityMiddleware, guard=guard)
    core.sio.eio.cors_allowed_origins = socket_guard.same_origin  # engine.io's own check, on top of ours
    socket_guard.install()
    i18n.install()
    app.include_router(health_router)
    app.include_router(api_router)
    app.include_router(model_upload.router)
    app.include_router(audio.router)
    app.include_router(voice.router)
    app.include_router(attachments.router)
    app.include_router(conversations_api.router)
    app.include_router(engines_api.router)
    app.include_router(images_api.router)
    app.include_router(pwa.router)
    app.include_router(pairing.router)
    app.include_router(sharing_api.router)
    app.include_router(move_api.router)
    app.include_router(backup_api.router)
    app.include_router(collections_api.router)
    app.include_router(keys_api.router)
    pairing.add_ca_routes(app, services.certs, https_origin)
    install_error_handlers(app)
    app.add_static_files("/static", pwa.STATIC_DIR)
    app.on_startup(services.start)
    app.on_shutdown(services.stop)
    chat.register(services)
    models.register(services)
    sharing.register(services)
    move.register(services)
    backup.register(services)
    transcripts.register(services)
    images.register(services)
    knowledge.register(services)
    return services


def _guard(services: Services) -> AccessGuard:
    settings = services.settings
    return AccessGuard(
        services.owner, allowed_hosts(settings),
        # the move's routes check the move session themselves (the new device is not paired)
        public_prefixes=(*ASSET_PREFIXES, move_api.MOVE_FILES_PREFIX),
        public_paths={"/healthz"} | pwa.PUBLIC_PATHS | pairing.PAIR_PATHS | pairing.CA_PATHS
        | move_api.MOVE_PUBLIC_PATHS,
        devices=services.devices, keys=services.keys,
        lan_addresses=lambda: services.sharing.addresses() if services.sharing else set(),
        limiter=services.pairing.limiter, admin_prefixes=ADMIN_PREFIXES,
        client_principal=socket_guard.client_principal,
        max_body_bytes=settings.max_request_bytes,
        body_limits={UPLOAD_PATH: settings.max_model_upload_mb * 1024 * 1024,
                     audio.TRANSCRIPT_UPLOAD_PATH: settings.max_audio_upload_mb * 1024 * 1024,
                     attachments.ATTACHMENT_UPLOAD_PATH: settings.max_attachment_mb * 1024 * 1024,
                     conversations_api.IMPORT_PATH: conversations_api.MAX_IMPORT_BYTES,
                     backup_api.RESTORE_PATH: MAX_ARCHIVE_BYTES,
                     # multipart adds its boundaries and the other fields
                     "/v1/audio/transcriptions": settings.max_audio_upload_mb * 1024 * 1024 + 64 * 1024},
        body_limit_patterns=((collections_api.DOCUMENT_UPLOAD_PATTERN, settings.max_document_mb * 1024 * 1024),))


def owner_link(settings: Settings, token: str) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/?token={token}"


def run(settings: Settings) -> None:
    started = time.perf_counter()
    services = create(settings)
    print(f"gridless {__version__}", file=sys.stderr)
    print(f"  data:  {settings.data_dir}", file=sys.stderr)

    async def announce() -> None:
        await services.ready()
        model = services.chat.model
        print(f"  model: {model.path if model else 'none installed'}", file=sys.stderr)
        print(f"  ready in {time.perf_counter() - started:.1f} s. Open:\n\n"
              f"    {owner_link(settings, services.owner.token)}\n", file=sys.stderr, flush=True)

    app.on_startup(announce)
    ui.run(host=settings.host, port=settings.port, title="gridless", reload=False, show=False,
           favicon=pwa.STATIC_DIR / "icons" / "favicon.png", dark=None, show_welcome_message=False,
           uvicorn_logging_level="warning", reconnect_timeout=30, storage_secret=None, language="en-US",
           gzip_middleware_factory=None)  # added in `create`, inside the asset cache
