"""The curated catalog: the shipped file, validation of broken ones, and fitting a device."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from backend.engines.reply_format import template_features
from backend.models.catalog import CATALOG_FILE, Catalog, CatalogError
from backend.models.files import JOBS, allowed_suffixes
from backend.models.memory import MIB, WORKER_OVERHEAD, estimate_file_model, estimate_llm, largest_context_within
from backend.models.names import safe_relative_path, safe_repo_id
from tests.catalogs import TINY_SHAPE, chat_entry, write_catalog

GIB = 1024 * MIB

SHAPE = TINY_SHAPE


def vision_entry(entry_id: str = "tiny-vision") -> dict[str, Any]:
    return chat_entry(entry_id, job="vision", files=[{"path": "v-Q8_0.gguf", "size_mb": 20},
                                                      {"path": "mmproj-v-f16.gguf", "role": "projector",
                                                       "size_mb": 10}])


def load_error(tmp_path: Path, models: list[dict[str, Any]], **kw: Any) -> str:
    with pytest.raises(CatalogError) as caught:
        Catalog.load(write_catalog(tmp_path / "catalog.json", models, **kw))
    return str(caught.value)


# ----- the shipped catalog ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load(CATALOG_FILE)


def test_the_shipped_catalog_loads(shipped: Catalog) -> None:
    assert CATALOG_FILE.name == "catalog.json" and CATALOG_FILE.parent.name == "models"
    assert len(shipped.entries) >= 10
    assert len({e.id for e in shipped.entries}) == len(shipped.entries)
    for job in JOBS:
        assert shipped.for_job(job), f"no catalog entry for {job}"


def test_every_shipped_entry_is_consistent(shipped: Catalog) -> None:
    for entry in shipped.entries:
        assert safe_repo_id(entry.repo) == entry.repo
        assert shipped.get(entry.id) is entry
        assert sum(f.role == "model" for f in entry.files) == 1
        for f in entry.files:
            assert safe_relative_path(f.path) == f.path
            assert f.path.endswith(allowed_suffixes(entry.job)), (entry.id, f.path)
        if entry.job == "vision":
            assert any(f.role == "projector" for f in entry.files), entry.id
        if entry.job in ("chat", "vision"):
            assert entry.shape is not None and entry.shape.key_length * entry.shape.head_count >= 64
            assert entry.main_file.path.endswith(".gguf")
        assert entry.size_bytes > 0 and entry.estimate(4096).total > entry.size_bytes


def test_shipped_features_match_the_families(shipped: Catalog) -> None:
    for entry in shipped.entries:
        assert ("vision" in entry.features) == (entry.job == "vision"), entry.id
        if entry.job not in ("chat", "vision"):
            assert entry.features == [], entry.id
    qwen3 = [e for e in shipped.entries if e.repo.startswith("unsloth/Qwen3-")]
    assert qwen3 and all("tools" in e.features for e in qwen3)
    templates = Path(__file__).parents[2] / "data" / "templates"
    for ids, template in ((("qwen3-0.6b-q4_k_m", "qwen3-1.7b-q4_k_m", "qwen3-4b-q4_k_m"), "qwen3.jinja"),
                          (("llama-3.2-1b-instruct-q4_k_m", "llama-3.2-3b-instruct-q4_k_m"), "llama-3.2.jinja")):
        published = template_features((templates / template).read_text(encoding="utf-8")).labels()
        for entry_id in ids:  # what the Models page promises is what the installed file will show
            assert shipped.get(entry_id).features == published, entry_id  # type: ignore[union-attr]
    assert shipped.get("gemma-3-1b-it-q4_k_m").features == []  # type: ignore[union-attr]
    raw = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))["models"]
    unsaid = [m["id"] for m in raw if m["job"] in ("chat", "vision") and "features" not in m]
    assert not unsaid, f"language entries must say what they can do, even when it is nothing: {unsaid}"


def test_shipped_estimates_grow_with_model_size(shipped: Catalog) -> None:
    chats = {e.id: e.estimate(4096).total for e in shipped.for_job("chat")}
    assert chats["qwen3-0.6b-q4_k_m"] < chats["qwen3-1.7b-q4_k_m"] < chats["qwen3-4b-q4_k_m"]
    small = shipped.get("smolvlm-256m-instruct-q8_0")
    assert small is not None and small.estimate(100_000).context_length == 8192, "capped at the trained context"


# ----- broken catalogs ----------------------------------------------------------------------


def test_a_valid_test_catalog(tmp_path: Path) -> None:
    catalog = Catalog.load(write_catalog(tmp_path / "c.json", [chat_entry(), vision_entry()]))
    assert [e.id for e in catalog.entries] == ["tiny-chat", "tiny-vision"]
    assert catalog.get("tiny-vision").main_file.path == "v-Q8_0.gguf"  # type: ignore[union-attr]
    assert catalog.get("absent") is None and catalog.for_job("images") == []


@pytest.mark.parametrize("field", ["id", "job", "name", "repo", "files", "license", "min_device_ram_gb",
                                   "shape", "description"])
def test_missing_fields_name_the_entry(tmp_path: Path, field: str) -> None:
    broken = chat_entry("broken-one")
    del broken[field]
    message = load_error(tmp_path, [chat_entry(), broken])
    assert "entry 1" in message
    if field != "id":
        assert "broken-one" in message
    if field != "shape":
        assert field in message


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, [chat_entry(homepage="https://example.org")])
    assert "tiny-chat" in message and "homepage" in message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, [chat_entry("twin"), vision_entry("other"), chat_entry("twin")])
    assert "duplicate" in message


def test_duplicate_ids_are_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, [chat_entry("twin"), vision_entry("other"), chat_entry("twin")])
    assert "twin" in message


@pytest.mark.parametrize("path", ["../x.gguf", "/etc/x.gguf", "a/../x.gguf", "C:\\x.gguf", "x.gguf\x00"])
def test_unsafe_file_paths_are_refused(tmp_path: Path, path: str) -> None:
    message = load_error(tmp_path, [chat_entry("sneaky", files=[{"path": path, "size_mb": 1}])])
    assert "sneaky" in message and "files.0.path" in message


@pytest.mark.parametrize("repo", ["../x", "a/b/c", "solo"])
def test_unsafe_repos_are_refused(tmp_path: Path, repo: str) -> None:
    message = load_error(tmp_path, [chat_entry("bad-repo", repo=repo)])
    assert "bad-repo" in message and "repo" in message


def test_vision_without_projector(tmp_path: Path) -> None:
    entry = vision_entry("blind")
    entry["files"] = entry["files"][:1]
    message = load_error(tmp_path, [entry])
    assert "blind" in message and "projector" in message


@pytest.mark.parametrize(("job", "path"), [("chat", "model.safetensors"), ("vision", "model.bin"),
                                           ("images", "model.ckpt"), ("speech", "model.pt"), ("voice", "v.gguf")])
def test_wrong_suffix_for_the_job(tmp_path: Path, job: str, path: str) -> None:
    entry = chat_entry("wrong-suffix", job=job, files=[{"path": path, "size_mb": 1}])
    if job == "vision":
        entry["files"].append({"path": "mmproj.gguf", "role": "projector", "size_mb": 1})
    message = load_error(tmp_path, [entry])
    assert "wrong-suffix" in message and path in message and "must end with" in message


def test_language_models_need_a_shape_and_one_main_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, [chat_entry("no-shape", shape=None)])
    assert "no-shape" in message and "shape" in message
    two = chat_entry("two-mains", files=[{"path": "a.gguf", "size_mb": 1}, {"path": "b.gguf", "size_mb": 1}])
    assert "exactly one file" in load_error(tmp_path, [two])
    zero = chat_entry("zero", files=[{"path": "a.gguf", "size_mb": 0}])
    assert "zero" in load_error(tmp_path, [zero])


def test_features_are_checked(tmp_path: Path) -> None:
    catalog = Catalog.load(write_catalog(tmp_path / "c.json", [chat_entry(features=["thinking", "tools"]),
                                                                vision_entry()]))
    assert catalog.entries[0].features == ["thinking", "tools"] and catalog.entries[1].features == ["vision"]
    assert Catalog.load(write_catalog(tmp_path / "d.json", [chat_entry()])).entries[0].features == []
    for bad, reason in ((["tools", "thinking"], "sorted"), (["tools", "tools"], "sorted"),
                        (["sings"], "features.0"), (["vision"], "only a vision model")):
        message = load_error(tmp_path, [chat_entry("odd-features", features=bad)])
        assert "odd-features" in message and reason in message, message
    message = load_error(tmp_path, [vision_entry("blind-features") | {"features": ["tools"]}])
    assert "blind-features" in message and "'vision'" in message
    voice = {"id": "a-voice", "job": "voice", "name": "Voice", "description": "test", "repo": "acme/voices",
             "files": [{"path": "v.onnx", "size_mb": 1}], "license": "mit", "min_device_ram_gb": 1,
             "features": ["tools"]}
    assert "only a language model" in load_error(tmp_path, [voice])


def test_shipped_voices_say_their_language(shipped: Catalog) -> None:
    voices = shipped.for_job("voice")
    for entry in voices:  # Piper's files live under <language>/<language_REGION>/<name>/<quality>/
        assert entry.languages == [entry.main_file.path.split("/")[0]], entry.id
        assert entry.repo == "rhasspy/piper-voices"
        assert [f.path for f in entry.files] == [entry.main_file.path, entry.main_file.path + ".json"]
    italian = {e.id: e for e in voices if e.languages == ["it"]}
    assert {"piper-it_it-paola-medium", "piper-it_it-riccardo-x_low"} <= set(italian)
    assert italian["piper-it_it-paola-medium"].main_file.path == "it/it_IT/paola/medium/it_IT-paola-medium.onnx"
    assert italian["piper-it_it-riccardo-x_low"].main_file.path == \
        "it/it_IT/riccardo/x_low/it_IT-riccardo-x_low.onnx"
    assert italian["piper-it_it-riccardo-x_low"].size_bytes < italian["piper-it_it-paola-medium"].size_bytes / 2


def test_the_shipped_catalog_offers_multilingual_dictation(shipped: Catalog) -> None:
    speech = shipped.for_job("speech")
    multilingual = [e for e in speech if not e.repo.endswith((".en", "-en")) and "multilingual" in e.name]
    assert multilingual, [e.id for e in speech]
    for entry in speech:  # an English-only Whisper says so
        assert (".en" in entry.repo) == ("English only" in entry.name), entry.id


def test_a_voice_has_one_language(tmp_path: Path) -> None:
    voice = {"id": "a-voice", "job": "voice", "name": "Voice", "description": "test", "repo": "acme/voices",
             "files": [{"path": "v.onnx", "size_mb": 1}], "license": "mit", "min_device_ram_gb": 1}
    assert Catalog.load(write_catalog(tmp_path / "c.json", [voice | {"languages": ["it"]}])).entries[0].languages \
        == ["it"]
    assert Catalog.load(write_catalog(tmp_path / "d.json", [voice])).entries[0].languages == []
    assert "speaks one language" in load_error(tmp_path, [voice | {"languages": ["it", "en"]}])
    assert "two-letter" in load_error(tmp_path, [voice | {"languages": ["it_IT"]}])
    assert "only an embedding model or a voice has languages" in \
        load_error(tmp_path, [chat_entry(languages=["it"])])


@pytest.mark.parametrize(("field", "value"), [("id", "Has Capitals"), ("job", "translate"),
                                              ("min_device_ram_gb", 0), ("name", "")])
def test_bad_values(tmp_path: Path, field: str, value: Any) -> None:
    assert field in load_error(tmp_path, [chat_entry(**{field: value})])


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_other_catalog_versions_are_refused(tmp_path: Path, version: Any) -> None:
    assert "not a version 1 catalog" in load_error(tmp_path, [chat_entry()], version=version)


def test_unreadable_catalogs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(path)
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "absent.json")
    path.write_text(json.dumps({"version": 1, "models": {"a": 1}}))
    with pytest.raises(CatalogError, match="version 1"):
        Catalog.load(path)


# ----- fitting a device ---------------------------------------------------------------------


def test_fit_within_the_budget(shipped: Catalog) -> None:
    entry = shipped.get("qwen3-0.6b-q4_k_m")
    assert entry is not None
    fit = Catalog.fit(entry, budget=6 * GIB, physical=8 * GIB, n_ctx=4096)
    assert fit.fits and fit.reason is None and fit.estimate == entry.estimate(4096).total


def test_an_entry_over_the_budget_does_not_fit(shipped: Catalog) -> None:
    entry = shipped.get("qwen3-4b-q4_k_m")
    assert entry is not None
    needed = entry.estimate(4096).total
    fit = Catalog.fit(entry, budget=needed - 1, physical=64 * GIB, n_ctx=4096)
    assert not fit.fits and fit.estimate == needed
    assert fit.reason is not None and "memory budget" in fit.reason
    assert Catalog.fit(entry, budget=needed, physical=64 * GIB, n_ctx=4096).fits


def test_an_entry_for_a_bigger_device_does_not_fit(shipped: Catalog) -> None:
    entry = shipped.get("qwen3-4b-q4_k_m")
    assert entry is not None and entry.min_device_ram_gb == 8
    fit = Catalog.fit(entry, budget=64 * GIB, physical=4 * GIB, n_ctx=4096)
    assert not fit.fits and fit.reason == "recommended for devices with 8 GB of RAM or more"
    assert Catalog.fit(entry, budget=64 * GIB, physical=int(7.5 * GIB), n_ctx=4096).fits, \
        "a phone sold as 8 GB reports a little less"


def test_fit_uses_the_context(tmp_path: Path) -> None:
    catalog = Catalog.load(write_catalog(tmp_path / "c.json", [chat_entry(shape=SHAPE | {"trained_context": 32768})]))
    entry = catalog.entries[0]
    short, long = entry.estimate(512).total, entry.estimate(32768).total
    assert short < long
    budget = (short + long) // 2
    assert Catalog.fit(entry, budget=budget, physical=8 * GIB, n_ctx=512).fits
    assert not Catalog.fit(entry, budget=budget, physical=8 * GIB, n_ctx=32768).fits


# ----- the estimate arithmetic ----------------------------------------------------------------


def test_llm_estimate_parts() -> None:
    estimate = estimate_llm(SHAPE, 6_000_000, 1024)
    assert estimate.kv_cache == 2 * 2 * (16 + 16) * 2 * 1024
    assert estimate.weights == 6_000_000 and estimate.overhead == WORKER_OVERHEAD
    assert estimate.total == estimate.weights + estimate.kv_cache + estimate.compute + estimate.overhead
    assert estimate.context_length == 1024 and estimate.as_dict()["total"] == estimate.total
    assert "KV cache" in estimate.describe() and "1024 tokens" in estimate.describe()


def test_file_model_estimates() -> None:
    images = estimate_file_model("images", 1_000_000_000)
    assert images.kv_cache == 0 and images.total > 1_000_000_000 + WORKER_OVERHEAD
    assert estimate_file_model("voice", 60_000_000).total < images.total
    assert "KV cache" not in images.describe()


@pytest.mark.parametrize("target", [512, 768, 1024, 2048])
def test_largest_context_within_is_the_longest_that_fits(target: int) -> None:
    shape = SHAPE | {"trained_context": 8192}
    budget = estimate_llm(shape, 2_000_000, target).total
    assert largest_context_within(shape, 2_000_000, budget) == target
    assert largest_context_within(shape, 2_000_000, budget - 1) == (target - 256 if target > 512 else None)


def test_largest_context_within_stops_at_the_trained_context() -> None:
    shape = copy.deepcopy(SHAPE)
    assert largest_context_within(shape, 2_000_000, 64 * 1024 * MIB) == 2048
    assert largest_context_within(shape, 2_000_000, WORKER_OVERHEAD) is None
