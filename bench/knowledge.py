"""Benchmark: collections of documents with the bundled embedding model (all-MiniLM-L6-v2):
indexing throughput against llama-cpp-python alone, search latency at 10 000 and 100 000 passages,
recall@5 on the labelled set, and memory while indexing.

    python bench/knowledge.py [--runs N] [--sizes 10000,100000] [--limit N] [--json PATH]

Prints a table on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/` (and into PATH with `--json`).

* indexing: the labelled set (`tests/knowledge_set.py`, ~300 documents) added through
  `KnowledgeService` into a new collection of a running `Services` (the real indexer and embedding
  worker, the app's thread count) and timed from the first add until every document is ready:
  passages/s. Against it, a separate process loads the same GGUF with llama-cpp-python as the
  engine does (`Llama(embedding=True, n_ctx = n_batch = n_ubatch = the engine's, the same threads)`)
  and times `llm.embed(batch)` over the very texts the indexer embeds (each passage as
  `indexer.py` sends it, in the indexer's batches of 32 per document), the model loaded before the
  clock starts. Runs alternate which goes first; medians are reported with the ratio app/raw
  (goal >= 0.9). The app's time includes reading, chunking and writing passages and vectors.
* memory: peak RSS of this process (the server's services) and of each engine worker, sampled
  every 100 ms with psutil during the app's indexing runs.
* recall@5: every labelled question searched (k = 5) by meaning, by words and both fused, per
  language and question kind (see tests/knowledge_set.py), on the collection the first run made.
* search latency: synthetic passages written straight into a fresh database with
  `KnowledgeStore` (documents of 100 passages; text drawn by frequency from the labelled set's
  vocabulary plus made-up rare words; random unit vectors of the model's dimension), then
  `KnowledgeService.rank` with precomputed query vectors (the query's embedding excluded):
  words only, vector only and hybrid, p50/p95 over a sample of the labelled questions (`--queries`,
  each mode stopping after `--budget-s`). Goals p95 <= 50 ms at 10 000 passages, <= 200 ms at
  100 000. Beside them, `by_words`' query with the word index read first (CROSS JOIN), checked to
  return the same passages. The databases are kept in the temp folder, keyed by size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.config import Settings  # noqa: E402
from backend.knowledge.chunking import embedding_text  # noqa: E402
from backend.knowledge.indexer import BATCH  # noqa: E402
from backend.knowledge.service import KnowledgeService, SearchMode  # noqa: E402
from backend.knowledge.store import KnowledgeStore  # noqa: E402
from backend.models.install import BUNDLED_EMBEDDING_ID  # noqa: E402
from backend.services import Services  # noqa: E402
from backend.storage.db import Database  # noqa: E402
from backend.storage.media import MediaStore  # noqa: E402
from bench.report import load_avg, log, save  # noqa: E402
from tests.knowledge_set import LabelledSet, Names, answered, build, vocabulary, write_set  # noqa: E402

INDEX_GOAL = 0.9
LATENCY_GOALS_MS = {10_000: 50.0, 100_000: 200.0}
MODES: tuple[SearchMode, ...] = ("words", "vector", "hybrid")
PER_DOCUMENT = 100
"""Synthetic passages per document in the latency databases."""
SEED = 7



# memory -----------------------------------------------------------------------------------------------

class PeakRss:
    """Peak resident memory of this process and of each of its child processes, sampled every 100 ms."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.server = 0
        self.children: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.server = max(self.server, self.me.memory_info().rss)
                for child in self.me.children(recursive=True):
                    try:
                        self.children[child.pid] = max(self.children.get(child.pid, 0), child.memory_info().rss)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, Any]:
        workers = sorted(self.children.values(), reverse=True)
        return {"server_peak_mb": round(self.server / 1e6, 1),
                "embedding_worker_peak_mb": round(workers[0] / 1e6, 1) if workers else None,
                "child_processes": len(workers)}


# indexing through the app -----------------------------------------------------------------------------

@dataclass
class AppRun:
    seconds: float
    passages: int
    documents: int
    memory: dict[str, Any]
    collection_id: str


@dataclass
class Bench:
    services: Services
    labelled: LabelledSet
    runs: list[AppRun] = field(default_factory=list)


async def index_once(bench: Bench, number: int) -> AppRun:
    knowledge = bench.services.knowledge
    collection = await knowledge.create_collection(f"bench {number}")
    with PeakRss() as memory:
        started = time.perf_counter()
        ids = [(await knowledge.add_file(collection.id, path)).id for path in bench.labelled.files]
        documents = await knowledge.wait(ids, within=3600)
        seconds = time.perf_counter() - started
    failed = [(d.name, d.state, d.error) for d in documents if d.state != "ready"]
    if failed:
        raise SystemExit(f"documents not indexed: {failed[:5]}")
    run = AppRun(seconds=seconds, passages=sum(d.passages for d in documents), documents=len(documents),
                 memory=memory.result(), collection_id=collection.id)
    log(f"app run {number}: {run.passages} passages in {seconds:.1f} s ({run.passages / seconds:.1f}/s), "
        f"memory {run.memory}")
    return run


async def indexed_batches(knowledge: KnowledgeService, collection_id: str) -> list[list[str]]:
    """The texts the indexer embedded for a collection, in its order and batches."""
    documents = sorted(await knowledge.documents(collection_id), key=lambda d: d.created_at)
    batches: list[list[str]] = []
    for document in documents:
        texts = [embedding_text(p) for p in await knowledge.store.passages(document.id)]
        batches += [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
    return batches


# raw llama-cpp-python ---------------------------------------------------------------------------------

RAW_SCRIPT = """
import json, sys, time
from llama_cpp import Llama
spec = json.load(open(sys.argv[1]))
n = spec["n_ctx"]
llm = Llama(model_path=spec["model"], embedding=True, n_ctx=n, n_batch=n, n_ubatch=n, n_threads=spec["threads"],
            n_threads_batch=spec["threads"], verbose=False)
llm.embed(["warm up"])
started = time.perf_counter()
for batch in spec["batches"]:
    llm.embed(batch)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def raw_once(spec_path: Path, passages: int) -> float:
    out = subprocess.run([sys.executable, "-c", RAW_SCRIPT, str(spec_path)], capture_output=True, text=True,
                         check=True)
    seconds = float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    log(f"raw run: {passages} passages in {seconds:.1f} s ({passages / seconds:.1f}/s)")
    return seconds


def engine_context(model: Path) -> int:
    """The context (= batch = micro-batch) the embedding engine loads this model with."""
    from backend.engines.embed import MAX_CONTEXT
    from backend.engines.gguf_check import check_gguf_file
    from backend.models.memory import EMBEDDING_BATCH
    trained = check_gguf_file(model).trained_context or 512
    return max(8, min(trained, MAX_CONTEXT, EMBEDDING_BATCH))


# recall -----------------------------------------------------------------------------------------------

async def measure_recall(knowledge: KnowledgeService, collection_id: str, labelled: LabelledSet) -> dict[str, Any]:
    found: dict[tuple[str, str, str], list[bool]] = {}
    embed_ms: list[float] = []
    for question in labelled.questions:
        for mode in MODES:
            result = await knowledge.search([collection_id], question.text, k=5, mode=mode)
            if mode == "vector":
                embed_ms.append(result.timings.get("embed_ms", 0.0))
            ok = answered(question, [(h.document_name, h.passage.text) for h in result.hits])
            for key in ((mode, question.language, "all"), (mode, "all", question.kind), (mode, "all", "all")):
                found.setdefault(key, []).append(ok)
    table = {f"{mode}/{language}/{kind}": round(sum(v) / len(v), 3) for (mode, language, kind), v in found.items()}
    counts = {"en": sum(q.language == "en" for q in labelled.questions),
              "it": sum(q.language == "it" for q in labelled.questions)}
    return {"recall_at_5": table, "questions": counts,
            "query_embedding_ms": {"p50": round(statistics.median(embed_ms), 1),
                                   "p95": round(float(np.percentile(embed_ms, 95)), 1)}}


# search latency ---------------------------------------------------------------------------------------

class Sampler:
    """Passage text drawn by frequency from the labelled set's words, with a tail of made-up rare words."""

    def __init__(self, seed: int) -> None:
        counts = vocabulary(build())
        rng = random.Random(seed)
        names = Names(rng)
        words = list(counts)
        weights = [float(counts[w]) for w in words]
        rare = [names.word().lower() for _ in range(20_000)]
        words += rare
        weights += [0.3] * len(rare)
        p = np.asarray(weights)
        self.words = np.asarray(words, dtype=object)
        self.p = p / p.sum()
        self.np_rng = np.random.default_rng(seed)

    def text(self, n_words: int) -> str:
        picks = self.words[self.np_rng.choice(len(self.words), size=n_words, p=self.p)]
        sentences, at = [], 0
        while at < n_words:
            step = int(self.np_rng.integers(8, 20))
            part = " ".join(picks[at:at + step])
            sentences.append(part[:1].upper() + part[1:] + ".")
            at += step
        return " ".join(sentences)


async def build_latency_db(path: Path, passages: int, dim: int) -> None:
    """A database of `passages` synthetic passages (words drawn from the labelled set's vocabulary,
    random unit vectors), written in bulk: documents of PER_DOCUMENT passages, all ready."""
    marker = path.with_suffix(".done")
    if marker.exists() and path.exists():
        return
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    db = Database(path)
    await db.open()
    try:
        store = KnowledgeStore(db)
        collection = await store.create_collection("latency")
        collection = await store.use_embedder(collection, BUNDLED_EMBEDDING_ID, dim)
        sampler = Sampler(SEED)
        rng = np.random.default_rng(SEED)
        per_transaction = 50
        now = time.time()
        for first in range(0, passages // PER_DOCUMENT, per_transaction):
            documents = range(first, min(first + per_transaction, passages // PER_DOCUMENT))
            async with db.transaction() as conn:
                for d in documents:
                    await conn.execute(
                        "INSERT INTO documents (id, collection_id, name, kind, size, sha256, file, state, passages,"
                        " embedded, created_at, updated_at) VALUES (?, ?, ?, 'markdown', 1, ?, ?, 'ready', ?, ?, ?, ?)",
                        (f"doc{d:06d}", collection.id, f"doc-{d:06d}.md", f"{d:064x}", f"documents/{d}.md",
                         PER_DOCUMENT, PER_DOCUMENT, now, now))
                    base = d * PER_DOCUMENT + 1
                    await conn.executemany(
                        "INSERT INTO passages (n, document_id, ordinal, heading, text, embedded)"
                        " VALUES (?, ?, ?, ?, ?, 1)",
                        [(base + i, f"doc{d:06d}", i, f"Section {i % 7}", sampler.text(int(rng.integers(60, 180))))
                         for i in range(PER_DOCUMENT)])
                    vectors = rng.standard_normal((PER_DOCUMENT, dim)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    await conn.executemany(f"INSERT INTO {collection.vectors_table} (rowid, embedding) VALUES (?, ?)",
                                           [(base + i, vectors[i].tobytes()) for i in range(PER_DOCUMENT)])
            log(f"latency database {passages}: {(documents.stop) * PER_DOCUMENT} passages")
    finally:
        await db.close()
    marker.touch()


def percentiles(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2), "max_ms": round(max(values), 2)}


async def measure_latency(path: Path, queries: list[str], dim: int, budget_s: float) -> dict[str, Any]:
    db = Database(path)
    await db.open()
    try:
        store = KnowledgeStore(db)
        collection = (await store.list_collections())[0]
        settings = Settings(data_dir=path.parent / "unused")
        knowledge = KnowledgeService(settings, store, MediaStore(path.parent / "unused-media"),
                                     embeddings=None)  # type: ignore[arg-type]  # rank() never embeds
        rng = np.random.default_rng(SEED + 1)
        result: dict[str, Any] = {"passages": (await store.counts())["passages"]}
        for mode in MODES:
            times: list[float] = []
            spent = time.perf_counter()
            for i, query in enumerate(queries[:5] + queries):  # the first five warm the caches
                vector = rng.standard_normal(dim).astype(np.float32)
                vector /= np.linalg.norm(vector)
                started = time.perf_counter()
                await knowledge.rank([collection], query, {BUNDLED_EMBEDDING_ID: vector.tobytes()}, k=5, mode=mode)
                if i >= 5:
                    times.append((time.perf_counter() - started) * 1000)
                if time.perf_counter() - spent > budget_s and len(times) >= 5:
                    log(f"{mode}: time budget spent after {len(times)} queries")
                    break
            result[mode] = percentiles(times)
            log(f"{result['passages']} passages, {mode}: {result[mode]}")
        return result
    finally:
        await db.close()


# the report -------------------------------------------------------------------------------------------

def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\n{m['cpus']} CPUs, {m['threads']} engine threads, load average {result['load_avg_start']} at start, "
          f"{result['load_avg_end']} at end; took {result['took_s']} s")
    if "indexing" in result:
        ix = result["indexing"]
        print(f"\nindexing {ix['documents']} documents, {ix['passages']} passages ({ix['runs']} runs each, "
              "alternating; medians):")
        print(f"  app (KnowledgeService, add -> all ready)   {ix['app_median_s']:>7.1f} s  "
              f"{ix['app_passages_per_s']:>7.1f} passages/s   runs {ix['app_s']}")
        print(f"  raw llama-cpp-python Llama.embed             {ix['raw_median_s']:>7.1f} s  "
              f"{ix['raw_passages_per_s']:>7.1f} passages/s   runs {ix['raw_s']}")
        ok = ix["ratio_app_over_raw"] >= INDEX_GOAL
        print(f"  app / raw throughput {ix['ratio_app_over_raw']:.3f} (goal >= {INDEX_GOAL}: "
              f"{'met' if ok else 'MISSED'})")
        mem = ix["memory_peak"]
        print(f"  peak RSS while indexing: server {mem['server_peak_mb']} MB, embedding worker "
              f"{mem['embedding_worker_peak_mb']} MB ({mem['child_processes']} child process(es))")
    if "recall" in result:
        r = result["recall"]["recall_at_5"]
        print(f"\nrecall@5 on the labelled set ({result['recall']['questions']} questions):")
        print(f"{'':<14}" + "".join(f"{mode:>9}" for mode in MODES))
        for label, key in (("English", "en/all"), ("Italian", "it/all"), ("named", "all/named"),
                           ("described", "all/described"), ("overall", "all/all")):
            print(f"{label:<14}" + "".join(f"{r[f'{mode}/{key}']:>9.3f}" for mode in MODES))
        q = result["recall"]["query_embedding_ms"]
        print(f"  query embedding (not in the latencies below): p50 {q['p50']} ms, p95 {q['p95']} ms")
    for size, lat in result.get("latency", {}).items():
        goal = LATENCY_GOALS_MS.get(int(size))
        print(f"\nsearch latency, {lat['passages']} passages (KnowledgeService.rank, k = 5, query vector given):")
        print(f"{'':<10}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
        for mode in MODES:
            v = lat[mode]
            print(f"{mode:<10}{v['n']:>6}{v['p50_ms']:>9.1f}{v['p95_ms']:>9.1f}{v['max_ms']:>9.1f}")
        if goal is not None:
            worst = max(lat[mode]["p95_ms"] for mode in MODES)
            print(f"  goal p95 <= {goal:.0f} ms: {'met' if worst <= goal else 'MISSED'} (worst p95 {worst:.1f} ms)")


async def compare_indexing(args: argparse.Namespace, bench: Bench, first: AppRun, tmp: Path) -> dict[str, Any]:
    """The app's indexing runs against raw llama-cpp-python's, alternating which goes first."""
    knowledge = bench.services.knowledge
    model = bench.services.embeddings.resolve(None)
    n_ctx = engine_context(Path(model.path))
    batches = await indexed_batches(knowledge, first.collection_id)
    spec_path = tmp / "raw.json"
    spec_path.write_text(json.dumps({"model": str(model.path), "threads": bench.services.settings.inference_threads,
                                     "n_ctx": n_ctx, "batches": batches}))
    app_s: list[float] = []
    raw_s: list[float] = []
    for i in range(args.runs):
        for side in (("app", "raw") if i % 2 == 0 else ("raw", "app")):
            if side == "app":
                run = await index_once(bench, i + 1)
                bench.runs.append(run)
                app_s.append(run.seconds)
                await knowledge.delete_collection(run.collection_id)
            else:
                raw_s.append(await asyncio.to_thread(raw_once, spec_path, first.passages))
    app, raw = statistics.median(app_s), statistics.median(raw_s)
    peaks = [r.memory for r in bench.runs]
    return {"documents": first.documents, "passages": first.passages, "runs": args.runs, "batches": len(batches),
            "app_s": [round(x, 2) for x in app_s], "raw_s": [round(x, 2) for x in raw_s],
            "app_median_s": round(app, 2), "raw_median_s": round(raw, 2),
            "app_passages_per_s": round(first.passages / app, 1), "raw_passages_per_s": round(first.passages / raw, 1),
            "ratio_app_over_raw": round(raw / app, 3), "first_run_with_model_load_s": round(first.seconds, 2),
            "memory_peak": {"server_peak_mb": max(p["server_peak_mb"] for p in peaks),
                            "embedding_worker_peak_mb": max(p["embedding_worker_peak_mb"] or 0 for p in peaks),
                            "child_processes": max(p["child_processes"] for p in peaks)},
            "model": {"id": model.id, "path": str(model.path), "n_ctx": n_ctx}}


async def run_app_side(args: argparse.Namespace, tmp: Path, result: dict[str, Any]) -> None:
    labelled = write_set(tmp / "documents", limit=args.limit)
    settings = Settings(data_dir=tmp / "data", token="t" * 20, threads=args.threads or 0)
    result["machine"] = {"cpus": os.cpu_count(), "threads": settings.inference_threads}
    services = Services.build(settings)
    await services.start()
    try:
        bench = Bench(services=services, labelled=labelled)
        knowledge = services.knowledge
        dim = 0
        if not args.skip_index or not args.skip_recall:
            first = await index_once(bench, 0)  # also loads the model: not counted
            bench.runs.append(first)
            dim = (await knowledge.collection(first.collection_id)).dim or 0
            if not args.skip_index:
                result["indexing"] = await compare_indexing(args, bench, first, tmp)
            if not args.skip_recall:
                log("recall@5 on the labelled set")
                result["recall"] = await measure_recall(knowledge, first.collection_id, labelled)
        result["dim"] = dim or 384
    finally:
        await services.stop()


async def run_latency(args: argparse.Namespace, result: dict[str, Any]) -> None:
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    questions = [q.text for q in write_set(Path(tempfile.mkdtemp(prefix="gridless-bench-set-"))).questions]
    queries = random.Random(SEED).sample(questions, min(args.queries, len(questions)))
    result["latency"] = {}
    for size in args.sizes:
        path = cache / f"passages-{size}-{result['dim']}.db"
        log(f"latency database of {size} passages: {path}")
        await build_latency_db(path, size, result["dim"])
        result["latency"][str(size)] = await measure_latency(path, queries, result["dim"], args.budget_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="indexing runs of each side, alternating (default 3)")
    parser.add_argument("--limit", type=int, default=None, help="documents of each language (default all 150)")
    parser.add_argument("--sizes", default="10000,100000", help="passages in the latency databases")
    parser.add_argument("--queries", type=int, default=200, help="latency queries per mode (labelled questions)")
    parser.add_argument("--budget-s", type=float, default=120.0, help="time at most per latency mode and size")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: the app's choice)")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "gridless-bench-knowledge"))
    parser.add_argument("--skip-index", action="store_true", help="leave out the indexing comparison")
    parser.add_argument("--skip-recall", action="store_true", help="leave out recall@5")
    parser.add_argument("--skip-latency", action="store_true", help="leave out search latency")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the results as JSON to PATH too")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    # engine workers start with `python -P`: let them import this checkout, not an installed gridless
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    result: dict[str, Any] = {"load_avg_start": load_avg(), "args": vars(args) | {"cache_dir": None}}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-knowledge-") as tmp_name:
        asyncio.run(run_app_side(args, Path(tmp_name), result))
    if not args.skip_latency:
        asyncio.run(run_latency(args, result))
    result["load_avg_end"] = load_avg()
    result["took_s"] = round(time.perf_counter() - started, 1)
    report(result)
    save("knowledge", result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
