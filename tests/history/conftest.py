"""Stores under test: every contract test runs once on SQLite and once on the Firestore emulator."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chatapp.history.base import ChatStore, Turn
from chatapp.history.sqlite import SqliteStore

T0 = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def make_turn(
    index: int,
    session_id: str = "s-1",
    owner: str = "alice",
    user: str | None = None,
    assistant: str | None = None,
    at: datetime | None = None,
) -> Turn:
    return Turn(
        session_id=session_id,
        owner=owner,
        index=index,
        user=f"question {index}" if user is None else user,
        assistant=f"answer {index}" if assistant is None else assistant,
        model="test-model",
        created_at=at or T0 + timedelta(seconds=index),
    )


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ChatStore]:
    if request.param == "sqlite":
        sqlite_store = SqliteStore(tmp_path / "history.sqlite3")
        yield sqlite_store
        sqlite_store.close()
    else:
        yield request.getfixturevalue("firestore_store")


def add_placeholder(store: ChatStore) -> None:
    """What the infrastructure creates: `chat_sessions/initialize` with no owner."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store._path) as conn:
            conn.execute("INSERT INTO sessions (session_id, title, updated_at, turns) VALUES ('initialize', '', 0, 0)")
    else:
        store.client.collection("chat_sessions").document("initialize").set(
            {"placeholder": True, "updated_at": datetime.now(UTC)}
        )
