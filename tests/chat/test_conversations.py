"""Conversations over a real SQLite store and in-process models: each call acts only on the caller's own
conversations, and undo changes the store and the memory together or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.chat import ChatService, ChatSession
from chatapp.conversations import Controls, Conversations, NotFound, Unavailable
from chatapp.history.base import StoreError
from chatapp.history.sqlite import SqliteStore
from chatapp.inputs import InputError
from tests.chat.test_chat_service import ScriptedModel

# The settings the tests send with a message to the scripted model "M".
SETTINGS = Controls("M", 0.7, 0.95, 64)


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


@pytest.fixture
def conversations(store: SqliteStore) -> Conversations:
    return Conversations(ChatService({"M": ScriptedModel("M")}, _Saver(store), context_chars=10_000), store)


class _Saver:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def save(self, turn) -> bool:
        self.store.save_turn(turn)
        return True


def talk(conversations: Conversations, owner: str, session: ChatSession, text: str) -> None:
    ask = conversations.check(text, SETTINGS)
    assert list(conversations.reply(owner, session, ask))[-1].done


def test_each_call_acts_only_on_the_callers_own(conversations: Conversations, store: SqliteStore):
    ada = conversations.start("user:ada")
    talk(conversations, "user:ada", ada, "ada's words")
    with pytest.raises(NotFound):  # Bob holding Ada's in-memory conversation (a replayed session) gets nothing
        conversations.reply("user:bob", ada, conversations.check("bob's words", SETTINGS))
    for act in (conversations.undo, conversations.retry, conversations.discard):
        with pytest.raises(NotFound):
            act("user:bob", ada)
    with pytest.raises(NotFound):
        conversations.resume("user:bob", ada.session_id)
    with pytest.raises(NotFound):
        conversations.delete("user:bob", ada.session_id)
    assert conversations.reopen("user:bob", ada.session_id).messages == []  # a new one, not Ada's
    assert conversations.list("user:bob") == []
    assert [m.content for m in store.load_messages(ada.session_id, "user:ada")] == ["ada's words", "Hello!"]


def test_list_is_newest_first_with_title_and_turns(conversations: Conversations):
    first, second = conversations.start("user:ada"), conversations.start("user:ada")
    talk(conversations, "user:ada", first, "  the   first\ntopic ")
    talk(conversations, "user:ada", second, "the second")
    talk(conversations, "user:ada", second, "more")
    listed = conversations.list("user:ada")
    assert [(c.id, c.title, c.turns) for c in listed] == [
        (second.session_id, "the second", 2),
        (first.session_id, "the first topic", 1),
    ]
    assert conversations.summary_of(first).title == listed[1].title  # one title rule


def test_undo_changes_store_and_memory_together(conversations: Conversations, store: SqliteStore, monkeypatch):
    session = conversations.start("user:ada")
    talk(conversations, "user:ada", session, "one")
    talk(conversations, "user:ada", session, "two")

    def down(*_args: object, **_kwargs: object) -> None:
        raise StoreError("the store is down")

    monkeypatch.setattr(store, "truncate", down)
    with pytest.raises(Unavailable, match="the store is down"):
        conversations.undo("user:ada", session)
    assert session.turns == 2  # nothing changed anywhere
    monkeypatch.undo()
    assert conversations.undo("user:ada", session) == "two"
    assert session.turns == 1
    assert [m.content for m in store.load_messages(session.session_id, "user:ada")] == ["one", "Hello!"]
    assert conversations.undo("user:ada", session) == "one"
    assert conversations.list("user:ada") == []  # an emptied conversation is unlisted


@pytest.mark.parametrize("bad", [None, 42, "", "../x", "A" * 32, "0" * 31, {"id": "x"}])
def test_bad_conversation_ids_are_the_callers_mistake(conversations: Conversations, bad):
    with pytest.raises(InputError, match="not a valid conversation id"):
        conversations.resume("user:ada", bad)
    with pytest.raises(InputError, match="not a valid conversation id"):
        conversations.delete("user:ada", bad)
