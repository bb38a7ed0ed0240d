"""SQLite-only promises: WAL, the listing index, many threads at once, a clean close, and the registry."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import pytest

from chatapp.history import open_store
from chatapp.history.base import SessionNotFound, StoreError, Unanswered
from chatapp.history.sqlite import SqliteStore
from chatapp.settings import Settings
from tests.history.conftest import T0, make_turn

# These tests run code in worker threads: an assert or error there must fail the test, not just warn.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "nested" / "history.sqlite3"


def test_file_is_in_wal_mode_and_listing_uses_the_owner_index(db):
    SqliteStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE owner = ? ORDER BY updated_at DESC LIMIT 50", ("a",)
        ).fetchall()
    assert "sessions_owner_updated" in str(plan) and "TEMP B-TREE" not in str(plan)


def test_history_survives_reopening_the_file(db):
    store = SqliteStore(db)
    store.save_turn(make_turn(0))
    store.close()

    reopened = SqliteStore(db)
    assert [m.content for m in reopened.load_messages("s-1", "alice")] == ["question 0", "answer 0"]
    reopened.close()


def test_64_threads_writing_and_reading_at_once(db):
    store = SqliteStore(db)
    errors: list[BaseException] = []
    barrier = threading.Barrier(64, timeout=30)

    def chat(n: int):
        try:
            barrier.wait()
            for index in range(25):
                store.save_turn(make_turn(index, session_id=f"c-{n}", owner=f"user-{n % 8}"))
                assert len(store.load_messages(f"c-{n}", f"user-{n % 8}")) == 2 * (index + 1)
                store.list_sessions(f"user-{n % 8}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(n,), daemon=True) for n in range(64)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60  # a lock never released must fail here, not hang until pytest's timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "writers still running after 60 s: a lock was never released"

    assert errors == []
    assert sum(len(store.list_sessions(f"user-{u}", limit=100)) for u in range(8)) == 64
    store.close()


def test_writing_into_another_owners_session_is_refused(db):
    # Firestore cannot check this without a read on the send path; SQLite checks it for free.
    store = SqliteStore(db)
    store.save_turn(make_turn(0))

    with pytest.raises(SessionNotFound):
        store.save_turn(make_turn(1, owner="mallory"))
    assert len(store.load_messages("s-1", "alice")) == 2
    store.close()


def test_a_closed_store_says_so(db):
    store = SqliteStore(db)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.ping()


def test_an_unusable_path_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "history.sqlite3"
    with pytest.raises(StoreError) as failed:
        SqliteStore(path)
    assert str(failed.value).startswith(f"SQLite history {path}: opening failed: ")


def test_open_store_picks_sqlite(db):
    store = open_store(Settings(store="sqlite", sqlite_path=str(db)))
    assert isinstance(store, SqliteStore)
    store.ping()
    store.close()


def test_open_store_rejects_an_unknown_store():
    with pytest.raises(StoreError, match="CHAT_STORE"):
        open_store(Settings(store="mongodb"))


def test_importing_the_history_package_does_not_import_the_firestore_client():
    import subprocess

    code = "import sys, chatapp.history; print('google.cloud.firestore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_failure_names_what_could_not_be_done(db):
    store = SqliteStore(db)
    store.save_turn(make_turn(0))
    with sqlite3.connect(db) as conn:  # the file loses its tables under the store (a bad restore, say)
        conn.executescript("DROP TABLE messages; DROP TABLE sessions; DROP TABLE daily_usage;")
    calls = {
        "saving a turn": lambda: store.save_turn(make_turn(1)),
        "loading a conversation": lambda: store.load_messages("s-1", "alice"),
        "reading today's usage": lambda: store.tokens_used("alice", T0.date()),
        "listing conversations": lambda: store.list_sessions("alice"),
        "deleting a conversation": lambda: store.delete_session("s-1", "alice"),
        "undoing a turn": lambda: store.truncate("s-1", "alice", 1),
        "reading a conversation": lambda: store.describe_session("s-1", "alice"),
        "renaming a conversation": lambda: store.rename_session("s-1", "alice", "x"),
        "searching conversations": lambda: store.search_sessions("alice", "question"),
        "keeping a failed message": lambda: store.save_unanswered("s-1", "alice", Unanswered("q", "e", 1, T0)),
        "forgetting a failed message": lambda: store.clear_unanswered("s-1", "alice"),
        "checking the store": store.ping,
    }
    for action, call in calls.items():
        with pytest.raises(StoreError) as failed:
            call()
        assert str(failed.value).startswith(f"SQLite history {db}: {action} failed: "), action
    store.close()


def test_an_in_memory_or_closed_store_is_refused_for_good(tmp_path):
    with pytest.raises(StoreError) as refused:
        SqliteStore(":memory:")
    assert str(refused.value) == "SqliteStore needs a file: each thread opens its own connection"
    assert refused.value.transient is False
    path = tmp_path / "new" / "folders" / "history.sqlite3"  # missing parent folders are created
    store = SqliteStore(path)
    store.save_turn(make_turn(0))
    store.close()
    with pytest.raises(StoreError) as closed:
        store.list_sessions("alice")
    assert str(closed.value) == f"the history store {path} is closed" and closed.value.transient is False
