"""Small helpers shared by the model tests."""

from __future__ import annotations

from collections.abc import Sequence

from chatapp.conversation import Message
from chatapp.models.base import ChatModel, GenerationParams, ModelError, ReplyStats

PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)


def collect(
    model: ChatModel, messages: Sequence[Message], params: GenerationParams = PARAMS
) -> tuple[list[str], ReplyStats, ModelError | None]:
    """Run one stream to the end: (text chunks received, stats, the ModelError raised or None)."""
    chunks: list[str] = []
    stats = ReplyStats()
    try:
        for chunk in model.stream(messages, params, stats):
            chunks.append(chunk)
    except ModelError as exc:
        return chunks, stats, exc
    return chunks, stats, None


def ask(text: str) -> list[Message]:
    return [Message("user", text)]
