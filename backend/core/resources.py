"""Where the app's own files are: the web assets (`static/`) and the curated model catalog.

Both are defined once, here, so that the pages, the pairing routes and the model manager
find them the same way in a checkout and in an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CATALOG_FILE", "STATIC_DIR"]

_ROOT = Path(__file__).resolve().parents[2]

STATIC_DIR = _ROOT / "static"
"""The web app's static files: manifest, service worker, icons, scripts and styles."""

CATALOG_FILE = _ROOT / "models" / "catalog.json"
"""The curated catalog of recommended models."""
