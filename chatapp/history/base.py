"""What a history store implements, and the records it keeps.

Layout (Firestore; SQLite keeps the same logical shape):
  chat_sessions/{session_id}                = {owner, title, created_at, updated_at, turns}
  chat_sessions/{session_id}/messages/{id}  = {role, content, model, created_at, seq, usage (replies only)}
  chat_usage/{day}_{hash of owner}          = {owner, day, tokens, updated_at, holds}   (tokens in + out per
                                              UTC day; holds: reservations of requests in flight)
  session_bindings/…, sign_in_failures/…    what replicas share (chatapp.history.shared)
A turn (user message + reply) is written in ONE batch together with the session upsert and the increment of
the owner's daily usage counter, with no reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from chatapp.conversation import ImageRef

TITLE_CHARS = 80
# Firestore caps a document at 1 MiB; a message document is its content plus a few small fields. Both stores
# enforce the same cap so a conversation that works locally also works in the cloud.
MAX_MESSAGE_BYTES = 900_000


class StoreError(Exception):
    """The store could not be reached or refused the operation.

    `transient` says whether trying the same call again later can succeed (store down, timeout) or not
    (message too large, not valid text): a retry queue keeps the first kind and reports the second at once.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class TurnsChanged(StoreError):
    """Undo from a copy of the conversation that has not seen all its stored turns (another device went on):
    nothing was deleted, since the turn it would take back is not the one the person sees last."""

    def __init__(self, shown: int, stored: int) -> None:
        super().__init__(f"the conversation has {stored} turns stored, the copy undoing shows {shown}", transient=False)


class SessionNotFound(StoreError):
    """No such session for this owner (a session of another owner is reported the same way)."""

    def __init__(self, message: str = "no such conversation") -> None:
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class Usage:
    """Tokens one reply cost. `estimated`: the provider did not report a count (llama.cpp ignores
    include_usage; a stopped stream never gets its usage chunk), so ~4 characters per token stood in."""

    tokens_in: int
    tokens_out: int
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.tokens_in + self.tokens_out

    def as_dict(self) -> dict[str, int | bool]:
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "estimated": self.estimated}

    @classmethod
    def from_dict(cls, value: object) -> Usage | None:
        if not isinstance(value, dict):
            return None
        tokens_in, tokens_out = value.get("tokens_in"), value.get("tokens_out")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            return None
        return cls(tokens_in, tokens_out, bool(value.get("estimated", False)))


@dataclass(frozen=True)
class StoredMessage:
    role: str  # "user" | "assistant"
    content: str
    model: str | None
    created_at: datetime
    seq: int
    usage: Usage | None = None  # replies only
    # References to the user message's images (their bytes live in the media store, never here).
    images: tuple[ImageRef, ...] = ()


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int
    # Filled by `describe_session` only (listings leave it None): the message whose reply failed, if any.
    unanswered: Unanswered | None = None


@dataclass(frozen=True)
class Unanswered:
    """A message whose reply failed, kept with its conversation so a reload still shows it and can retry it.

    `after_turns` is how many turns the conversation had when it failed: once a turn is stored at that
    position (the retry worked, or the message went out joined with the next one) the record is stale and
    ignored, so the send path never has to clear it — a turn stays one write."""

    text: str
    error: str
    after_turns: int
    created_at: datetime


@dataclass(frozen=True)
class SearchHit:
    """A conversation that matches a search, with a short plain-text excerpt of what matched."""

    summary: SessionSummary
    excerpt: str


@dataclass(frozen=True)
class Turn:
    """One exchange. `index` counts turns in the session from 0; its messages get seq 2*index and 2*index+1,
    which also makes their ids deterministic, so saving the same turn twice (a retry after a lost reply)
    writes the same documents instead of duplicates.

    A turn never overwrites another one at its place (`index`) unless it `replaces` it (Retry answers the last
    message again): a copy of the conversation that missed turns saved elsewhere (another device, another
    replica) would otherwise take their place. The store puts it after the last stored turn instead, and saving
    the very same turn again (same time and reply) writes nothing."""

    session_id: str
    owner: str
    index: int
    user: str
    assistant: str
    model: str
    created_at: datetime
    usage: Usage | None = None  # what the reply cost; added to the owner's counter for created_at's UTC day
    user_images: tuple[ImageRef, ...] = ()
    replaces: bool = False  # Retry: the turn stored at `index` is replaced on purpose

    @property
    def title(self) -> str:
        return title_of(self.user) or ("(image)" if self.user_images else "")

    @property
    def day(self) -> date:
        return usage_day(self.created_at)


def images_json(images: tuple[ImageRef, ...]) -> str | None:
    """How a store keeps a message's image references: a small JSON list (about 80 bytes an image)."""
    return json.dumps([i.as_dict() for i in images]) if images else None


def images_from(value: object) -> tuple[ImageRef, ...]:
    """A stored image list (JSON text or a list of maps) back into references; malformed entries are skipped."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return ()
    if not isinstance(value, list):
        return ()
    return tuple(ref for ref in (ImageRef.from_dict(v) for v in value) if ref is not None)


def title_of(first_message: str) -> str:
    """A conversation's title: its first message (or the name a person gave it) on one line, cut to
    TITLE_CHARS (the one rule for both the stores, renaming, and the sidebar entry shown before the store is
    read again)."""
    return " ".join(first_message.split())[:TITLE_CHARS]


def usage_day(moment: datetime) -> date:
    """The UTC day a moment counts for (a naive time is taken as UTC, as both stores do)."""
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def valid_session_id(session_id: str) -> bool:
    """Ids usable as a Firestore document id (no '/', not '.'/'..', not reserved `__x__`), in both stores."""
    return (
        bool(session_id)
        and "/" not in session_id
        and session_id not in {".", ".."}
        and not (session_id.startswith("__") and session_id.endswith("__"))
        and len(session_id.encode("utf-8", "surrogatepass")) <= 1500
    )


def check_turn(turn: Turn) -> None:
    """Reject a turn no store can keep, with a message for a person. Raise StoreError(transient=False)."""
    if not valid_session_id(turn.session_id):
        raise StoreError(f"invalid session id {turn.session_id!r}", transient=False)
    if not turn.owner:
        raise StoreError("a turn needs an owner", transient=False)
    if turn.index < 0:
        raise StoreError(f"turn index must be >= 0, got {turn.index}", transient=False)
    for role, text in (("user", turn.user), ("assistant", turn.assistant)):
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise StoreError(f"the {role} message is not valid Unicode text", transient=False) from None
        if size > MAX_MESSAGE_BYTES:
            raise StoreError(
                f"the {role} message is {size:,} bytes; the history keeps at most {MAX_MESSAGE_BYTES:,}",
                transient=False,
            )


class ChatStore(Protocol):
    def save_turn(self, turn: Turn) -> None:
        """Write the session upsert and both messages atomically. Raise StoreError on failure."""
        ...

    def load_messages(self, session_id: str, owner: str) -> list[StoredMessage]:
        """All messages of a session in seq order. Raise SessionNotFound unless `owner` owns it."""
        ...

    def list_sessions(self, owner: str, limit: int = 50) -> list[SessionSummary]:
        """The owner's sessions, most recently updated first."""
        ...

    def delete_session(self, session_id: str, owner: str) -> None:
        """Delete a session and its messages. Raise SessionNotFound unless `owner` owns it."""
        ...

    def truncate(self, session_id: str, owner: str, turns: int, shown: int | None = None) -> None:
        """Keep only the first `turns` turns (undo). Raise SessionNotFound unless `owner` owns it, and
        TurnsChanged, deleting nothing, when more than `shown` turns (the undoing copy's) are stored."""
        ...

    def tokens_used(self, owner: str, day: date) -> int:
        """Tokens in + out of the owner's replies stored for that UTC day (0 if none). One read."""
        ...

    # -- managing conversations: rename, search, a failed message kept for the next reload ---------------

    def describe_session(self, session_id: str, owner: str) -> SessionSummary:
        """The session's summary, its failed message included. Raise SessionNotFound unless `owner` owns it."""
        ...

    def rename_session(self, session_id: str, owner: str, title: str) -> None:
        """Give the session a title of the owner's choosing (kept when turn 0 is rewritten by a retry).
        Raise SessionNotFound unless `owner` owns it."""
        ...

    def search_sessions(self, owner: str, query: str, limit: int = 20) -> list[SearchHit]:
        """The owner's sessions whose title or one message holds every word of `query` (each as a word
        prefix, case and accents ignored), most recently updated first."""
        ...

    def save_unanswered(self, session_id: str, owner: str, unanswered: Unanswered) -> None:
        """Keep a failed message with the session (creating it, without turns, when it has none yet).
        Raise SessionNotFound when the session belongs to someone else."""
        ...

    def clear_unanswered(self, session_id: str, owner: str) -> None:
        """Forget the failed message; a session that has nothing else is deleted. SessionNotFound unless
        `owner` owns it."""
        ...

    def ping(self) -> None:
        """Raise StoreError unless the store answers now (used by /readyz)."""
        ...

    def close(self) -> None: ...
