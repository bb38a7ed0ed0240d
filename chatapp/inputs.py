"""Validation of everything a user or an API caller sends, with messages written for people.

Input arrives from the browser and from `gradio_client` alike, so nothing here trusts types: a slider value may
come as a string, a message may hold lone surrogates (which UTF-8 cannot encode, so every store and HTTP client
downstream would fail on them) or NUL bytes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from chatapp.models.base import MAX_TOKENS_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE, GenerationParams

MAX_MESSAGE_CHARS = 100_000
MAX_SYSTEM_PROMPT_CHARS = 20_000

# C0 controls except tab, newline and carriage return, plus DEL: they carry no meaning in a chat message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InputError(ValueError):
    """Bad input; the message says what to change."""


def shown(value: Any, limit: int = 40) -> str:
    """A value as the caller sent it (JSON), shortened: never a Python repr in a message for people."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = f"a value of type {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def clean_text(value: Any, what: str, limit: int) -> str:
    """Return `value` as valid, printable text or raise InputError naming `what`."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"The {what} must be text, got {type(value).__name__}.")
    if len(value) > limit:
        raise InputError(f"The {what} is {len(value):,} characters long; the limit is {limit:,}. Shorten it.")
    # Join surrogate pairs a JSON decoder left split, and turn lone surrogates into U+FFFD.
    text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL.sub("", text)


def clean_message(value: Any) -> str:
    text = clean_text(value, "message", MAX_MESSAGE_CHARS)
    if not text.strip():
        raise InputError("The message is empty. Type something to send.")
    return text


def clean_system_prompt(value: Any) -> str:
    return clean_text(value, "system prompt", MAX_SYSTEM_PROMPT_CHARS).strip()


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number between {low} and {high}, got {shown(value)}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number between {low} and {high}, got {shown(value)}.") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{name} must be between {low} and {high}, got {shown(value)}.")
    return number


def clean_params(temperature: Any, top_p: Any, max_tokens: Any) -> GenerationParams:
    tokens = _number(max_tokens, "Max tokens", *MAX_TOKENS_RANGE)
    if tokens != int(tokens):
        raise InputError(f"Max tokens must be a whole number, got {shown(max_tokens)}.")
    return GenerationParams(
        temperature=_number(temperature, "Temperature", *TEMPERATURE_RANGE),
        top_p=_number(top_p, "Top-p", *TOP_P_RANGE),
        max_tokens=int(tokens),
    )


def clean_thinking(value: Any, levels: tuple[str, ...]) -> str | None:
    """A thinking level the chosen model offers, or None (nothing chosen: the model's default)."""
    if value is None or value == "":
        return None
    if value not in levels:
        offered = ", ".join(levels) if levels else "none (this model has no thinking levels)"
        raise InputError(f"Thinking must be one of: {offered}; got {shown(value)}.")
    return str(value)
