"""What an installed language model can do beyond plain chat: think, use tools, see photos.

Thinking and tools are read from the chat template in the GGUF header (the text the prompt is
rendered with); seeing photos means the model has a vision projector. The header is read with the
bounded reader, and the answer is kept per file (path, size, modification time), so asking often
(the Models page does, twice a second) costs a `stat`. A missing or damaged file can do nothing:
the answer is an empty list.

What a template shows is decided by `engines.reply_format.template_features`, which sits a layer
above this package; the caller passes it in as `template_labels` (the Models page does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core.jobs import Job
from .gguf_info import read_gguf_info
from .registry import ModelRecord

__all__ = ["FEATURE_KEYS", "TemplateLabels", "model_features"]

FEATURE_KEYS = ("thinking", "tools", "vision")
"""Every feature, in the order they are listed."""

TemplateLabels = Callable[[str | None], list[str]]
"""A chat template's text (None: the file has none) → the subset of ["thinking", "tools"] it shows."""

_CACHE_MAX = 64
_cache: dict[tuple[str, int, int], list[str]] = {}


def model_features(record: ModelRecord, template_labels: TemplateLabels) -> list[str]:
    """"thinking", "tools" and "vision" as far as this model has them (in that order); [] for a
    model that is not a language model, and for a file that cannot be read."""
    if record.job not in (Job.CHAT, Job.VISION):
        return []
    path = Path(record.path)
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    labels = _cache.get(key)
    if labels is None:
        labels = _labels_of(path, template_labels)
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = labels
    return [*labels, "vision"] if record.projector is not None else list(labels)


def _labels_of(path: Path, template_labels: TemplateLabels) -> list[str]:
    try:
        template = read_gguf_info(path).metadata.get("tokenizer.chat_template")
        return [x for x in FEATURE_KEYS[:2] if x in template_labels(template if isinstance(template, str) else None)]
    except Exception:  # a damaged file (GgufError), one that went away meanwhile, or one the reader trips on
        return []
