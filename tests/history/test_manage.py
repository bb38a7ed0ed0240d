"""Rename, search and failed messages: every test runs on SQLite and on the Firestore emulator.

Search must give the same answers on both (the rule lives in chatapp.history.search; SQLite applies it through
FTS5, Firestore by reading the caller's newest conversations), and must never reach another owner's data.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta

import pytest

from chatapp.history.base import TITLE_CHARS, SessionNotFound, Unanswered
from chatapp.history.sqlite import SqliteStore
from tests.history.conftest import T0, make_turn


def found(store, owner: str, query: str) -> list[tuple[str, str]]:
    return [(hit.summary.session_id, hit.excerpt) for hit in store.search_sessions(owner, query)]


def failed(text: str = "why is the sky blue?", after: int = 0, error: str = "The model is down.") -> Unanswered:
    return Unanswered(text, error, after, T0 + timedelta(minutes=5))


def test_rename_sets_the_title_with_the_one_title_rule_and_survives_a_retried_first_turn(store):
    store.save_turn(make_turn(0, user="first words"))
    store.rename_session("s-1", "alice", "  My\n  trip   plans " + "x" * 200)

    (listed,) = store.list_sessions("alice")
    assert listed.title == ("My trip plans " + "x" * 200)[:TITLE_CHARS]
    assert store.describe_session("s-1", "alice").title == listed.title
    store.save_turn(make_turn(0, user="first words, asked again"))  # a retry rewrites turn 0
    assert store.list_sessions("alice")[0].title == listed.title


def test_after_a_rename_search_finds_the_new_title_and_no_longer_the_old(store):
    store.save_turn(make_turn(0, user="about walruses", assistant="they have tusks"))
    store.rename_session("s-1", "alice", "Tusked mammals")
    assert found(store, "alice", "mammals") == [("s-1", "")]
    store.rename_session("s-1", "alice", "Pinniped notes")
    assert found(store, "alice", "pinniped") == [("s-1", "")]
    assert found(store, "alice", "mammals") == []  # the old title: in no title or message any more
    store.save_turn(make_turn(1, user="and seals?", assistant="flippers"))  # a later turn keeps the new title
    assert found(store, "alice", "pinniped") == [("s-1", "")] and found(store, "alice", "mammals") == []


def test_another_owner_can_neither_rename_nor_describe_nor_search(store):
    store.save_turn(make_turn(0, user="alice's secret kite"))
    with pytest.raises(SessionNotFound):
        store.rename_session("s-1", "bob", "mine now")
    with pytest.raises(SessionNotFound):
        store.describe_session("s-1", "bob")
    with pytest.raises(SessionNotFound):
        store.clear_unanswered("s-1", "bob")
    with pytest.raises(SessionNotFound):
        store.save_unanswered("s-1", "bob", failed())
    assert store.search_sessions("bob", "kite") == []
    assert store.search_sessions("", "kite") == []
    about = store.describe_session("s-1", "alice")
    assert about.title == "alice's secret kite" and about.unanswered is None
    assert [m.content for m in store.load_messages("s-1", "alice")] == ["alice's secret kite", "answer 0"]


def test_search_finds_titles_and_messages_by_word_start_ignoring_case_and_accents(store):
    store.save_turn(make_turn(0, "s-1", user="Kites over the Café", assistant="Red kites soar."))
    store.save_turn(make_turn(1, "s-1", user="and herons?", assistant="A blue heron waded in."))
    store.save_turn(make_turn(0, "s-2", user="Tax forms", assistant="File by April.", at=T0 + timedelta(hours=1)))
    store.save_turn(make_turn(0, "s-3", owner="bob", user="kite heron cafe", assistant="bob's"))

    assert found(store, "alice", "cafe") == [("s-1", "")]  # the title
    assert found(store, "alice", "KITE") == [("s-1", "")]
    assert found(store, "alice", "blue her") == [("s-1", "A blue heron waded in.")]  # both words, one message
    assert found(store, "alice", "april") == [("s-2", "File by April.")]
    assert found(store, "alice", "heron april") == []  # words in different conversations
    assert found(store, "alice", "eron") == []  # the start of a word, not any substring
    assert found(store, "alice", "in") == [("s-1", "A blue heron waded in.")]  # short: a whole word only
    assert found(store, "alice", "fi") == []  # not a prefix of "File"
    assert found(store, "alice", "   ") == []


@pytest.mark.parametrize("query", ["_w_", "__w", "w_", "(w)"])
def test_a_short_word_is_judged_by_what_the_index_matches_not_by_what_was_typed(store, query):
    # `_w_` is three characters but the one-letter word `w` to the index: a whole word, never the prefix
    # `w*` that would match nearly every message (and cost seconds over a large history).
    store.save_turn(make_turn(0, "s-1", user="wonderful weather", assistant="we walked"))
    store.save_turn(make_turn(0, "s-2", user="plan", assistant="take route w north", at=T0 + timedelta(hours=1)))
    assert found(store, "alice", query) == [("s-2", "take route w north")]


def test_words_joined_by_underscores_are_separate_words(store):
    store.save_turn(make_turn(0, "s-1", user="snake", assistant="call read_config first"))
    store.save_turn(make_turn(0, "s-2", user="re", assistant="read x config", at=T0 + timedelta(hours=1)))
    assert {sid for sid, _ in found(store, "alice", "read_config")} == {"s-1", "s-2"}
    assert found(store, "alice", "x_c") == []  # two one-letter words: `c` is not a prefix of "config" here


def test_search_follows_retries_undo_and_delete(store):
    store.save_turn(make_turn(0, user="hello", assistant="the old answer mentions zebras"))
    retried = make_turn(0, user="hello", assistant="the new answer mentions giraffes")
    store.save_turn(dataclasses.replace(retried, replaces=True))  # Retry: replaces the turn at its place
    assert found(store, "alice", "zebras") == []
    assert found(store, "alice", "giraffes") == [("s-1", "the new answer mentions giraffes")]

    store.save_turn(make_turn(1, user="penguins?", assistant="yes"))
    store.truncate("s-1", "alice", 1)  # undo
    assert found(store, "alice", "penguins") == []

    store.delete_session("s-1", "alice")
    assert found(store, "alice", "giraffes") == [] and found(store, "alice", "hello") == []


@pytest.mark.parametrize(
    "query", ['"', "a AND", "NEAR(", "title:x", "*", "^start", "-minus", "(", "x OR", "'; DROP TABLE sessions; --"]
)
def test_search_syntax_in_a_query_is_just_text(store, query):
    store.save_turn(make_turn(0, user="minus start title x"))
    store.search_sessions("alice", query)  # no error
    assert [m.role for m in store.load_messages("s-1", "alice")] == ["user", "assistant"]


def test_a_failed_first_message_is_a_listed_conversation_until_taken_back(store):
    store.save_unanswered("s-1", "alice", failed())

    (listed,) = store.list_sessions("alice")
    assert (listed.session_id, listed.title, listed.turns) == ("s-1", "why is the sky blue?", 0)
    assert store.describe_session("s-1", "alice").unanswered == failed()
    assert store.load_messages("s-1", "alice") == []

    store.clear_unanswered("s-1", "alice")  # nothing else in it: it goes
    assert store.list_sessions("alice") == []
    with pytest.raises(SessionNotFound):
        store.describe_session("s-1", "alice")


def test_a_failed_message_after_turns_is_kept_and_cleared_without_touching_them(store):
    store.save_turn(make_turn(0))
    store.save_unanswered("s-1", "alice", failed(after=1))
    assert store.describe_session("s-1", "alice").unanswered == failed(after=1)
    assert store.describe_session("s-1", "alice").turns == 1

    store.save_turn(make_turn(1, user="why is the sky blue?"))  # the retry worked: one write, the record stays
    assert store.describe_session("s-1", "alice").unanswered.after_turns == 1  # stale: it was for position 1

    store.truncate("s-1", "alice", 1)  # undo must not bring the old failure back as current
    assert store.describe_session("s-1", "alice").unanswered is None

    store.save_unanswered("s-1", "alice", failed(after=1))
    store.clear_unanswered("s-1", "alice")
    about = store.describe_session("s-1", "alice")
    assert about.unanswered is None and about.turns == 1
    assert [m.content for m in store.load_messages("s-1", "alice")] == ["question 0", "answer 0"]


def test_sqlite_search_index_is_built_for_a_file_from_before_search(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the schema as the previous release wrote it
        conn.executescript(
            "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, owner TEXT, title TEXT NOT NULL DEFAULT '',"
            " created_at INTEGER, updated_at INTEGER NOT NULL, turns INTEGER NOT NULL);"
            "CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,"
            " seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, model TEXT,"
            " created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;"
            "INSERT INTO sessions VALUES ('old', 'alice', 'An old chat', 1, 1, 1);"
            "INSERT INTO messages VALUES ('old', 0, 'user', 'about walruses', NULL, 1),"
            " ('old', 1, 'assistant', 'they have tusks', 'm', 1);"
        )
    store = SqliteStore(path)
    try:
        assert found(store, "alice", "walrus") == [("old", "about walruses")]
        assert found(store, "alice", "old chat") == [("old", "")]
        store.rename_session("old", "alice", "Walrus facts")
        assert store.list_sessions("alice")[0].title == "Walrus facts"
        # Every column added since (by any feature) exists: a new turn is stored and found.
        store.save_turn(make_turn(1, "old", user="and seals?", assistant="they have flippers"))
        assert found(store, "alice", "flippers") == [("old", "they have flippers")]
        assert len(store.load_messages("old", "alice")) == 4
    finally:
        store.close()
    SqliteStore(path).close()  # opening again changes nothing (no second backfill)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM search_index").fetchone()[0] == 5  # 4 messages + the title


@pytest.mark.integration
def test_firestore_search_reads_the_newest_conversations_of_the_caller_only(firestore_store, monkeypatch):
    """What the README promises for Firestore: titles of the newest SEARCH_TITLES conversations, messages of
    the newest SEARCH_CONTENTS; nothing older, and never another owner's."""
    from chatapp.history import firestore

    monkeypatch.setattr(firestore, "SEARCH_TITLES", 3)
    monkeypatch.setattr(firestore, "SEARCH_CONTENTS", 2)
    for age, sid in enumerate(["newest", "second", "third", "fourth"]):
        at = T0 - timedelta(hours=age)
        firestore_store.save_turn(make_turn(0, sid, user=f"{sid} otters", assistant=f"{sid} beavers", at=at))
    firestore_store.save_turn(make_turn(0, "bobs", owner="bob", user="otters", assistant="beavers"))

    assert {sid for sid, _ in found(firestore_store, "alice", "otters")} == {"newest", "second", "third"}
    assert found(firestore_store, "alice", "beavers") == [("newest", "newest beavers"), ("second", "second beavers")]
    assert found(firestore_store, "alice", "fourth") == []  # past SEARCH_TITLES
