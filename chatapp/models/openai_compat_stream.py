"""One reply's stream from an OpenAI-compatible server: text and thinking deltas out of the server-sent events,
the usage into ReplyStats, and how the stream ended (whole, cut, or empty) as an exception when it was not."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import requests

from chatapp.models.base import ModelError, ReplyStats, StreamCut
from chatapp.models.context_window import context_overflow
from chatapp.models.openai_compat_errors import describe, error_message, is_read_timeout
from chatapp.models.sse import sse_data

log = logging.getLogger(__name__)

# finish_reason values of a reply that ended as the model meant it to (or at the max tokens limit).
_COMPLETE = {"stop", "length", "tool_calls", "function_call"}
_CUT_BECAUSE = {
    "abort": "the server aborted the request (restarting or scaling down?); try again",
    "content_filter": "its content filter stopped the reply",
}


class EmptyStream(StreamCut):
    """A 200 whose stream ended before any event: the model asks the server why."""


def read_reply(
    response: requests.Response, stats: ReplyStats, max_tokens: int, label: str, timeout_s: float
) -> Iterator[str]:
    """Yield the reply's text as it comes ("" for each piece of thinking, kept in `stats.thinking`)."""
    received = False  # any text yet: decides between "cut" (keep it) and a plain failure
    events = 0  # data lines of any kind: none at all is an empty stream
    done = False
    deltas = 0
    try:
        # chunk_size=None: hand over bytes as they arrive instead of waiting to fill a buffer.
        for data in sse_data(response.iter_content(chunk_size=None)):
            events += 1
            if data.strip() == "[DONE]":
                done = True
                break
            event = _parse(data)
            if event is None:
                # One bad line costs at most one token; cutting the reply would throw away a stream that
                # is otherwise fine. If the stream really broke, the missing finish_reason reports it.
                log.warning("%s sent a malformed stream line; skipped: %.200r", label, data)
                continue
            if "error" in event:
                message = error_message(event) or "unknown error"
                if not received and (too_long := context_overflow(label, message, max_tokens)):
                    raise too_long  # vLLM found the overflow after answering 200
                cls = StreamCut if received else ModelError
                raise cls(f"{label} failed while answering: {message}")
            if usage := event.get("usage"):
                stats.tokens_in = usage.get("prompt_tokens", stats.tokens_in)
                stats.tokens_out = usage.get("completion_tokens", stats.tokens_out)
            for choice in event.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                if reason := choice.get("finish_reason"):
                    stats.finish_reason = reason
                delta = choice.get("delta") or {}
                # vLLM's reasoning parsers stream thinking as `reasoning` (`reasoning_content` before
                # vLLM PR #33402): thinking, never the answer.
                thought = delta.get("reasoning") or delta.get("reasoning_content")
                if isinstance(thought, str) and thought:
                    stats.thinking += thought
                    deltas += 1
                    yield ""
                text = delta.get("content")
                if isinstance(text, str) and text:
                    received = True
                    deltas += 1
                    yield text
    except requests.RequestException as exc:
        if is_read_timeout(exc):
            raise StreamCut(f"{label} went silent for {timeout_s:g} s; the reply was cut off.") from exc
        raise StreamCut(f"The connection to {label} broke mid-reply ({describe(exc)}).") from exc
    if stats.tokens_out is None and deltas:
        # Servers that ignore include_usage (llama.cpp) send one token per delta: a fair estimate.
        stats.tokens_out = deltas
    if not done and stats.finish_reason is None:
        ended = f"{label} stopped before finishing the reply (the stream ended early)."
        raise EmptyStream(ended) if events == 0 else StreamCut(ended)
    if stats.finish_reason not in _COMPLETE and stats.finish_reason is not None:
        # vLLM ends a request its engine aborted (shutdown, scale-down) with finish_reason "abort" and a
        # normal [DONE]; OpenAI-style servers use "content_filter". Neither is a whole reply.
        because = _CUT_BECAUSE.get(stats.finish_reason, f"of finish reason {stats.finish_reason!r}")
        cls = StreamCut if received else ModelError
        raise cls(f"{label} stopped mid-reply because {because}.")


def _parse(data: str) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
