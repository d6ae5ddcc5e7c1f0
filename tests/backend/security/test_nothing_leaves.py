"""Nothing leaves the device: on a phone in airplane mode (a namespace with nothing but loopback),
the server and its engine workers, used for every feature, try to reach nothing but loopback,
keep nothing to send later, and the hub is asked only what the download the owner started needs.

`tests.feature_tour` runs inside the namespace: it starts the server under strace and uses every
feature once. This test, outside, reads the trace: every connect, sendto, sendmsg and sendmmsg
that names an address counts, whatever its result, since a name lookup without a route fails at
once (ENETUNREACH) yet is what would have gone out on a real network.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.catalogs import chat_entry, write_catalog
from tests.e2e.conftest import CHROMIUM
from tests.feature_tour import ONNX_STEPS, TourPlan
from tests.ggufs import write_lm_gguf, write_tiny_mmproj
from tests.loops import run_alone
from tests.netns import NoNetwork, netns_available
from tests.nettrace import Attempt, read_trace
from tests.sdmodels import TINY_SD, register_image_model
from tests.vision_models import VISION, vision_data_dir

pytestmark = pytest.mark.engine

if shutil.which("strace") is None or not netns_available():
    pytest.skip("needs strace, root and `ip netns`", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[3]
REPO, FILE, ENTRY = "acme/tiny-GGUF", "tiny-Q4_K_M.gguf", "tiny-chat"
CHAT = "smollm2-135m-instruct"
TOUR_TIMEOUT_S = 900


def needed_by_the_download(request: str) -> bool:
    """Model info, the file listing and the file itself, for the catalog's repository only."""
    method, _, path = request.partition(" ")
    return method in ("GET", "HEAD", "POST") and (path.startswith(f"/api/models/{REPO}")
                                                  or path.startswith(f"/{REPO}/resolve/"))


def roles(report: dict[str, Any]) -> dict[int, str]:
    """Each traced process by what it is: the server, or the worker a feature started."""
    named = {report["server_pid"]: "the server"}
    for step in report["steps"]:
        named.update({pid: f"the engine worker started by {step['name']}" for pid in step["workers"]})
    return named


def leaks_by_process(leaks: list[Attempt], named: dict[int, str]) -> list[str]:
    counted = Counter((a.process, a.command, a.summary) for a in leaks)
    return [f"{named.get(process, 'another process')} (pid {process}: {command}) tried {count}×: {summary}"
            for (process, command, summary), count in counted.items()]


@pytest.fixture
def plan(tmp_path: Path, smollm_path: Path, sdxs_path: Path) -> TourPlan:
    """A data folder with the bundled models, a vision model and an image model; a catalog naming
    one file of the hub stand-in's repository."""
    data = vision_data_dir(tmp_path, smollm_path, write_tiny_mmproj(tmp_path / "mmproj-tiny-vision.gguf"))
    run_alone(register_image_model(data / "gridless.db", sdxs_path))
    for folder in ("hub", "trace", "cache"):
        (tmp_path / folder).mkdir()
    return TourPlan(
        data_dir=data, trace_prefix=tmp_path / "trace" / "task", report=tmp_path / "report.json",
        server_log=tmp_path / "server.log", cache_dir=tmp_path / "cache",
        catalog=write_catalog(tmp_path / "catalog.json", [chat_entry(ENTRY, repo=REPO, path=FILE, size_mb=6)]),
        catalog_entry=ENTRY, hub_repo=REPO, hub_files={FILE: write_lm_gguf(tmp_path / "hub" / FILE, size_mb=6)},
        chat_model=CHAT, vision_model=VISION, image_model=TINY_SD)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="the download is started from the Models page, in Chromium")
def test_every_feature_without_a_network_reaches_nothing_but_loopback(plan: TourPlan, tmp_path: Path) -> None:
    with NoNetwork() as offline:
        subprocess.run(offline.command(sys.executable, "-m", "tests.feature_tour",
                                       str(plan.dump(tmp_path / "plan.json"))),
                       cwd=ROOT, timeout=TOUR_TIMEOUT_S, check=True)
    report = json.loads(plan.report.read_text())
    assert "error" not in report, f"{report['error']}\nserver log: {plan.server_log}"
    trace, named = read_trace(plan.trace_prefix), roles(report)

    problems = [f"{s['name']} did not work: {s['detail']}" for s in report["steps"] if not s["ok"]]
    workers = [pid for pid in named if pid != report["server_pid"]]
    if "backend.cli serve" not in trace.commands.get(report["server_pid"], "") or len(workers) < 4 \
            or not all("backend.runtime.child" in trace.commands.get(pid, "") for pid in workers):
        problems.append(f"the trace did not follow the server and every engine worker: {named}")
    onnx_workers = [pid for s in report["steps"] if s["name"] in ONNX_STEPS for pid in s["workers"]]
    if len(onnx_workers) != 2 or not set(onnx_workers) <= set(report["workers_at_stop"]):
        problems.append("the voice and speech workers must still run when the server stops, or their attempts "
                        f"go unseen: {onnx_workers} started, {report['workers_at_stop']} running at the stop")
    problems += [f"tried to reach beyond loopback: {leak}" for leak in leaks_by_process(trace.leaks(), named)]
    # onnxruntime's telemetry keeps a device id and the events it could not send in the cache folder
    # (Microsoft/DeveloperTools/.onnxruntime/), to send them once there is a network
    # (gridless's own cache holds only the bundled embedding model it writes from its package)
    kept = sorted(str(p.relative_to(plan.cache_dir)) for p in plan.cache_dir.rglob("*")
                  if p.is_file() and not p.relative_to(plan.cache_dir).parts[:2] == ("gridless", "bundled"))
    problems += [f"kept in the cache folder, as if to be sent later: {path}" for path in kept]
    asked = report["hub_requests"]
    if not any(r.startswith(f"GET /{REPO}/resolve/") and r.endswith(f"/{FILE}") for r in asked):
        problems.append(f"the download did not come from the hub stand-in: {asked}")
    problems += [f"the hub was asked what the download does not need: {r}" for r in asked
                 if not needed_by_the_download(r)]
    if report["server_status"] not in (0, -signal.SIGTERM):  # uvicorn re-raises the signal once it has stopped
        problems.append(f"the server did not stop by itself on SIGTERM (status {report['server_status']}), so "
                        "its shutdown was not traced to the end")
    assert not problems, f"server log: {plan.server_log}\n" + "\n".join(problems)
