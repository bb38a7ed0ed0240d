"""Token usage in the stores: kept on each reply, and summed per owner per UTC day in the turn's own write."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from chatapp.history.base import Usage
from chatapp.history.sqlite import SqliteStore
from harness.rpc_counter import RpcCounter
from tests.history.conftest import make_turn

DAY = date(2025, 1, 2)  # the day of conftest's T0


def turn_with(index: int, usage: Usage | None, **kwargs: object):
    return dataclasses.replace(make_turn(index, **kwargs), usage=usage)


def test_each_reply_keeps_its_usage(store):
    store.save_turn(turn_with(0, Usage(12, 30)))
    store.save_turn(turn_with(1, Usage(50, 7, estimated=True)))
    store.save_turn(turn_with(2, None))  # a turn stored before usage was counted

    messages = store.load_messages("s-1", "alice")
    assert [m.usage for m in messages] == [None, Usage(12, 30), None, Usage(50, 7, True), None, None]


def test_daily_counter_sums_an_owners_replies_per_utc_day(store):
    store.save_turn(turn_with(0, Usage(12, 30)))
    store.save_turn(turn_with(1, Usage(50, 8)))
    store.save_turn(turn_with(0, Usage(1, 1), session_id="s-2"))  # another conversation, same person
    store.save_turn(turn_with(0, Usage(100, 100), owner="bob", session_id="s-3"))
    # 23:30 the day before in UTC, though 00:30 on DAY in UTC+1: it counts for the UTC day.
    late = datetime(2025, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    store.save_turn(turn_with(0, Usage(5, 5), session_id="s-4", at=late))

    assert store.tokens_used("alice", DAY) == 12 + 30 + 50 + 8 + 1 + 1
    assert store.tokens_used("alice", DAY - timedelta(days=1)) == 10
    assert store.tokens_used("bob", DAY) == 200
    assert store.tokens_used("carol", DAY) == 0


def test_deleting_a_conversation_does_not_give_tokens_back(store):
    store.save_turn(turn_with(0, Usage(10, 20)))
    store.delete_session("s-1", "alice")
    assert store.tokens_used("alice", DAY) == 30


@pytest.mark.integration
def test_with_usage_a_turn_is_still_one_commit_and_zero_reads(firestore_store):
    rpcs = RpcCounter(firestore_store.client)
    for index in range(3):
        rpcs.reset()
        firestore_store.save_turn(turn_with(index, Usage(10, 20)))
        assert dict(rpcs.calls) == {"commit": 1}
        ((_, request),) = rpcs.requests
        # session upsert + user message + reply + the owner's daily counter (an Increment transform).
        assert len(request["writes"]) == 4
    assert firestore_store.tokens_used("alice", DAY) == 90


@pytest.mark.integration
def test_firestore_counter_is_one_small_document_per_owner_and_day(firestore_store):
    owner = "user:odd/owner@example.com"  # a '/' would be a path in a document id: ids are hashed
    firestore_store.save_turn(turn_with(0, Usage(3, 4), owner=owner))
    (doc,) = list(firestore_store.client.collection("chat_usage").stream())
    assert doc.id.startswith("2025-01-02_") and "/" not in doc.id
    assert doc.to_dict()["owner"] == owner and doc.to_dict()["tokens"] == 7


def test_a_history_file_from_before_usage_opens_and_counts(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the schema as first released
        conn.executescript(
            """
            CREATE TABLE sessions (session_id TEXT PRIMARY KEY, owner TEXT, title TEXT NOT NULL DEFAULT '',
                created_at INTEGER, updated_at INTEGER NOT NULL, turns INTEGER NOT NULL);
            CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, model TEXT,
                created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
            INSERT INTO sessions VALUES ('s-1', 'alice', 'old', 0, 0, 1);
            INSERT INTO messages VALUES ('s-1', 0, 'user', 'hi', NULL, 0), ('s-1', 1, 'assistant', 'hello', 'm', 0);
            """
        )
    conn.close()
    store = SqliteStore(path)
    try:
        store.save_turn(turn_with(1, Usage(4, 6)))
        messages = store.load_messages("s-1", "alice")
        assert [(m.content, m.usage) for m in messages][:2] == [("hi", None), ("hello", None)]
        assert messages[3].usage == Usage(4, 6)
        assert store.tokens_used("alice", DAY) == 10
    finally:
        store.close()


def test_usage_day_is_utc():
    turn = turn_with(0, Usage(1, 1), at=datetime(2025, 1, 2, 23, 59, tzinfo=UTC))
    assert turn.day == DAY
