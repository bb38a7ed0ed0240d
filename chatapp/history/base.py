"""What a history store implements, and the records it keeps.

Layout (Firestore; SQLite keeps the same logical shape):
  chat_sessions/{session_id}                = {owner, title, created_at, updated_at, turns}
  chat_sessions/{session_id}/messages/{id}  = {role, content, model, created_at, seq}
A turn (user message + reply) is written in ONE batch together with the session upsert, with no reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

TITLE_CHARS = 80


class StoreError(Exception):
    """The store could not be reached or refused the operation."""


class SessionNotFound(StoreError):
    """No such session for this owner (a session of another owner is reported the same way)."""


@dataclass(frozen=True)
class StoredMessage:
    role: str  # "user" | "assistant"
    content: str
    model: str | None
    created_at: datetime
    seq: int


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int


@dataclass(frozen=True)
class Turn:
    """One exchange. `index` counts turns in the session from 0; its messages get seq 2*index and 2*index+1,
    which also makes their ids deterministic, so saving the same turn twice (a retry after a lost reply)
    writes the same documents instead of duplicates."""

    session_id: str
    owner: str
    index: int
    user: str
    assistant: str
    model: str
    created_at: datetime

    @property
    def title(self) -> str:
        line = " ".join(self.user.split())
        return line[:TITLE_CHARS]


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

    def ping(self) -> None:
        """Raise StoreError unless the store answers now (used by /readyz)."""
        ...

    def close(self) -> None: ...
