"""A prompt longer than the model's window: recognised in the server's answer and explained to the person.

Servers say it in their own words, all as an OpenAI-style error message (an HTTP 400 body, or vLLM's
`data: {"error": …}` after a 200 when the overflow is found while streaming):
- vLLM: "This model's maximum context length is N tokens. However, your request has M input tokens. …",
  or, when the prompt fits but the reply's room does not: "… maximum context length is N tokens and your
  request has M input tokens (X > N - M)"; with images: "The decoder prompt (length M) is longer than the
  maximum model length of N. …";
- llama.cpp's Python server (llama-cpp-python): "This model's maximum context length is N tokens. However,
  you requested T tokens (M in the messages, C in the completion). …";
- llama.cpp's own server: "the request exceeds the available context size, try increasing it" (no numbers).
"""

from __future__ import annotations

import re

from chatapp.models.base import ModelError

_LIMIT = re.compile(r"maximum (?:context|model) length (?:is|of) (\d+)", re.IGNORECASE)
_INPUT = re.compile(
    r"(\d+) input tokens|\((\d+) in the messages|prompt \(length (\d+)\)|has (\d+) tokens", re.IGNORECASE
)
_NO_NUMBERS = re.compile(r"exceeds? the available context size|context length exceeded", re.IGNORECASE)

WHAT_TO_DO = (
    "Shorten the message (or send it in parts), start a new chat so fewer earlier turns go with it, or switch "
    "to a model with a larger window."
)


class ContextTooLong(ModelError):
    """The prompt (with the room asked for the reply) does not fit the model's context window."""


def context_overflow(label: str, reason: str, max_tokens: int) -> ContextTooLong | None:
    """The explanation for a server's error `reason` if it is a context overflow, else None."""
    limit_match = _LIMIT.search(reason)
    if limit_match is None:
        if _NO_NUMBERS.search(reason):
            return ContextTooLong(f"Your message is too long for {label}'s context window. {WHAT_TO_DO}")
        return None
    limit = int(limit_match.group(1))
    input_match = _INPUT.search(reason)
    used = next((int(g) for g in input_match.groups() if g), None) if input_match else None
    if used is not None and used < limit:
        # The prompt fits; the room reserved for the reply does not.
        return ContextTooLong(
            f"{label} reads at most {limit:,} tokens at once (prompt and reply together); this conversation "
            f"already takes {used:,}, which leaves too little room for a reply of up to {max_tokens:,} tokens. "
            'Lower "Max tokens", start a new chat, or switch to a model with a larger window.'
        )
    size = (
        ""
        if used is None
        else f", and this request has {used:,} (your message, the earlier turns sent with it and the system prompt)"
    )
    return ContextTooLong(
        f"Your message is too long for {label}: it reads at most {limit:,} tokens at once{size}. {WHAT_TO_DO}"
    )
