"""Whether the self-hosted model server is asleep (scaled to zero), waking up or ready, as this chat sees it.

With scale to zero (stack/gemma_scaling.py) the model server is at zero replicas until a turn wants it, and a
cold start takes minutes. The chat never waits for it: Auto answers with Gemini at once, a turn on the
self-hosted model directly says it is waking and offers Gemini meanwhile, and the first message after it is
ready goes to it. The person is told how long it usually takes, measured: each wake-up, from the first turn that
wanted the server while it was down to the first healthy answer or status check, goes into a histogram on
/metrics (`chat_self_hosted_wake_seconds`) and into the recent median shown. Before any wake-up was measured,
the documented estimate is shown, labelled as such.

One `WakeTracker` per self-hosted server, shared by its menu entry (`WakingModel`) and by Auto; the status
thread (chatapp.status) feeds it health checks. What it knows is this replica's view: each replica measures the
wake-ups it waited for.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence

from chatapp import metrics
from chatapp.conversation import Message
from chatapp.models.base import ChatModel, GenerationParams, ModelUnavailable, ReplyStats
from chatapp.models.gemini import GeminiModel
from chatapp.models.openai_compat import NOT_REACHABLE, STILL_STARTING, OpenAICompatModel

# A GKE cold start of the default preset (GPU node, vLLM image, weights, engine): an estimate from its stages,
# not a measurement (README, "Cost"); shown, labelled, until this chat has measured a wake-up of its own.
DOCUMENTED_WAKE_S = 12 * 60.0
# The median of this many recent wake-ups is shown: recent enough to follow a faster node pool or a new image.
RECENT_WAKES = 20
# Past this multiple of the usual time, "waking up" says it is taking longer than usual (a crash-looping server
# looks like a slow wake-up from here).
OVERDUE_FACTOR = 2.0

UNKNOWN, READY, ASLEEP, WAKING, FAILING = metrics.WAKE_STATES


def duration(seconds: float) -> str:
    """ "40 s" under two minutes, else whole minutes: what a person reads at a glance."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class WakeTracker:
    def __init__(
        self,
        label: str,
        *,
        estimate_s: float = DOCUMENTED_WAKE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.estimate_s = estimate_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = UNKNOWN
        self._reason = ""  # why it is not ready, from the last failed check or request
        self._wanted_at: float | None = None  # the first turn that wanted it while it was down
        self._recent: deque[float] = deque(maxlen=RECENT_WAKES)
        metrics.SELF_HOSTED_STATE.state(UNKNOWN)

    # -- what happened -------------------------------------------------------------------------------------
    def wanted(self) -> None:
        """A turn wanted the server: if it is down, that turn starts the wake-up clock (the first one only)."""
        with self._lock:
            if self._state in (ASLEEP, WAKING) and self._wanted_at is None:
                self._wanted_at = self._clock()
                self._set(WAKING)

    def saw_ready(self) -> None:
        """A health check passed or a reply streamed: a wake-up in progress ends here and is recorded."""
        with self._lock:
            if self._wanted_at is not None:
                took = max(0.0, self._clock() - self._wanted_at)
                self._recent.append(took)
                metrics.SELF_HOSTED_WAKE.observe(took)
                self._wanted_at = None
            self._reason = ""
            self._set(READY)

    def saw_down(self, reason: str) -> None:
        """Not reachable or still starting: asleep, or still waking if a turn already wanted it."""
        with self._lock:
            self._reason = reason
            self._set(WAKING if self._wanted_at is not None else ASLEEP)

    def saw_failing(self, reason: str) -> None:
        """Reachable but wrong (unknown model id, server errors): awake, yet not ready; a wake-up in progress
        ends unmeasured (the status list says what is wrong instead of "waking up" for ever)."""
        with self._lock:
            self._reason = reason
            self._wanted_at = None
            self._set(FAILING)

    def saw_check(self, reason: str | None) -> None:
        """A status check's answer (chatapp.models.openai_compat's `check`)."""
        if reason is None:
            self.saw_ready()
        elif reason.startswith((NOT_REACHABLE, STILL_STARTING)):
            self.saw_down(reason)
        else:
            self.saw_failing(reason)

    # -- what to say -----------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def reason(self) -> str:
        with self._lock:
            return self._reason

    def usual(self) -> tuple[float, bool]:
        """The recent median wake-up in seconds, and whether it was measured (False: the documented estimate)."""
        with self._lock:
            recent = list(self._recent)
        return (statistics.median(recent), True) if recent else (self.estimate_s, False)

    def because(self) -> str:
        """ "Gemma is waking up (asked 40 s ago; usually ready in about 12 min, …)": while it is waking."""
        with self._lock:
            asked = self._clock() - self._wanted_at if self._wanted_at is not None else 0.0
        usual, measured = self.usual()
        typical = duration(usual) if measured else f"{duration(usual)}, an estimate until one is measured here"
        late = ", longer than usual" if asked > OVERDUE_FACTOR * usual else ""
        return f"{self.label} is waking up (asked {duration(asked)} ago{late}; usually ready in about {typical})"

    def status_line(self) -> str | None:
        """The status list's entry for asleep or waking; None in the other states (shown as before)."""
        state = self.state
        if state == WAKING:
            return f"⏳ **{self.label}**: waking up" + self.because().removeprefix(f"{self.label} is waking up")
        if state == ASLEEP:
            return f"💤 **{self.label}**: asleep ({self.reason}); a message to it or to Auto wakes it"
        return None

    def _set(self, state: str) -> None:
        self._state = state
        metrics.SELF_HOSTED_STATE.state(state)


class WakingModel:
    """The self-hosted model's menu entry: the same model, telling its `WakeTracker` what it sees, and saying
    "waking up" (with Gemini offered meanwhile) instead of "not reachable" while the server is down."""

    def __init__(self, inner: ChatModel, tracker: WakeTracker, meanwhile: str | None = None) -> None:
        self.inner = inner
        self.waking = tracker
        self.meanwhile = meanwhile  # the label of a model that can answer while this one wakes
        self.label = inner.label
        self.options = inner.options

    def __repr__(self) -> str:
        return f"WakingModel({self.inner!r})"

    def stream(self, messages: Sequence[Message], params: GenerationParams, stats: ReplyStats) -> Iterator[str]:
        self.waking.wanted()
        # Tried even while asleep: a refused connection costs nothing, and the server may be up before the
        # next status check says so ("once it is ready, the next message goes to it").
        attempt = self.inner.stream(messages, params, stats)
        answered = False
        try:
            for text in attempt:
                if text and not answered:
                    answered = True
                    self.waking.saw_ready()
                yield text
        except ModelUnavailable as exc:
            # "Gemma is not reachable (connection refused); …" → "not reachable (connection refused)", as a check says.
            self.waking.saw_down(str(exc).split(";")[0].strip().rstrip(".").removeprefix(f"{self.label} is "))
            self.waking.wanted()
            raise Waking(self.waking.because(), self.meanwhile) from exc
        finally:
            close = getattr(attempt, "close", None)
            if close is not None:
                close()

    def check(self) -> str | None:
        reason = self.inner.check()
        self.waking.saw_check(reason)
        return reason


class Waking(ModelUnavailable):
    """The self-hosted server is asleep or starting: said with how long it usually takes, and what to do."""

    def __init__(self, because: str, meanwhile: str | None) -> None:
        self.because = because
        offer = (
            f"{meanwhile} can answer meanwhile: choose {meanwhile} (or Auto) and send it again (Retry)"
            if meanwhile
            else "Send it again once it is ready"
        )
        super().__init__(f"{because}. {offer}.")


def tracker_of(model: object) -> WakeTracker | None:
    """The wake tracker of a self-hosted menu entry, or None for any other model."""
    return model.waking if isinstance(model, WakingModel) else None


def with_wake_tracking(models: Mapping[str, ChatModel], gemini_label: str) -> dict[str, ChatModel]:
    """`models` with each self-hosted server's entry tracking its wake state; a configured Gemini is the model
    offered meanwhile."""
    gemini = models.get(gemini_label)
    meanwhile = gemini.label if isinstance(gemini, GeminiModel) and gemini.configured else None
    return {
        label: WakingModel(model, WakeTracker(label), meanwhile) if isinstance(model, OpenAICompatModel) else model
        for label, model in models.items()
    }
