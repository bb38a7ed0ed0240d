"""Store promises that the mutation run of chatapp/history/sqlite.py showed unguarded (`make mutations
MODULES=chatapp/history/sqlite.py`): what describe, list and search say about a conversation, images read back,
undo past the first turn, the default limits, a failed message never kept without an owner.

Contract tests take the `store` fixture and run on both stores (the Firestore case needs the emulator); the
SQLite-only ones say why.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from chatapp.conversation import ImageRef
from chatapp.conversations import SEARCH_LIMIT
from chatapp.history.base import SessionNotFound, SessionSummary, Unanswered, Usage
from chatapp.history.sqlite import SqliteStore, _micros
from tests.history.conftest import T0, make_turn


def test_describe_list_and_search_give_the_same_whole_summary(store):
    store.save_turn(make_turn(0, user="Kites over the bay", at=T0))
    store.save_turn(make_turn(1, user="and gulls?", at=T0 + timedelta(hours=1)))
    # Started at turn 0's time, updated at the newest turn's: two different moments, so neither stands in for
    # the other.
    summary = SessionSummary("s-1", "alice", "Kites over the bay", T0, T0 + timedelta(hours=1), 2)

    assert store.list_sessions("alice") == [summary]
    assert store.describe_session("s-1", "alice") == summary
    (hit,) = store.search_sessions("alice", "gulls")
    assert (hit.summary, hit.excerpt) == (summary, "and gulls?")


def test_sqlite_a_conversation_without_a_start_time_reads_as_started_when_updated(tmp_path):
    # SQLite only: the column may be NULL (like a Firestore session document written without created_at), and
    # the store's own writes always fill it for a conversation with an owner, so the row is written here.
    path = tmp_path / "history.sqlite3"
    SqliteStore(path).close()
    updated = T0 + timedelta(days=3)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO sessions (session_id, owner, title, updated_at, turns) VALUES ('s-1', 'alice', 'Kites', ?, 1)",
            (_micros(updated),),
        )
    store = SqliteStore(path)
    try:
        summary = SessionSummary("s-1", "alice", "Kites", updated, updated, 1)
        assert store.list_sessions("alice") == [summary]
        assert store.describe_session("s-1", "alice") == summary
        assert [hit.summary for hit in store.search_sessions("alice", "kites")] == [summary]
    finally:
        store.close()


def test_a_messages_images_come_back_and_a_reply_has_none(store):
    refs = (ImageRef("a" * 32, "image/png", 1234), ImageRef("b" * 32, "image/jpeg", 56789))
    store.save_turn(replace(make_turn(0), user_images=refs))
    store.save_turn(make_turn(1))

    messages = store.load_messages("s-1", "alice")

    assert [m.images for m in messages] == [refs, (), (), ()]


def test_undo_to_a_later_turn_keeps_exactly_the_turns_before_it(store):
    for index in range(4):
        store.save_turn(make_turn(index))

    store.truncate("s-1", "alice", 2)

    assert [m.content for m in store.load_messages("s-1", "alice")] == [
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
    ]
    assert store.describe_session("s-1", "alice").turns == 2


def test_without_a_limit_a_listing_gives_the_50_newest_and_a_search_the_20_newest(store):
    # The ChatStore defaults; the chat passes SEARCH_LIMIT itself, which must be the same number.
    for n in range(51):
        store.save_turn(make_turn(0, f"s-{n:02}", user=f"kites {n}", at=T0 + timedelta(minutes=n)))
    newest_first = [f"s-{n:02}" for n in range(50, -1, -1)]

    assert [s.session_id for s in store.list_sessions("alice")] == newest_first[:50]
    assert [h.summary.session_id for h in store.search_sessions("alice", "kites")] == newest_first[:SEARCH_LIMIT]
    assert SEARCH_LIMIT == 20


def test_a_failed_message_without_an_owner_is_refused_and_kept_nowhere(store):
    failed = Unanswered("why is the sky blue?", "The model is down.", 0, T0)
    with pytest.raises(SessionNotFound):
        store.save_unanswered("s-1", "", failed)

    assert store.list_sessions("") == []
    store.save_unanswered("s-1", "alice", failed)  # the id was not taken by an owner-less conversation
    assert store.describe_session("s-1", "alice").unanswered == failed


def test_sqlite_a_write_waits_10_s_for_another_writers_lock(tmp_path):
    # SQLite only: the app opens its store with the default (chatapp.history.open_store), and another process
    # (a second replica on the same file, a sqlite3 shell) may hold the write lock for a while.
    for kwargs, waits_ms in (({}, 10_000), ({"busy_timeout_s": 2.5}, 2_500)):
        store = SqliteStore(tmp_path / "history.sqlite3", **kwargs)
        try:
            assert store._conn().execute("PRAGMA busy_timeout").fetchone()[0] == waits_ms
        finally:
            store.close()


def test_a_time_in_another_zone_keeps_its_instant(store):
    store.save_turn(make_turn(0, at=T0.astimezone(timezone(timedelta(hours=2)))))
    assert [m.created_at for m in store.load_messages("s-1", "alice")] == [T0, T0]


def test_a_naive_time_is_taken_as_utc(store):
    store.save_turn(make_turn(0, at=T0.replace(tzinfo=None)))
    assert [m.created_at for m in store.load_messages("s-1", "alice")] == [T0, T0]


def test_a_reply_that_cost_one_token_is_counted(store):
    store.save_turn(replace(make_turn(0), usage=Usage(0, 1)))
    assert store.tokens_used("alice", T0.date()) == 1
