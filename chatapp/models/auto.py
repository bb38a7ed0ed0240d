"""The "Auto" model: the self-hosted model when it can answer, Gemini when it cannot.

The self-hosted model is tried first. If it fails before its first token (unreachable, still loading, busy
with 429/503, any error, or an empty reply), the same prompt goes to the fallback and the person is told
why. Once text has started to stream it is never replaced: a reply cut mid-way stays the self-hosted
model's, with its error, exactly as if that model had been chosen by hand (switching would show a person
half an answer from one model glued to another).

Which model answered is written into `ReplyStats.answered_by` before the first text is yielded, so the chat
can say so while the reply streams and store the model that actually answered.

After an "unavailable" failure (down, loading), the self-hosted model is skipped for `skip_s`: a black-holed
address costs a connect timeout per attempt, and a model loading for an hour answers 503 every time. When the
self-hosted entry tracks its wake state (chatapp.models.waking), that state decides instead: asleep or waking
means Gemini at once, with "… is waking up (asked N s ago; usually ready in about M min)" as the reason, and the
first turn after it is seen ready goes to it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from chatapp.conversation import Message
from chatapp.models.base import ChatModel, GenerationParams, ModelError, ModelUnavailable, ReplyStats, options_of
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import OpenAICompatModel
from chatapp.models.waking import ASLEEP, WAKING, Waking, WakingModel, tracker_of
from chatapp.settings import Settings

SKIP_AFTER_UNAVAILABLE_S = 15.0


def short_reason(exc: ModelError) -> str:
    """The first clause of a model's message ("X is not reachable (connection refused)"), without the advice
    that follows it ("; switch to another model…"), which Auto makes moot."""
    return str(exc).split(";")[0].strip().rstrip(".")


class AutoModel:
    def __init__(
        self,
        label: str,
        primary: ChatModel,
        fallback: ChatModel,
        *,
        skip_s: float = SKIP_AFTER_UNAVAILABLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`primary` should not wait out 429s itself (an OpenAICompatModel with retry_budget_s=0): here a busy
        self-hosted model means "answer with the fallback now", not "make the person wait"."""
        self.label = label
        self.primary = primary
        self.fallback = fallback
        # The page shows the first choice's controls; values left at their defaults reach the fallback as None
        # (ModelOptions.relative), so it uses its own defaults rather than the self-hosted model's.
        self.options = options_of(primary)
        self.skip_s = skip_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self._waking = tracker_of(primary)

    def __repr__(self) -> str:
        return f"AutoModel({self.label!r}, {self.primary!r}, {self.fallback!r})"

    # -- ChatModel ---------------------------------------------------------------------------------------
    def check(self) -> str | None:
        """Reachable when either model is; otherwise both reasons."""
        primary = self.primary.check()
        if primary is None:
            return None
        fallback = self.fallback.check()
        if fallback is None:
            return None
        return f"{self.primary.label}: {primary}; {self.fallback.label}: {fallback}"

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        why = self._skipping()
        if why is None:
            attempt = self.primary.stream(messages, params, stats)
            try:
                first = _first_text(attempt)
            except ModelError as exc:
                _close(attempt)
                why = self._failed(exc)
            else:
                if first is not None:
                    stats.answered_by, stats.because = self.primary.label, None
                    try:
                        yield first
                        yield from attempt  # from here on, a failure is the primary's to report: no fallback
                    finally:
                        _close(attempt)
                    return
                _close(attempt)
                why = f"{self.primary.label} returned an empty reply"
        # The failed attempt generated nothing worth counting: its partial stats must not mix with the fallback's.
        stats.tokens_in = stats.tokens_out = stats.finish_reason = None
        stats.thinking = ""
        stats.answered_by, stats.because = self.fallback.label, why
        answer = self.fallback.stream(messages, params, stats)
        received = False
        try:
            for text in answer:
                received = received or bool(text)
                yield text
        except ModelError as exc:
            if received:
                raise
            # Neither model could answer: say both, so the person does not wonder about the first one.
            raise type(exc)(f"{exc} ({why}, so Auto tried {self.fallback.label}.)") from exc
        finally:
            _close(answer)

    # -- the self-hosted model's recent health -------------------------------------------------------------
    def _skipping(self) -> str | None:
        if self._waking is not None:
            if self._waking.state not in (ASLEEP, WAKING):
                return None
            self._waking.wanted()  # this turn is demand too: it starts the wake-up clock if none runs
            return self._waking.because()
        with self._lock:
            if self._clock() < self._down_until:
                return self._down_reason
        return None

    def _failed(self, exc: ModelError) -> str:
        if isinstance(exc, Waking):
            return exc.because  # whole: its parenthesis holds a ";" that short_reason would cut at
        why = short_reason(exc)
        if isinstance(exc, ModelUnavailable) and self.skip_s > 0:
            with self._lock:
                self._down_until = self._clock() + self.skip_s
                self._down_reason = why
        return why


def build_auto(settings: Settings, models: Mapping[str, ChatModel]) -> AutoModel | None:
    """Auto over the configured self-hosted model and Gemini; None unless Gemini has credentials (falling back
    to a model that can only say "not configured" would help no one)."""
    entry = models.get(settings.self_hosted_label)
    tracker = tracker_of(entry)
    primary = entry.inner if isinstance(entry, WakingModel) else entry
    fallback = models.get(settings.gemini_label)
    if not isinstance(primary, OpenAICompatModel) or not isinstance(fallback, GeminiModel):
        return None
    if not fallback.configured:
        return None
    # Its own client of the same server, one that reports a 429 at once instead of waiting it out.
    impatient = OpenAICompatModel(
        primary.label,
        primary.base_url,
        primary.model_id,
        timeout_s=primary.timeout_s,
        connect_timeout_s=primary.connect_timeout_s,
        retry_budget_s=0.0,
        max_connections=settings.concurrency,
    )
    # The same wake tracker as the menu entry's: one server, one state.
    first = impatient if tracker is None else WakingModel(impatient, tracker)
    return AutoModel(settings.auto_label, first, fallback)


def _first_text(stream: Iterator[str]) -> str | None:
    """The first non-empty chunk, or None if the stream ended without text."""
    for text in stream:
        if text:
            return text
    return None


def _close(stream: Iterator[str]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()  # closes the upstream request (a generator's finally)
