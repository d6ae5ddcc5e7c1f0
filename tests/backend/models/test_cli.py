"""`gridless models ...` run as the installed console script, against a local stand-in for the hub."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.catalogs import chat_entry, write_catalog
from tests.ggufs import write_lm_gguf, write_oversized_count_gguf
from tests.hostile_ggufs import HOSTILE, write_long_strings
from tests.hubserver import HubServer

GRIDLESS = Path(sys.executable).parent / "gridless"
ROOT = Path(__file__).resolve().parents[3]
REPO = "acme/tiny-GGUF"
BIG_FILE = "tiny-Q4_K_M.gguf"
SMALL_FILE = "tiny-Q8_0.gguf"
TEXT_FILE = "notes.gguf"
BUNDLED = "smollm2-135m-instruct"
TRANSFERRING = 600_000
"""A partial file this large is past the header read before a download is queued: the transfer runs."""
ANOTHER_PROCESS = "another gridless process (the server or the command line) is running the downloads"

pytestmark = pytest.mark.slow  # each step is a new process that imports the app (about half a second)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files the hub serves, and a few local files to import."""
    folder = tmp_path_factory.mktemp("cli-sources")
    good = write_lm_gguf(folder / "local-good.gguf", size_mb=0.5, seed=7)
    data = good.read_bytes()
    truncated = folder / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    text = folder / "text.gguf"
    text.write_text("just some notes, not a model\n" * 200)
    return {
        BIG_FILE: write_lm_gguf(folder / BIG_FILE, size_mb=4),
        SMALL_FILE: write_lm_gguf(folder / SMALL_FILE, size_mb=1, seed=2),
        TEXT_FILE: text,
        "good": good,
        "truncated": truncated,
        "text": text,
        "oversized": write_oversized_count_gguf(folder / "oversized.gguf"),
    }


@pytest.fixture
def hub(sources: dict[str, Path]) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(REPO, {name: sources[name] for name in (BIG_FILE, SMALL_FILE, TEXT_FILE)},
                        license="apache-2.0")
        yield server


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.json", [chat_entry("tiny-chat", repo=REPO, path=SMALL_FILE, size_mb=1)])


@dataclass
class Cli:
    """The console script with its own data folder, hub and catalog."""

    data_dir: Path
    env: dict[str, str]
    cwd: Path

    @property
    def models(self) -> Path:
        return self.data_dir / "models"

    @property
    def partial(self) -> Path:
        return self.models / ".partial"

    def command(self, *args: str) -> list[str]:
        return [str(GRIDLESS), "models", "--data-dir", str(self.data_dir), *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), env=self.env, cwd=self.cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def model_files(self) -> list[Path]:
        """Every file in the models folder except the download lock."""
        if not self.models.exists():
            return []
        return sorted(p for p in self.models.rglob("*") if p.is_file() and p != self.partial / ".lock")

    def part_size(self) -> int:
        parts = list(self.partial.glob("*/0.part")) if self.partial.exists() else []
        return max((p.stat().st_size for p in parts), default=0)


@pytest.fixture
def cli(tmp_path: Path, hub: HubServer, catalog: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDLESS_", "PYTEST_"))}
    env.update(HF_ENDPOINT=hub.url, GRIDLESS_CATALOG=str(catalog), HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))  # this checkout's code, whichever is installed
    work = tmp_path / "work"
    work.mkdir()
    return Cli(data_dir=tmp_path / "data", env=env, cwd=work)


def listed(result: subprocess.CompletedProcess[str], job: str = "chat") -> dict[str, str]:
    """Model id -> the mark column ('*' for the active one) in one job's section of `list` output."""
    sections = re.split(r"^(\w+):$", result.stdout, flags=re.MULTILINE)
    section = next((body for name, body in zip(sections[1::2], sections[2::2], strict=True) if name == job), "")
    return {m.group(2): m.group(1) for m in re.finditer(r"^  ([* ]) (\S+)\s", section, re.MULTILINE)}


def assert_refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit code 1 and one `gridless: ...` line on stderr that says why, without a traceback."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gridless: ")
    assert fragment in lines[0]
    assert "installed" not in result.stdout and "imported" not in result.stdout


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail("timed out")


def test_list_on_a_fresh_data_dir_shows_the_bundled_model_active(cli: Cli) -> None:
    result = cli.run("list")
    assert result.returncode == 0, result.stderr
    assert "chat:" in result.stdout
    assert listed(result) == {BUNDLED: "*"}
    assert listed(result, "speech") == {"whisper-tiny-en": " ", "whisper-base": "*"}  # multilingual by default
    assert listed(result, "voice") == {"piper-en-us-joe-medium": "*"}
    assert "bundled" in result.stdout
    assert "disk used by models: 0 B" in result.stdout


def test_pull_repo_file_installs_an_identical_copy(cli: Cli, sources: dict[str, Path]) -> None:
    result = cli.run("pull", REPO, BIG_FILE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "installed tiny-q4_k_m"
    installed = cli.models / "acme__tiny-GGUF" / BIG_FILE
    assert installed.read_bytes() == sources[BIG_FILE].read_bytes()
    assert cli.model_files() == [installed]
    listing = cli.run("list")
    assert listed(listing) == {BUNDLED: "*", "tiny-q4_k_m": " "}
    assert "hub · acme/tiny-GGUF" in listing.stdout and str(installed) in listing.stdout

    again = cli.run("pull", REPO, BIG_FILE)
    assert_refused(again, f"{REPO}/{BIG_FILE} is already installed")
    assert cli.model_files() == [installed]


def test_pull_catalog_id(cli: Cli, sources: dict[str, Path]) -> None:
    catalog = cli.run("catalog")
    assert catalog.returncode == 0, catalog.stderr
    assert re.search(r"^  tiny-chat\s.*\sfits$", catalog.stdout, re.MULTILINE), catalog.stdout
    result = cli.run("pull", "tiny-chat")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "installed tiny-chat"
    installed = cli.models / "acme__tiny-GGUF" / SMALL_FILE
    assert installed.read_bytes() == sources[SMALL_FILE].read_bytes()
    assert listed(cli.run("list")) == {BUNDLED: "*", "tiny-chat": " "}
    assert re.search(r"^  tiny-chat\s.*\sinstalled$", cli.run("catalog").stdout, re.MULTILINE)
    assert_refused(cli.run("pull", "tiny-chat"), "is already installed")


@pytest.mark.parametrize(("repo", "file", "reason"), [
    ("acme/missing-GGUF", "tiny.gguf", "no such repository"),
    (REPO, "missing-Q4_K_M.gguf", "no such file in the repository"),
    (REPO, "../evil.gguf", "'..' part"),
    (REPO, TEXT_FILE, "notes.gguf is not a GGUF"),
])
def test_pull_refused_writes_nothing(cli: Cli, hub: HubServer, tmp_path: Path, repo: str, file: str,
                                     reason: str) -> None:
    result = cli.run("pull", repo, file)
    assert_refused(result, reason)
    assert cli.model_files() == []
    assert not list(tmp_path.rglob("evil.gguf"))
    assert not any("evil" in r.path for r in hub.requests)
    assert listed(cli.run("list")) == {BUNDLED: "*"}


def test_pull_with_the_hub_unreachable(cli: Cli, hub: HubServer) -> None:
    hub.offline = True
    # well under the ~23 s huggingface-hub spends retrying a listing, with room for a loaded machine
    result = cli.run("pull", REPO, SMALL_FILE, timeout=15)
    assert_refused(result, "cannot be reached")
    assert cli.model_files() == []


def test_pull_continues_after_the_process_is_killed(cli: Cli, hub: HubServer, sources: dict[str, Path]) -> None:
    size = sources[BIG_FILE].stat().st_size
    hub.throttle_bps = 1_000_000
    first = cli.start("pull", REPO, BIG_FILE)
    try:
        wait_until(lambda: cli.part_size() >= 0.4 * size or first.poll() is not None)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        stop(first)
    assert first.returncode == -signal.SIGKILL
    kept = cli.part_size()
    assert 0.4 * size <= kept < size
    assert not (cli.models / "acme__tiny-GGUF").exists()

    hub.throttle_bps = None
    hub.reset_counters()
    second = cli.run("pull", REPO, BIG_FILE)
    assert second.returncode == 0, second.stderr
    assert "continuing the download of tiny-Q4_K_M from" in second.stderr
    assert second.stdout.strip() == "installed tiny-q4_k_m"
    assert (cli.models / "acme__tiny-GGUF" / BIG_FILE).read_bytes() == sources[BIG_FILE].read_bytes()
    gets = [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(BIG_FILE)]
    assert [(r.range, r.status, r.sent) for r in gets] == [(f"bytes={kept}-", 206, size - kept)]
    assert cli.model_files() == [cli.models / "acme__tiny-GGUF" / BIG_FILE]


def test_second_process_cannot_pull_while_another_runs_downloads(cli: Cli, hub: HubServer,
                                                                 sources: dict[str, Path]) -> None:
    hub.throttle_bps = 250_000  # the first download lasts while two more processes start
    first = cli.start("pull", REPO, BIG_FILE)
    try:
        wait_until(lambda: cli.part_size() >= TRANSFERRING or first.poll() is not None)
        assert first.poll() is None

        listing = cli.run("list")
        assert listing.returncode == 0
        assert re.search(r"^download \w+: acme/tiny-GGUF tiny-Q4_K_M — (running|queued)", listing.stdout,
                         re.MULTILINE), listing.stdout

        second = cli.run("pull", REPO, SMALL_FILE)
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert "Traceback" not in second.stderr
        assert f"gridless: {ANOTHER_PROCESS}" in second.stderr
        assert not (cli.models / "acme__tiny-GGUF" / SMALL_FILE).exists()

        hub.throttle_bps = None
        out, err = first.communicate(timeout=60)
    finally:
        stop(first)
    assert first.returncode == 0, err
    assert out.strip() == "installed tiny-q4_k_m"
    assert cli.model_files() == [cli.models / "acme__tiny-GGUF" / BIG_FILE]
    assert listed(cli.run("list")) == {BUNDLED: "*", "tiny-q4_k_m": " "}


def test_import_good_gguf(cli: Cli, sources: dict[str, Path]) -> None:
    result = cli.run("import", str(sources["good"]), "--name", "My Tiny")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported my-tiny (")
    copy = cli.models / "imported" / "local-good.gguf"
    assert copy.read_bytes() == sources["good"].read_bytes()
    assert sources["good"].exists()
    listing = cli.run("list")
    assert listed(listing) == {BUNDLED: "*", "my-tiny": " "}
    assert re.search(r"my-tiny\s+\S+ \S+ · F32 · import\n", listing.stdout), listing.stdout


def test_import_relative_path_is_taken_from_the_working_directory(cli: Cli, sources: dict[str, Path]) -> None:
    (cli.cwd / "here.gguf").write_bytes(sources["good"].read_bytes())
    result = cli.run("import", "here.gguf")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported here (")
    assert (cli.models / "imported" / "here.gguf").read_bytes() == sources["good"].read_bytes()


@pytest.mark.parametrize(("source", "reason"), [
    ("text", "text.gguf is not a GGUF model file"),
    ("truncated", "truncated.gguf is truncated"),
    ("oversized", "more than the file could hold"),
    ("missing.gguf", "is not a file"),
])
def test_import_refused_copies_nothing(cli: Cli, sources: dict[str, Path], source: str, reason: str) -> None:
    path = str(sources[source]) if source in sources else source
    result = cli.run("import", path)
    assert_refused(result, reason)
    if source not in sources:
        assert str(cli.cwd / source) in result.stderr
    assert cli.model_files() == []
    assert listed(cli.run("list")) == {BUNDLED: "*"}


def test_use_and_rm(cli: Cli, sources: dict[str, Path]) -> None:
    assert cli.run("import", str(sources["good"]), "--name", "mine").returncode == 0
    copy = cli.models / "imported" / "local-good.gguf"

    use = cli.run("use", "mine")
    assert use.returncode == 0, use.stderr
    assert use.stdout.strip() == "mine is now used for chat"
    assert listed(cli.run("list")) == {BUNDLED: " ", "mine": "*"}

    rm = cli.run("rm", "mine")
    assert rm.returncode == 0, rm.stderr
    assert rm.stdout.strip() == "deleted mine"
    assert not copy.exists()
    assert cli.model_files() == []
    assert listed(cli.run("list")) == {BUNDLED: "*"}

    assert_refused(cli.run("rm", BUNDLED), "comes with the app and cannot be deleted")
    assert_refused(cli.run("rm", "nope"), "no model 'nope'")
    assert_refused(cli.run("use", "nope"), "no model 'nope'")
    assert listed(cli.run("list")) == {BUNDLED: "*"}


def test_rm_pulled_model_removes_its_folder(cli: Cli) -> None:
    assert cli.run("pull", REPO, SMALL_FILE).returncode == 0
    assert (cli.models / "acme__tiny-GGUF" / SMALL_FILE).exists()
    rm = cli.run("rm", "tiny-q8_0")
    assert rm.returncode == 0, rm.stderr
    assert not (cli.models / "acme__tiny-GGUF").exists()
    assert cli.model_files() == []


def test_list_returns_promptly_while_an_unfinished_download_waits(cli: Cli, hub: HubServer,
                                                                   sources: dict[str, Path]) -> None:
    hub.throttle_bps = 500_000
    first = cli.start("pull", REPO, BIG_FILE)
    try:
        wait_until(lambda: cli.part_size() >= TRANSFERRING or first.poll() is not None)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        stop(first)
    assert cli.part_size() < 0.5 * sources[BIG_FILE].stat().st_size

    started = time.monotonic()
    listing = cli.run("list")
    elapsed = time.monotonic() - started
    assert listing.returncode == 0
    assert re.search(r"^download \w+: acme/tiny-GGUF tiny-Q4_K_M — ", listing.stdout, re.MULTILINE)
    assert elapsed < 4.0, f"`gridless models list` took {elapsed:.1f} s"


# ----- model files made to stop the command ----------------------------------------------------

HANG_GUARD_S = 30
PEAK_MEMORY = """import atexit, sys
def peak():
    status = open("/proc/self/status").read()
    print("VmHWM", next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), file=sys.stderr)
atexit.register(peak)
from backend.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""`gridless` run in a Python that reports its peak resident memory (kB) on stderr as it exits."""


@pytest.mark.parametrize("name", list(HOSTILE))
def test_import_of_a_hostile_file_is_refused_with_its_reason(cli: Cli, hostile: Path, name: str) -> None:
    write, reason = HOSTILE[name]
    result = cli.run("import", str(write(hostile / name)), timeout=HANG_GUARD_S)
    assert_refused(result, reason)
    assert cli.model_files() == []


def test_list_with_hostile_files_in_the_models_folder(cli: Cli) -> None:
    cli.models.mkdir(parents=True)
    try:
        for name, (write, _) in HOSTILE.items():
            write(cli.models / name)
        result = cli.run("list", timeout=HANG_GUARD_S)
        assert result.returncode == 0, result.stderr
        assert listed(result) == {BUNDLED: "*"}
        for name, (_, reason) in HOSTILE.items():
            said = [line for line in result.stderr.splitlines() if f"ignoring {cli.models / name}: " in line]
            assert len(said) == 1 and reason in said[0], result.stderr
    finally:
        for name in HOSTILE:
            (cli.models / name).unlink(missing_ok=True)


def peak_kib(cli: Cli, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY, *cli.command(*args)[1:]], env=cli.env, cwd=cli.cwd,
                            capture_output=True, text=True, timeout=HANG_GUARD_S * 4, check=False)
    found = re.search(r"^VmHWM (\d+)$", result.stderr, re.MULTILINE)
    assert found, result.stderr
    return result, int(found.group(1))


@pytest.mark.parametrize("count", [4000, 5000])
def test_import_of_thousands_of_long_strings_stays_small(cli: Cli, hostile: Path, sources: dict[str, Path],
                                                          count: int) -> None:
    """Metadata strings of 256 KiB each, 1 GB of them or more (holes in a sparse file): importing it
    must take about what importing a small real model takes, not gigabytes (2.1 and 2.6 GB measured
    when every one of them was kept). 5000 are more entries than any model has; 4000 are not, so
    there it is the cap on the text kept that refuses the file."""
    _, normal = peak_kib(cli, "import", str(sources["good"]))
    result, peak = peak_kib(cli, "import", str(write_long_strings(hostile / "strings.gguf", count=count)))
    assert result.returncode == 1 and "gridless: " in result.stderr, result.stderr
    assert peak < normal + 64 * 1024, f"peak {peak} kB, importing a small model {normal} kB"
