"""What a model provider implements: stream a reply to a list of messages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from chatapp import defaults
from chatapp.conversation import Message

# The ranges the UI sliders offer and the API accepts.
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.01, 1.0)  # vLLM rejects top_p = 0
MAX_TOKENS_RANGE = (1, 8192)


@dataclass(frozen=True)
class GenerationParams:
    """What one request asks for. None means "the model's own default" (`ModelOptions`): a model decides
    whether to send its default explicitly or leave the parameter out (Gemini 3.x wants it left out)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = defaults.MAX_TOKENS
    thinking: str | None = None  # one of the model's `thinking_levels`; None = the model's default


@dataclass(frozen=True)
class ModelOptions:
    """What a model lets a person set, and its own defaults, as simonw/llm's models own their Options. The page
    shows a model's defaults when it is chosen and offers a thinking level only where `thinking_levels` has some."""

    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    max_tokens: int = defaults.MAX_TOKENS
    thinking_levels: tuple[str, ...] = ()
    thinking: str | None = None  # the default level, one of `thinking_levels`
    note: str = ""  # one line for the page about these controls ("" = none)
    # Output tokens a thinking level may spend on top of Max tokens (thinking and answer share one budget).
    thinking_room: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)

    def max_output(self, params: GenerationParams) -> int:
        """The most output one request may produce: Max tokens plus its thinking level's room."""
        return params.max_tokens + self.thinking_room.get(self.level(params) or self.thinking or "", 0)

    def relative(self, params: GenerationParams) -> GenerationParams:
        """`params` with every value left at this model's default replaced by None, so that only what the person
        changed is sent (and a model answering for another, as Auto's fallback does, uses its own defaults)."""
        return replace(
            params,
            temperature=None if params.temperature == self.temperature else params.temperature,
            top_p=None if params.top_p == self.top_p else params.top_p,
            thinking=None if params.thinking in (None, self.thinking) else params.thinking,
        )

    def level(self, params: GenerationParams) -> str | None:
        """The thinking level to ask for explicitly: a level of this model that is not its default, else None."""
        return params.thinking if params.thinking in self.thinking_levels and params.thinking != self.thinking else None


GENERIC_OPTIONS = ModelOptions()


def options_of(model: object) -> ModelOptions:
    """A model's options; one that declares none (a test double) gets the generic ones."""
    options = getattr(model, "options", None)
    return options if isinstance(options, ModelOptions) else GENERIC_OPTIONS


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
    # What the model said it thought (Gemini's thought summaries, vLLM's `reasoning`), kept apart from the
    # reply: a model appends here and yields "" so the caller can show it as thinking, never as the answer.
    thinking: str = ""


class ModelError(Exception):
    """A failure worth showing to the user as it is: the message is written for a person, not a log."""


class ModelUnavailable(ModelError):
    """The model cannot be reached at all (down, still loading, no credentials): nothing was generated."""


class StreamCut(ModelError):
    """The reply started but ended abnormally; the text received so far is still worth keeping."""


class ChatModel(Protocol):
    label: str  # shown in the model menu; unique
    options: ModelOptions  # what the page offers for this model, with its defaults

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        """Yield the reply's text as it arrives (only the answer: thinking goes to `stats.thinking`, with an
        empty string yielded so the caller sees it grow).

        Raises ModelError (or a subclass) with a readable message on any failure. Closing the generator
        early (the user pressed stop) must close the upstream request too.
        """
        ...

    def check(self) -> str | None:
        """Return None when the model is reachable now and its server knows the configured model id, else a
        short reason ("retired or unknown model id …: set …"); must return within seconds."""
        ...
