"""What a person is told about their conversations: list entries, search results, and refusals (each
refusal's message is written for the person; `chatapp.conversations` raises them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class ConversationError(Exception):
    """A request about a conversation that cannot be done; the message is written for the person."""


class NotFound(ConversationError):
    """No such conversation for this caller: never saved, deleted, or someone else's (reported alike)."""

    def __init__(self) -> None:
        super().__init__("No such conversation (it may have been deleted).")


class Unavailable(ConversationError):
    """The history store failed; the message says what could not be done and why."""


class Changed(ConversationError):
    """The conversation changed elsewhere (another device) in a way this page has not seen; nothing was done."""


@dataclass(frozen=True)
class Summary:
    """One entry of a caller's conversation list."""

    id: str
    title: str
    updated_at: datetime
    turns: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "updated_at": self.updated_at.isoformat(), "turns": self.turns}


@dataclass(frozen=True)
class Found:
    """One search result: the conversation, and an excerpt of the message that matched ('' for the title)."""

    summary: Summary
    excerpt: str

    def as_dict(self) -> dict[str, Any]:
        return self.summary.as_dict() | {"excerpt": self.excerpt}
