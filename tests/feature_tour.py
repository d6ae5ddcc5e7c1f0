"""Every feature used once, against a server traced from its start to its stop.

Run inside a network namespace with no route, by `tests/backend/security/test_nothing_leaves.py`:

    ip netns exec NS python -m tests.feature_tour PLAN.json

The server runs under strace (`tests.nettrace`), with the environment a person's device has; the
hub stand-in listens on 127.0.0.1 in this process; the download is started from the Models page
in Chromium, as the owner starts it (the app has no HTTP route for it). What each step did, the
engine workers it started and what the hub was asked go to the report file; the test reads the
trace itself.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image

from tests.audiofiles import SENTENCES
from tests.documentfiles import REPORT_PAGES, pdf_bytes
from tests.hubserver import HubServer
from tests.nettrace import strace_command
from tests.server import TOKEN, free_port

__all__ = ["TourPlan", "main"]

HIDDEN_PREFIXES = ("PYTEST_", "GRIDLESS_", "ORT_", "HF_")
"""Not passed on to the server: pytest's variables put NiceGUI in its test mode, and an opt-out a
developer set for onnxruntime or huggingface-hub would hide what a person's device does."""
CI_SIGNALS = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
              "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER",
              "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")
"""onnxruntime sends no telemetry when it sees one of these (kCiEnvironmentVariableNames in its
core/platform/telemetry_environment.h; `CI=true` silenced 1.32.0 in a trace): left out, so a CI
machine sees what a phone does."""
ONNX_STEPS = ("read aloud", "dictation")
"""The features whose workers load onnxruntime (Piper; faster-whisper's voice detection)."""
LOOKUP_WAIT_S = 20.0
"""How long those workers are kept before the server stops. onnxruntime 1.32.0's telemetry
uploader first looked up its collector 9 s after the import, then 5.5 s and 8.4 s later
(measured with strace in a namespace without a route)."""


@dataclass(kw_only=True, slots=True)
class TourPlan:
    data_dir: Path
    trace_prefix: Path
    report: Path
    server_log: Path
    cache_dir: Path
    """The server's XDG_CACHE_HOME, where a library would keep what it means to send later."""
    catalog: Path
    catalog_entry: str
    hub_repo: str
    hub_files: dict[str, Path]
    chat_model: str
    vision_model: str
    image_model: str

    @classmethod
    def load(cls, path: Path) -> TourPlan:
        plan = cls(**json.loads(path.read_text()))
        for name in ("data_dir", "trace_prefix", "report", "server_log", "cache_dir", "catalog"):
            setattr(plan, name, Path(getattr(plan, name)))
        plan.hub_files = {name: Path(source) for name, source in plan.hub_files.items()}
        return plan

    def dump(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), default=str))
        return path


@dataclass(kw_only=True, slots=True)
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float
    workers: list[int] = field(default_factory=list)
    """Engine worker processes that started during this step."""


def server_env(plan: TourPlan, hub_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_PREFIXES) and k not in CI_SIGNALS}
    return {**env, "HF_ENDPOINT": hub_url, "GRIDLESS_HF_ENDPOINT": hub_url, "GRIDLESS_CATALOG": str(plan.catalog),
            "XDG_CACHE_HOME": str(plan.cache_dir)}


def expect(response: httpx.Response, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise AssertionError(f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}: "
                             f"{response.text[:300]}")
    return response


def jpeg_url() -> str:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(out, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


class Tour:
    def __init__(self, plan: TourPlan, base: str, server: psutil.Process) -> None:
        self.plan, self.base, self.server = plan, base, server
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
        self.spoken = b""
        self.steps: list[Step] = []
        self.onnx_used_at = 0.0
        self.remote: Any = None

    def run(self, name: str, action: Callable[[], str]) -> None:
        before = {p.pid for p in self.server.children()}
        started = time.monotonic()
        try:
            ok, detail = True, action()
        except Exception as exc:
            ok, detail = False, "".join(traceback.format_exception_only(exc)).strip()
        workers = sorted({p.pid for p in self.server.children()} - before)
        if name in ONNX_STEPS:
            self.onnx_used_at = time.monotonic()
        self.steps.append(Step(name=name, ok=ok, detail=detail, seconds=round(time.monotonic() - started, 1),
                               workers=workers))

    def models(self) -> str:
        ids = [m["id"] for m in expect(self.http.get("/v1/models")).json()["data"]]
        assert self.plan.chat_model in ids, ids
        return f"listed {ids}"

    def chat_page(self) -> str:
        page = expect(self.http.get("/"))
        assert page.headers["content-type"].startswith("text/html"), page.headers["content-type"]
        return f"{len(page.content)} bytes of HTML"

    def chat(self) -> str:
        answer = expect(self.http.post("/v1/chat/completions", json={
            "model": self.plan.chat_model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})).json()
        return f"answered {answer['choices'][0]['message']['content']!r}"

    def read_aloud(self) -> str:
        spoken = expect(self.http.post("/v1/audio/speech", json={"input": SENTENCES}))
        assert spoken.headers["content-type"] == "audio/wav" and len(spoken.content) > 16_000, len(spoken.content)
        self.spoken = spoken.content
        return f"{len(spoken.content)} bytes of WAV"

    def dictation(self) -> str:
        with self.http.stream("POST", "/api/transcripts?stream=1", content=self.spoken or None) as response:
            expect(response)
            events = [json.loads(line) for line in response.iter_lines() if line]
        assert events and events[-1]["type"] == "done" and events[-1]["state"] == "done", events[-1:]
        return f"heard {events[-1]['text']!r}"

    def photo_question(self) -> str:
        answer = expect(self.http.post("/v1/chat/completions", json={
            "model": self.plan.vision_model, "max_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What colour is this?"},
                {"type": "image_url", "image_url": {"url": jpeg_url()}}]}]})).json()
        return f"{answer['usage']['prompt_tokens']} prompt tokens with the photo"

    def attachment(self) -> str:
        stored = expect(self.http.post("/api/attachments", params={"name": "report.pdf"},
                                       content=pdf_bytes(REPORT_PAGES)), 201).json()
        return f"stored as {stored['kind']} {stored['id']}"

    def image(self) -> str:
        made = expect(self.http.post("/v1/images/generations", json={
            "model": self.plan.image_model, "prompt": "a quiet harbour", "size": "128x128", "steps": 1,
            "response_format": "url"})).json()
        return f"made {made['data'][0]['url']}"

    def documents(self) -> str:
        """A collection: a document read and indexed by the embedding worker, then found by meaning."""
        collection = expect(self.http.post("/api/collections", json={"name": "Notes"}), 201).json()["id"]
        expect(self.http.post(f"/api/collections/{collection}/documents", params={"name": "harbour.md"},
                              content=b"# The harbour\n\nThe ferry to the island leaves the harbour at six.\n"), 201)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [d["state"] for d in expect(self.http.get(f"/api/collections/{collection}/documents"))
                      .json()["documents"]]
            if states == ["ready"]:
                break
            assert states and states[0] not in ("failed", "cancelled"), states
            time.sleep(0.2)
        hits = expect(self.http.get(f"/api/collections/{collection}/search",
                                    params={"q": "when does the boat depart", "mode": "vector"})).json()["results"]
        assert hits and "ferry" in hits[0]["text"], hits
        return f"indexed and found {hits[0]['document']!r}"

    def engine_server(self) -> str:
        """Another machine's OpenAI server, added by its address: checked and asked only there."""
        from tests.backend.remote.fake_remote import FakeRemote

        self.remote = FakeRemote(models=("big-model",)).start()
        added = expect(self.http.post("/api/engines", json={"url": self.remote.url, "name": "Laptop"}), 201).json()
        answer = expect(self.http.post("/v1/chat/completions", json={
            "model": f"{added['id']}/big-model", "messages": [{"role": "user", "content": "Hi"}]})).json()
        text = answer["choices"][0]["message"]["content"]
        assert text and len(self.remote.requests("/chat/completions")) == 1, text
        return f"{self.remote.url} answered {text[:40]!r}"

    def download(self) -> str:
        """From the Models page, as the owner does; done when the model is installed."""
        from playwright.sync_api import sync_playwright

        from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                for path in (f"/?token={TOKEN}", "/models"):  # signed in by the owner link, as a person is
                    page.goto(self.base + path)
                    page.wait_for_function("window.did_handshake === true")
                page.get_by_test_id(f"download-{self.plan.catalog_entry}").click()
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    ids = [m["id"] for m in expect(self.http.get("/v1/models")).json()["data"]]
                    if self.plan.catalog_entry in ids:
                        return f"installed {self.plan.catalog_entry}"
                    time.sleep(0.5)
                raise AssertionError(f"{self.plan.catalog_entry} was not installed within 120 s")
            finally:
                browser.close()

    def keep_onnx_workers(self) -> None:
        """Wait until the workers that load onnxruntime have run for LOOKUP_WAIT_S."""
        time.sleep(max(0.0, self.onnx_used_at + LOOKUP_WAIT_S - time.monotonic()))


def wait_healthy(base: str, tracer: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tracer.poll() is not None:
            raise RuntimeError(f"the server exited at start (status {tracer.returncode})")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not healthy within {timeout:.0f} s")


def tour(plan: TourPlan, hub: HubServer, report: dict[str, Any]) -> None:
    """Start the traced server, use every feature, stop it; `report` is filled in as it goes."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "backend.cli", "serve", "--data-dir", str(plan.data_dir), "--port", str(port),
               "--token", TOKEN]
    with plan.server_log.open("ab") as log:
        tracer = subprocess.Popen(strace_command(plan.trace_prefix, command), stdout=log, stderr=subprocess.STDOUT,
                                  env=server_env(plan, hub.url), start_new_session=True)
    try:
        wait_healthy(base, tracer)
        server = psutil.Process(tracer.pid).children()[0]
        report["server_pid"] = server.pid
        visit = Tour(plan, base, server)
        report["steps"] = visit.steps
        for name, action in (("models", visit.models), ("chat page", visit.chat_page), ("chat", visit.chat),
                             ("read aloud", visit.read_aloud), ("dictation", visit.dictation),
                             ("photo question", visit.photo_question), ("attachment", visit.attachment),
                             ("image", visit.image), ("documents", visit.documents),
                             ("engine server", visit.engine_server), ("download", visit.download)):
            visit.run(name, action)
        visit.http.close()
        if visit.remote is not None:
            visit.remote.close()
        visit.keep_onnx_workers()
        report["workers_at_stop"] = sorted(p.pid for p in server.children())
        server.send_signal(signal.SIGTERM)
        report["server_status"] = tracer.wait(90)
    finally:
        if tracer.poll() is None:
            os.killpg(tracer.pid, signal.SIGKILL)
            tracer.wait(10)


def main(argv: list[str]) -> int:
    plan = TourPlan.load(Path(argv[0]))
    report: dict[str, Any] = {}
    with HubServer() as hub:
        hub.add_repo(plan.hub_repo, plan.hub_files, license="apache-2.0")
        try:
            tour(plan, hub, report)
        except Exception:
            report["error"] = traceback.format_exc()
        report["hub_requests"] = [f"{r.method} {r.path}" for r in hub.requests]
    report["steps"] = [asdict(step) for step in report.get("steps", [])]
    plan.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
