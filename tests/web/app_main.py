"""The app as the page tests run it, named by `main_file` in pyproject.toml.

NiceGUI's User fixture executes this file (runpy) before each test and then runs the app's
lifespan. It assembles the app exactly as `gridless serve` does (`web.app.run`: pages, routes,
the security gate, start-up and shutdown), with settings read from the `GRIDLESS_*` variables
that `tests/web/conftest.py` sets for the test (its own data folder, a known owner token).
Under the user simulation `ui.run` only records its options: nothing listens on a port, and no
engine starts until a test makes a page ask for one.
"""

from backend.core.config import Settings
from web.app import run

run(Settings())
