"""Where the app's own files are: the web assets (`static/`) and the curated model catalog.

Both are defined once, here, so that the pages, the pairing routes and the model manager
find them the same way in a checkout and in an installed wheel.

They are not inside the Python packages: pyproject.toml maps the top-level folders static/
and models/ to the data packages `gridless.static` and `gridless.models`. An installed wheel
carries them as site-packages/gridless/static/ and gridless/models/catalog.json; an editable
install (`scripts/setup`) points those names at the checkout's own folders, so an edit to
static/ shows at the next page load. Either way the import system knows where they are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["CATALOG_FILE", "STATIC_DIR"]


def _data_package_folder(name: str) -> Path:
    """The folder of a data package (one without `__init__.py`) as installed.

    Not `importlib.resources.files`: for a package without `__init__.py` it joins every
    search location into a MultiplexedPath, and setuptools' editable install adds a
    placeholder location that is no folder, which makes it raise NotADirectoryError.
    """
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # not even the `gridless` namespace is there
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if Path(location).is_dir():
            return Path(location)
    raise RuntimeError(f"the app's own files ({name}) are not installed: install gridless with `pip install .` "
                       f"or `scripts/setup`")


STATIC_DIR = _data_package_folder("gridless.static")
"""The web app's static files: manifest, service worker, icons, scripts and styles."""

CATALOG_FILE = _data_package_folder("gridless.models") / "catalog.json"
"""The curated catalog of recommended models."""
