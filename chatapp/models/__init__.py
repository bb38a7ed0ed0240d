"""Model providers and the registry that builds the model menu from settings.

Adding a provider = one module implementing `ChatModel` + one line in `PROVIDERS` saying how its
settings make one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chatapp.models.auto import AutoModel, build_auto
from chatapp.models.base import (
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOptions,
    ModelUnavailable,
    ReplyStats,
    StreamCut,
)
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.models.waking import WakingModel, with_wake_tracking
from chatapp.settings import Settings

__all__ = [
    "COMBINED",
    "PROVIDERS",
    "AutoModel",
    "ChatModel",
    "GeminiModel",
    "GenerationParams",
    "ModelError",
    "ModelOptions",
    "ModelUnavailable",
    "OpenAICompatModel",
    "ReplyStats",
    "StreamCut",
    "WakingModel",
    "build_models",
    "wants_self_hosted",
]

# provider name -> how to build it from settings. Order here is the menu order: self-hosted first.
PROVIDERS: dict[str, Callable[[Settings], ChatModel]] = {
    "openai_compat": lambda s: OpenAICompatModel(
        s.self_hosted_label,
        s.self_hosted_url,
        s.self_hosted_model,
        timeout_s=s.request_timeout_s,
        max_connections=s.concurrency,
    ),
    "gemini": lambda s: GeminiModel(
        s.gemini_label, s.gemini_model, location=s.gemini_location, timeout_s=s.request_timeout_s
    ),
}

# Entries made of the providers' models, first in the menu; a builder returns None when it does not apply.
COMBINED: dict[str, Callable[[Settings, Mapping[str, ChatModel]], ChatModel | None]] = {"auto": build_auto}


def build_models(settings: Settings) -> dict[str, ChatModel]:
    """Every configured model keyed by its label, in menu order. Building never touches the network."""
    models: dict[str, ChatModel] = {}
    for build in PROVIDERS.values():
        model = build(settings)
        models[model.label] = model
    if settings.self_hosted_wakes:  # the self-hosted server may be asleep, and a turn wakes it
        models = with_wake_tracking(models, settings.gemini_label)
    combined = [m for build_combined in COMBINED.values() if (m := build_combined(settings, models)) is not None]
    return {**{m.label: m for m in combined}, **models}


def wants_self_hosted(model: ChatModel) -> bool:
    """Whether a turn on `model` asks for the self-hosted server: chosen directly, or Auto, which tries it first
    (even while it skips a server that is down or asleep: that turn is the demand that should wake it)."""
    first = model.primary if isinstance(model, AutoModel) else model
    first = first.inner if isinstance(first, WakingModel) else first
    return isinstance(first, OpenAICompatModel)
