"""What a Gemini request asks for: the options a model id offers the page, the generation config made from the
page's choices, and the conversation as Gemini contents."""

from __future__ import annotations

import re
from collections.abc import Sequence

from google.genai import types

from chatapp.conversation import Message
from chatapp.models.base import GenerationParams, ModelError, ModelOptions

# Thinking levels per Gemini 3.x family, and the one the model uses when none is sent (checked 2026-12-06 on
# Google's model pages: 3.8 Flash LOW/MEDIUM/HIGH, default MEDIUM; 3.5 Flash adds MINIMAL). A 3.x id not listed
# gets LOW/HIGH, the levels every Gemini 3 model has taken. A level equal to the default is never sent.
_THINKING: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("gemini-3.8-flash", ("low", "medium", "high"), "medium"),
    ("gemini-3.5-flash", ("minimal", "low", "medium", "high"), "medium"),
)
_THINKING_3X = (("low", "high"), "high")
# max_output_tokens counts thinking and answer together, so a request asks for Max tokens (the answer) plus
# this much room for the level's thinking; unused room costs nothing.
THINKING_ROOM = {"minimal": 1024, "low": 4096, "medium": 8192, "high": 16384}


def gemini_options(model_id: str) -> ModelOptions:
    """Google's own defaults (temperature 1.0, top-p 0.95), so an untouched control sends nothing; Gemini 3.x
    adds its thinking levels. Google: "For Gemini 3+, we strongly recommend keeping temperature, top_p, top_k at
    their default values"."""
    match = re.match(r"gemini-(\d+)", model_id)
    if match is None or int(match.group(1)) < 3:
        return ModelOptions(temperature=1.0, top_p=0.95)
    versions = [(lv, d) for prefix, lv, d in _THINKING if model_id == prefix or model_id.startswith(f"{prefix}-0")]
    levels, default = versions[0] if versions else _THINKING_3X
    return ModelOptions(
        temperature=1.0,
        top_p=0.95,
        thinking_levels=levels,
        thinking=default,
        thinking_room=THINKING_ROOM,
        note="Gemini 3 works best at its default temperature and top-p: they are sent only if you change them.",
    )


def request_config(
    options: ModelOptions, params: GenerationParams, system: str | None = None
) -> types.GenerateContentConfig:
    """The request's settings: temperature and top-p only when changed from the model's defaults; for a
    thinking model a thinking level (never with thinking_budget, which Gemini 3 refuses with a 400 when both
    are set), thought summaries, and max_output_tokens with room for the thinking on top of Max tokens."""
    temperature = params.temperature if params.temperature != options.temperature else None
    top_p = params.top_p if params.top_p != options.top_p else None
    thinking = None
    max_output = params.max_tokens
    if options.thinking_levels:
        level = options.level(params)
        thinking = types.ThinkingConfig(
            include_thoughts=True, thinking_level=types.ThinkingLevel(level.upper()) if level else None
        )
        max_output = options.max_output(params)
    return types.GenerateContentConfig(
        system_instruction=system,
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output,
        thinking_config=thinking,
    )


def request_contents(messages: Sequence[Message]) -> tuple[str | None, list[types.Content]]:
    """The system messages joined into one instruction (None without any), and the turns as contents."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    contents = [
        types.Content(role="model" if m.role == "assistant" else "user", parts=message_parts(m))
        for m in messages
        if m.role != "system"
    ]
    return system or None, contents


def message_parts(message: Message) -> list[types.Part]:
    """Text, then each image inline (its bytes in the request, as Vertex's `inlineData`)."""
    parts = [types.Part(text=message.content)] if message.content or not message.images else []
    for image in message.images:
        if image.data is None:
            raise ModelError("An image of this conversation could not be read; attach it again.")
        parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime_type))
    return parts
