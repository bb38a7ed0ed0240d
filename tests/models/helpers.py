"""Small helpers shared by the model tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from chatapp.conversation import Message
from chatapp.models.base import ChatModel, GenerationParams, ModelError, ReplyStats

PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)
T = TypeVar("T")


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


def waits_logged(caplog: pytest.LogCaptureFixture, logger: str) -> list[float]:
    """The waits between 429s a model client logged ("… answered 429; retrying in 0.4 s"), in order. Tests assert
    what the client chose to wait, not the wall time, which a busy machine stretches. Needs caplog at INFO."""
    said = [r.getMessage() for r in caplog.records if r.name == logger]
    return [float(m.split("retrying in ", 1)[1].split(" s", 1)[0]) for m in said if "answered 429" in m]


def ask(text: str) -> list[Message]:
    return [Message("user", text)]


def within(seconds: float, call: Callable[[], T]) -> T:
    """call() in a thread, failing the test (not hanging it) if it has not returned in `seconds`: for promises that
    something gives up, whose bug would otherwise wait for ever."""
    results: list[T] = []
    worker = threading.Thread(target=lambda: results.append(call()), daemon=True)  # a daemon: never waited for
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still waiting after {seconds:g} s: nothing gave up")
    assert results, "the call raised (see the warning above)"
    return results[0]
