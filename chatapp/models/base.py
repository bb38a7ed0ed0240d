"""What a model provider implements: stream a reply to a list of messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatapp.conversation import Message

# The ranges the UI sliders offer and the API accepts.
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.01, 1.0)  # vLLM rejects top_p = 0
MAX_TOKENS_RANGE = (1, 8192)


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 1024


@dataclass
class ReplyStats:
    """Filled in by a model while it streams; read by the caller afterwards for the turn's log line."""

    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    # Set by a model that delegates (Auto): the label of the model that actually answered, and why it was
    # that one. Set before the first text is yielded, so the caller can show it while the reply streams.
    answered_by: str | None = None
    because: str | None = None


class ModelError(Exception):
    """A failure worth showing to the user as it is: the message is written for a person, not a log."""


class ModelUnavailable(ModelError):
    """The model cannot be reached at all (down, still loading, no credentials): nothing was generated."""


class StreamCut(ModelError):
    """The reply started but ended abnormally; the text received so far is still worth keeping."""


class ChatModel(Protocol):
    label: str  # shown in the model menu; unique

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        """Yield the reply's text as it arrives.

        Raises ModelError (or a subclass) with a readable message on any failure. Closing the generator
        early (the user pressed stop) must close the upstream request too.
        """
        ...

    def check(self) -> str | None:
        """Return None when the model is reachable now, else a short reason; must return within seconds."""
        ...
