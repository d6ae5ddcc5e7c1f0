"""What a language model can do beyond plain chat, as small badges on its card: "Thinks",
"Tools", "Sees photos". A catalog entry lists them; an installed model's are read from its file."""

from __future__ import annotations

from collections.abc import Sequence

from nicegui import ui

from backend.core.i18n import _
from backend.engines.reply_format import template_features
from backend.models.features import model_features
from backend.models.registry import ModelRecord

__all__ = ["feature_badges", "feature_text", "installed_features"]


def feature_text() -> dict[str, tuple[str, str, str]]:
    """A feature → its label, icon and tooltip (in the page's language)."""
    return {"thinking": (_("Thinks"), "psychology", _("Thinks step by step before it answers")),
            "tools": (_("Tools"), "build", _("Can use tools (a calculator, the clock, …)")),
            "vision": (_("Sees photos"), "photo_camera", _("Reads and describes photos"))}


def _template_labels(template: str | None) -> list[str]:
    return template_features(template).labels()


def installed_features(record: ModelRecord) -> list[str]:
    """What an installed model can do, from its chat template and projector (kept per file version)."""
    return model_features(record, _template_labels)


def feature_badges(features: Sequence[str]) -> None:
    """The badges in a row, or nothing for a model without any."""
    if not features:
        return
    texts = feature_text()
    with ui.row().classes("items-center gap-1").props("data-testid=model-features"):
        for feature in features:
            if feature not in texts:
                continue
            label, icon, tooltip = texts[feature]
            with ui.badge(color="teal-8").props(f"outline data-testid=feature-{feature}").classes("q-px-xs"):
                ui.icon(icon, size="14px").classes("q-mr-xs")
                ui.label(label)
                ui.tooltip(tooltip)
