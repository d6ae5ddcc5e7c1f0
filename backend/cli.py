"""`gridless serve` and friends."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import __version__
from .core.config import Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridless", description="Private AI that lives on your phone.")
    parser.add_argument("--version", action="version", version=f"gridless {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the app server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; env GRIDLESS_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8765; env GRIDLESS_PORT)")
    serve.add_argument("--data-dir", type=Path, help="where chats and media are kept (env GRIDLESS_DATA_DIR)")
    serve.add_argument("--token", help="owner token instead of the saved/generated one (env GRIDLESS_TOKEN)")
    serve.add_argument("--model", dest="chat_model", type=Path, help="GGUF chat model (env GRIDLESS_CHAT_MODEL)")
    serve.add_argument("--context-length", type=int, help="context window in tokens (env GRIDLESS_CONTEXT_LENGTH)")
    serve.add_argument("--threads", type=int, help="inference threads, 0 = physical cores - 1 (env GRIDLESS_THREADS)")
    from .models.cli import add_parser
    from .storage.backup_cli import add_parsers as add_backup_parsers

    add_parser(commands)
    add_backup_parsers(commands)
    return parser


def build_settings(args: argparse.Namespace) -> Settings:
    """Flags override `GRIDLESS_*` variables, which override defaults."""
    own = {"command", "models_command", "job", "repo", "file", "force", "path", "name", "include_models", "yes"}
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in own and v is not None}
    return Settings(**given)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = build_settings(args)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"gridless: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    if args.command == "models":
        from .models.cli import run as models_run

        return models_run(args, settings)
    if args.command in ("backup", "restore"):
        from .storage.backup_cli import run as backup_run

        return backup_run(args, settings)
    if args.command == "serve":
        from web.app import run

        run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
