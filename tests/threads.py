"""The threads a test gives an engine: what the app itself uses on this machine.

The tests used to ask for 2. On a 2-core machine that also runs the test process, a server and
sometimes a browser, llama.cpp's and stable-diffusion.cpp's threads wait for each other at every
step (see `Settings.inference_threads`): the engine test files took about twice as long with 2
threads as with 1 (measured here back to back: test_llm_engine.py 51 s → 19 s, test_diffusion.py
84 s → 47 s). The app's own choice also means the tests run the engines as a person's server does.
"""

from __future__ import annotations

from backend.core.config import Settings

__all__ = ["ENGINE_THREADS"]

ENGINE_THREADS = Settings(threads=0).inference_threads
