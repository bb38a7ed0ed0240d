"""Conversation history: a store protocol, its implementations, and `open_store` to pick one from settings.

Adding a store = one new module plus one line in STORES. Implementations are imported only when chosen, so a
local SQLite run never loads the Firestore client.
"""

from __future__ import annotations

from collections.abc import Callable

from chatapp.history.base import (
    ChatStore,
    SessionNotFound,
    SessionSummary,
    StoredMessage,
    StoreError,
    Turn,
)
from chatapp.settings import Settings


def _sqlite(settings: Settings) -> ChatStore:
    from chatapp.history.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)


def _firestore(settings: Settings) -> ChatStore:
    from chatapp.history.firestore import FirestoreStore

    return FirestoreStore(settings.google_cloud_project, settings.firestore_database)


STORES: dict[str, Callable[[Settings], ChatStore]] = {"sqlite": _sqlite, "firestore": _firestore}


def open_store(settings: Settings) -> ChatStore:
    """The store named by settings.store (CHAT_STORE). Raises StoreError if it cannot be opened."""
    try:
        factory = STORES[settings.store]
    except KeyError:
        raise StoreError(f"CHAT_STORE must be one of {', '.join(STORES)}, got {settings.store!r}") from None
    return factory(settings)


__all__ = [
    "STORES",
    "ChatStore",
    "SessionNotFound",
    "SessionSummary",
    "StoreError",
    "StoredMessage",
    "Turn",
    "open_store",
]
