"""One chat turn, start to finish: build the prompt, stream the reply, save the turn, log it.

It receives a checked `Ask` (validated once, by `Conversations.check`) from `OpenConversation.reply`, the one
route of the browser and the `/chat` API alike. It knows nothing of Gradio: it yields `Update`s and the
page or the API decides how to show them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from chatapp import metrics
from chatapp.conversation import ImageRef, Message, build_prompt
from chatapp.costs import cost, worst_case
from chatapp.drain import CUT_NOTE, REFUSED_NOTE, Drain
from chatapp.first_chunk import until_stopped
from chatapp.history.base import StoredMessage, StoreError, Turn, Usage
from chatapp.inputs import InputError, shown
from chatapp.models import wants_self_hosted
from chatapp.models.base import ChatModel, GenerationParams, ModelError, ReplyStats, StreamCut, options_of
from chatapp.usage import DailyUsage, OverLimit

turn_log = logging.getLogger("chatapp.turns")

# Every partial reply yielded is one event that Gradio's single event loop serializes and sends; past a few
# dozen concurrent streams those events, not the model, become the cost. So updates are coalesced: at most
# one per UPDATE_INTERVAL_S (a person cannot read faster than ~25 updates/s), stretched by PER_STREAM_S for
# each stream in flight, up to MAX_INTERVAL_S. The first text of a reply is always sent at once.
UPDATE_INTERVAL_S = 0.04
PER_STREAM_S = 0.005
MAX_INTERVAL_S = 0.5


class _ShutdownCut(StreamCut):
    """The replica is shutting down and the reply's time budget is spent (chatapp.drain)."""


class TurnSaver(Protocol):
    def save(self, turn: Turn) -> bool:
        """Save now if possible; otherwise keep the turn and retry later. True when saved now.

        Raises StoreError for a turn that no retry could store."""
        ...


@dataclass
class ChatSession:
    """The conversation one browser tab (or one API client) is in: the context the models see."""

    owner: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    messages: list[Message] = field(default_factory=list)
    # Two replies in one conversation can run at once (an API client submitting twice, a double send). Each
    # turn's index is taken, appended and saved under this lock, so they get distinct, consecutive indices
    # and are written in that order; without it both took the same index and one overwrote the other.
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The place of the turn Retry took back: the next turn saved there replaces it in the store (Turn.replaces).
    replacing: int | None = field(default=None, repr=False, compare=False)

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant")

    @classmethod
    def resumed(cls, owner: str, session_id: str, stored: list[StoredMessage]) -> ChatSession:
        messages = [
            Message(m.role, m.content, m.model, m.images)  # type: ignore[arg-type]
            for m in stored
            if m.role in ("user", "assistant")
        ]
        return cls(owner=owner, session_id=session_id, messages=messages)  # type: ignore[arg-type]

    def drop_last_turn(self) -> Message | None:
        """Remove the newest user message and its reply; return that user message (for retry)."""
        while self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()
        return self.messages.pop() if self.messages else None


@dataclass(frozen=True)
class Update:
    text: str  # the reply so far
    notice: str | None = None  # what went wrong, for the user; None while all is well
    done: bool = False
    saved: bool | None = None  # set on the final update when a turn was stored (or queued)
    # When the chosen entry delegates (Auto): which model is answering, and why that one (None = first choice).
    answered_by: str | None = None
    because: str | None = None
    # What the model thought so far (shown apart, as thinking); never part of `text`, never stored.
    thinking: str = ""
    stopped: bool = False  # set on the final update of a reply Stop ended

    @property
    def answered_note(self) -> str | None:
        """Which model answered and why, for an entry that delegates (Auto); None otherwise."""
        if self.answered_by is None:
            return None
        return f"Answered by {self.answered_by}" + (f" because {self.because}" if self.because else "")


@dataclass(frozen=True)
class Ask:
    """One checked request for a reply (`Conversations.check`): everything sent with a message."""

    text: str
    model: str
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str = ""
    images: tuple[ImageRef, ...] = ()  # already stored (`Conversations.attach`)


class ImageLoader(Protocol):
    def __call__(self, owner: str, conversation_id: str, image: ImageRef) -> bytes:
        """The bytes of an image of this conversation; raise an exception whose text a person can read."""
        ...


class ChatService:
    def __init__(
        self,
        models: Mapping[str, ChatModel],
        saver: TurnSaver,
        context_chars: int,
        log_content: bool = False,
        update_interval_s: float = UPDATE_INTERVAL_S,
        usage: DailyUsage | None = None,
        load_image: ImageLoader | None = None,
        drain: Drain | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.load_image = load_image
        self.now = now  # stamps each turn, and so names the UTC day its usage counts on (DailyUsage's `now` too)
        self.drain = drain or Drain()
        self.models = models
        self.usage = usage
        self.saver = saver
        self.context_chars = context_chars
        self.log_content = log_content
        self.update_interval_s = update_interval_s
        self._active = 0
        self._active_lock = threading.Lock()

    def _interval(self) -> float:
        if self.update_interval_s <= 0:
            return 0.0
        return min(
            max(self.update_interval_s, self._active * PER_STREAM_S), max(MAX_INTERVAL_S, self.update_interval_s)
        )

    def model(self, label: str) -> ChatModel:
        model = self.models.get(label) if isinstance(label, str) else None
        if model is None:
            known = ", ".join(shown(name) for name in self.models)
            raise InputError(f"Unknown model {shown(label)}. Choose one of: {known}.")
        return model

    def reply(self, session: ChatSession, ask: Ask, stop: Callable[[], bool] | None = None) -> Iterator[Update]:
        """Stream one reply to `ask` (checked, its images stored) and save the turn.

        If the caller stops iterating (the user pressed stop), the partial reply the user saw is still saved.
        `stop`, when given, is also checked while the model's first chunk is awaited: true then, the reply ends
        at once, nothing stored, its last update `stopped` (chatapp.first_chunk).
        """
        text, model_label, images = ask.text, ask.model, ask.images
        model = self.model(model_label)
        # Only what the person changed from this model's defaults is sent as such (ModelOptions.relative).
        params = options_of(model).relative(ask.params)
        stats = ReplyStats()
        started = time.monotonic()
        prompt = build_prompt(session.messages, text, ask.system_prompt, self.context_chars, images)
        worst = worst_case(prompt, params, options_of(model))
        if self.drain.draining:  # this replica is shutting down: a new turn would be cut short at once
            self._log(session, model_label, "refused", started, None, stats, None, text, "")
            yield Update("", notice=REFUSED_NOTE, done=True)
            return
        try:  # the worst case is counted against the daily limit until the turn is settled (chatapp.usage)
            hold = self.usage.reserve(session.owner, worst) if self.usage is not None else None
        except OverLimit as exc:  # over the daily limit: refused before any request is sent
            self._log(session, model_label, "over_quota", started, None, stats, None, text, "")
            yield Update("", notice=str(exc), done=True)
            return
        try:
            with self.drain.reply():
                yield from self._reply(session, text, model_label, model, params, prompt, images, stats, started, stop)
        finally:
            if hold is not None:
                hold.release()  # after the turn's real usage was added (or nothing, if it failed)

    def _reply(
        self,
        session: ChatSession,
        text: str,
        model_label: str,
        model: ChatModel,
        params: GenerationParams,
        prompt: list[Message],
        images: tuple[ImageRef, ...],
        stats: ReplyStats,
        started: float,
        stop: Callable[[], bool] | None,
    ) -> Iterator[Update]:
        try:
            prompt = self._with_image_bytes(session, prompt)
        except Exception as exc:  # the media store failed: nothing was sent, say what
            self._log(session, model_label, "error", started, None, stats, None, text, "")
            yield Update("", notice=f"Could not read an image of this conversation: {exc}", done=True)
            return
        first_token_s: float | None = None
        reply = ""
        notice: str | None = None
        outcome = "ok"
        saved: bool | None = None
        refused: str | None = None
        with self._active_lock:
            self._active += 1
        if wants_self_hosted(model):  # the wake signal of a scaled-to-zero model server (chatapp/metrics.py)
            metrics.SELF_HOSTED_WANTED.inc()
        metrics.STREAMS_IN_FLIGHT.labels(model_label).inc()
        try:
            stream = model.stream(prompt, params, stats)
            if stop is not None:  # an empty chunk shows only when it says the thinking grew (below)
                stream = until_stopped(stream, stop, shows=lambda chunk: bool(chunk) or bool(stats.thinking))
            try:
                last_update = 0.0
                for chunk in stream:
                    # An empty chunk says the model's thinking grew (ReplyStats.thinking): shown, never added.
                    if not chunk and not stats.thinking:
                        continue
                    reply += chunk
                    if self.drain.cut_due():  # shutting down: end here, so the turn is saved before exit
                        raise _ShutdownCut(CUT_NOTE)
                    now = time.monotonic()
                    first_text = bool(chunk) and first_token_s is None
                    if first_text:
                        first_token_s = now - started
                    # The first text is sent at once, even right after an update that showed only thinking.
                    if first_text or now - last_update >= self._interval():
                        last_update = now
                        yield Update(
                            reply, answered_by=stats.answered_by, because=stats.because, thinking=stats.thinking
                        )
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # closes the upstream request when we stop early
            if stop is not None and not reply and stop():  # stopped before the first chunk (until_stopped)
                outcome = "stopped"
        except _ShutdownCut as exc:
            outcome, notice = "cut", str(exc)
            if reply.strip():  # the note is stored with the text, so a reload on another replica explains it
                reply, notice = f"{reply}\n\n*{exc}*", None
        except StreamCut as exc:
            outcome, notice = "cut", str(exc)
        except ModelError as exc:
            outcome, notice = "error", str(exc)
        except GeneratorExit:
            outcome = "stopped"
            raise
        except Exception as exc:  # a bug in a provider must not take the chat down
            logging.getLogger(__name__).exception("model %s failed", model_label)
            outcome, notice = "error", f"{model_label} failed unexpectedly ({type(exc).__name__}). Try again."
        finally:
            with self._active_lock:
                self._active -= 1
            metrics.STREAMS_IN_FLIGHT.labels(model_label).dec()
            usage = cost(stats, prompt, reply) if reply.strip() else None
            if usage is not None:
                try:
                    saved = self._save(session, text, reply, stats.answered_by or model_label, usage, images)
                except StoreError as exc:  # a turn no retry can store (e.g. too large): say so, promise nothing
                    saved, refused = False, str(exc)
            self._log(session, model_label, outcome, started, first_token_s, stats, saved, text, reply, usage)
        if not reply.strip() and notice is None and outcome != "stopped":
            outcome, notice = "empty", f"{model_label} returned an empty reply. Try again or switch models."
            if stats.thinking and stats.finish_reason == "length":
                notice = (
                    f"{model_label} used up the max tokens limit ({params.max_tokens}) thinking before writing any "
                    "text. Raise Max tokens (or turn Thinking down) and try again."
                )
        if saved is False:
            note = (
                f"This turn could not be saved: {refused}."
                if refused
                else "This turn is not saved yet: the history store is unreachable. It will be retried."
            )
            notice = f"{notice}\n\n{note}" if notice else note
        yield Update(
            reply,
            notice=notice,
            done=True,
            saved=saved,
            answered_by=stats.answered_by,
            because=stats.because,
            thinking=stats.thinking,
            stopped=outcome == "stopped",
        )

    def _with_image_bytes(self, session: ChatSession, prompt: list[Message]) -> list[Message]:
        """The prompt with each image's bytes (models are sent the image itself, never a URL to fetch)."""
        if not any(m.images for m in prompt):
            return prompt
        out = []
        for message in prompt:
            if message.images:
                loaded = []
                for image in message.images:
                    if image.data is None:
                        if self.load_image is None:
                            raise RuntimeError("this chat has no image store")
                        image = replace(image, data=self.load_image(session.owner, session.session_id, image))
                    loaded.append(image)
                message = replace(message, images=tuple(loaded))
            out.append(message)
        return out

    def _save(
        self,
        session: ChatSession,
        text: str,
        reply: str,
        model_label: str,
        usage: Usage,
        images: tuple[ImageRef, ...] = (),
    ) -> bool:
        refs = tuple(replace(i, data=None) for i in images)  # memory and the store keep references only
        with session.save_lock:
            turn = Turn(
                session_id=session.session_id,
                owner=session.owner,
                index=session.turns,
                user=text,
                assistant=reply,
                model=model_label,
                created_at=self.now(),
                usage=usage,
                user_images=refs,
                replaces=session.replacing == session.turns,
            )
            session.replacing = None
            session.messages += [Message("user", text, images=refs), Message("assistant", reply, model_label)]
            if self.usage is not None:
                self.usage.add(session.owner, usage.total, turn.day)
            return self.saver.save(turn)

    def _log(
        self,
        session: ChatSession,
        model_label: str,
        outcome: str,
        started: float,
        first_token_s: float | None,
        stats: ReplyStats,
        saved: bool | None,
        text: str,
        reply: str,
        usage: Usage | None = None,
    ) -> None:
        record: dict[str, object] = {
            "event": "turn",
            "session": session.session_id,
            "model": stats.answered_by or model_label,
            "outcome": outcome,
            "latency_s": round(time.monotonic() - started, 3),
            "first_token_s": None if first_token_s is None else round(first_token_s, 3),
            "tokens_in": usage.tokens_in if usage else stats.tokens_in,
            "tokens_out": usage.tokens_out if usage else stats.tokens_out,
            "tokens_estimated": usage.estimated if usage else None,
            "finish_reason": stats.finish_reason,
            "saved": saved,
        }
        if stats.answered_by is not None:
            record |= {"requested": model_label, "because": stats.because}
        if self.log_content:
            record |= {"message": text, "reply": reply}
        turn_log.info(json.dumps(record, ensure_ascii=False))
        empty = outcome == "ok" and not reply.strip()  # reply() reports it as "empty" once this has run
        metrics.record_turn(
            model_label,
            "empty" if empty else outcome,
            time.monotonic() - started,
            first_token_s,
            stats.tokens_in,
            stats.tokens_out,
        )
