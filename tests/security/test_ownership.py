"""Ownership attacks through a real chat process with two signed-in users (password mode).

Ada is the victim: she chats through `gradio_client`, so her Gradio session holds her open conversation. Bob,
signed in as himself, replays Ada's `session_hash` (it travels in URL query strings and lands in proxy logs)
on every API route and on the private UI events, called by `fn_index`, and names Ada's conversation id. Each
test then checks what matters: Ada's stored conversations are exactly what they were, and nothing Bob got back
contains her words. A refusal (403 from the server's session binding, or an error) and an answer about Bob's
own, separate data are both acceptable outcomes; acting on Ada's data is not.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import Result, call, chat, sqlite_path, stored_history
from tests.security.conftest import CONTROLS, USERS
from tests.security.wire import fn_index, join, sign_in


@dataclass
class Victim:
    client: Client
    secret: str  # a word only Ada's conversation contains
    conversation_id: str

    @property
    def session_hash(self) -> str:
        return self.client.session_hash


def owned_by(chat: ChatProcess, owner: str) -> dict[str, list[tuple[str, str]]]:
    """Every stored conversation of `owner` as id -> [(role, content)], after checking the file's integrity."""
    return {
        sid: [(role, content) for role, content, _, _ in rows]
        for sid, (who, rows) in stored_history(sqlite_path(chat)).items()
        if who == owner
    }


def leaks(result: Result, secret: str) -> bool:
    return secret in json.dumps(result.value, ensure_ascii=False, default=str)


def refused_or_bobs(result: Result) -> bool:
    """Bob's attempt was refused (HTTP status or error), or completed on his own data."""
    return result.kind in ("http", "error", "complete")


@pytest.fixture
def ada(password_chat: ChatProcess) -> Iterator[Victim]:
    client = Client(password_chat.url, auth=("ada", USERS["ada"]), verbose=False)
    secret = f"ada-secret-{uuid.uuid4().hex[:8]}"
    assert client.predict(f"Remember {secret}", *CONTROLS, api_name="/chat") == f"You said: Remember {secret}"
    listed = client.predict(api_name="/conversations")
    (conversation_id,) = [c["id"] for c in listed if c["title"] == f"Remember {secret}"]
    yield Victim(client, secret, conversation_id)
    client.close()


@pytest.fixture
def bob(password_chat: ChatProcess):
    return sign_in(password_chat.url, "bob", USERS["bob"])


def title_of(chat: ChatProcess, conversation_id: str) -> str:
    """The title a conversation is listed under, read from the file (a rename is its own column)."""
    conn = sqlite3.connect(f"file:{sqlite_path(chat)}?mode=ro", uri=True)
    try:
        (title,) = conn.execute(
            "SELECT COALESCE(custom_title, title) FROM sessions WHERE session_id = ?", (conversation_id,)
        ).fetchone()
    finally:
        conn.close()
    return title


def ada_conversation(chat: ChatProcess, victim: Victim) -> list[tuple[str, str]]:
    return owned_by(chat, "user:ada")[victim.conversation_id]


def test_replayed_session_hash_on_chat_reaches_nothing_of_the_victim(
    password_chat: ChatProcess, ada: Victim, bob, fake_model: FakeOpenAIServer
):
    before = owned_by(password_chat, "user:ada")
    result = chat(password_chat.url, "bob writes here", *CONTROLS, session_hash=ada.session_hash, http=bob)
    assert refused_or_bobs(result) and not leaks(result, ada.secret)
    assert owned_by(password_chat, "user:ada") == before  # nothing appended to Ada's conversation
    if result.kind == "complete":  # served as Bob's own, new conversation: the model saw none of Ada's words
        (sent,) = [b for b in fake_model.chat_requests() if b["messages"][-1]["content"] == "bob writes here"]
        assert [m["content"] for m in sent["messages"]] == ["bob writes here"]
        bobs = owned_by(password_chat, "user:bob")
        assert [("user", "bob writes here"), ("assistant", "You said: bob writes here")] in bobs.values()


def test_replayed_session_hash_on_resume_conversations_and_delete(password_chat: ChatProcess, ada: Victim, bob):
    before = owned_by(password_chat, "user:ada")
    url, hash_ = password_chat.url, ada.session_hash

    resumed = call(url, "resume", [ada.conversation_id], hash_, http=bob)
    assert resumed.kind in ("http", "error") and not leaks(resumed, ada.secret)

    listed = call(url, "conversations", [], hash_, http=bob)
    assert refused_or_bobs(listed) and not leaks(listed, ada.secret)
    if listed.kind == "complete":
        assert ada.conversation_id not in json.dumps(listed.value)

    deleted = call(url, "delete", [ada.conversation_id], hash_, http=bob)
    assert deleted.kind in ("http", "error")
    assert owned_by(password_chat, "user:ada") == before
    # And Ada's own client still has it all.
    again = ada.client.predict(ada.conversation_id, api_name="/resume")
    assert [m["content"] for m in again] == [f"Remember {ada.secret}", f"You said: Remember {ada.secret}"]


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("confirm_delete", [None, None, 1]),  # the sidebar's "Delete for good"
        ("undo", [None]),  # the Chatbot's undo
        ("retry", [None]),  # the Chatbot's retry (then the reply)
        ("respond", [None, *CONTROLS]),
        ("open", ["{conversation_id}", None, 1]),  # choosing a sidebar entry
        ("new_chat", [None, 1]),
        ("load", [{"session_id": "{conversation_id}"}]),  # a page load with Ada's id in browser storage
        ("accept", ["bob writes here", None, None, 1, 0]),
        ("rename_open", ["renamed by bob", None]),  # the sidebar's Rename
        ("search_sidebar", ["Remember", None]),  # the sidebar's search box
        ("export_open", ["json", None]),  # the sidebar's Download
    ],
)
def test_private_events_by_fn_index_with_a_replayed_session_hash(
    password_chat: ChatProcess, ada: Victim, bob, event: str, data: list[Any]
):
    before = owned_by(password_chat, "user:ada")
    data = json.loads(json.dumps(data).replace("{conversation_id}", ada.conversation_id))
    result = join(bob, password_chat.url, fn_index(bob, password_chat.url, event), data, ada.session_hash)
    assert refused_or_bobs(result)
    assert not leaks(result, ada.secret), f"{event} returned Ada's words to Bob: {result}"
    assert owned_by(password_chat, "user:ada") == before, f"{event} changed Ada's conversations"
    assert ada_conversation(password_chat, ada)[0] == ("user", f"Remember {ada.secret}")
    assert title_of(password_chat, ada.conversation_id) == f"Remember {ada.secret}"


def test_another_users_conversation_id_is_not_found_on_resume_or_delete(password_chat: ChatProcess, ada: Victim):
    before = owned_by(password_chat, "user:ada")
    bob = Client(password_chat.url, auth=("bob", USERS["bob"]), verbose=False)
    try:
        with pytest.raises(AppError, match="No such conversation"):
            bob.predict(ada.conversation_id, api_name="/resume")
        with pytest.raises(AppError, match="No such conversation"):
            bob.predict(ada.conversation_id, api_name="/delete")
        assert all(c["id"] != ada.conversation_id for c in bob.predict(api_name="/conversations"))
        # Bob's own /chat after the failed resume starts his own conversation: Ada's gets nothing.
        assert bob.predict("bob again", *CONTROLS, api_name="/chat") == "You said: bob again"
    finally:
        bob.close()
    assert owned_by(password_chat, "user:ada") == before


def test_the_owner_lists_resumes_and_deletes_her_own(password_chat: ChatProcess, ada: Victim):
    other = Client(password_chat.url, auth=("ada", USERS["ada"]), verbose=False)  # another device of Ada's
    try:
        assert other.predict("a second topic", *CONTROLS, api_name="/chat") == "You said: a second topic"
        listed = other.predict(api_name="/conversations")
        assert listed[0]["title"] == "a second topic"  # newest first
        assert {"id", "title", "updated_at", "turns"} == set(listed[0])
        assert ada.conversation_id in [c["id"] for c in listed] and listed[0]["turns"] == 1
        assert other.predict(listed[0]["id"], api_name="/delete") == {"deleted": listed[0]["id"]}
        assert listed[0]["id"] not in owned_by(password_chat, "user:ada")
        assert ada.conversation_id in owned_by(password_chat, "user:ada")
        with pytest.raises(AppError, match="not a valid conversation id"):
            other.predict("../../etc", api_name="/delete")
    finally:
        other.close()


def test_refusals_are_one_log_line_and_name_no_python_object(password_chat: ChatProcess, ada: Victim):
    bob = Client(password_chat.url, auth=("bob", USERS["bob"]), verbose=False)
    mistakes = [
        ((ada.conversation_id,), "/resume", "No such conversation"),
        (({"id": ada.conversation_id},), "/delete", "That is not a valid conversation id."),
        (("hi", "no such model", 0.7, 0.95, 256, ""), "/chat", 'Unknown model "no such model"'),
    ]
    try:
        for args, api, message in mistakes:
            with pytest.raises(AppError) as refused:
                bob.predict(*args, api_name=api)
            assert message in str(refused.value) and "object at 0x" not in str(refused.value)
    finally:
        bob.close()
    log = password_chat.log()
    assert "Traceback" not in log
    for _, api, message in mistakes:
        lines = [line for line in log.splitlines() if f"{api} refused" in line and message in line]
        assert lines, f"no log line for the refused {api}"


def test_private_open_with_another_users_id_in_your_own_session(password_chat: ChatProcess, ada: Victim, bob):
    """The sidebar's private `open` event, called by fn_index in Bob's own session with Ada's id."""
    before = owned_by(password_chat, "user:ada")
    index = fn_index(bob, password_chat.url, "open")
    result = join(bob, password_chat.url, index, [ada.conversation_id, None, 1], f"bob{uuid.uuid4().hex[:8]}")
    assert result.kind == "error" and "No such conversation" in str(result.value)
    assert "<class" not in str(result.value) and not leaks(result, ada.secret)
    assert owned_by(password_chat, "user:ada") == before


def test_rename_search_and_export_with_another_users_id_or_words(password_chat: ChatProcess, ada: Victim):
    """Bob, signed in as himself, names Ada's conversation id and searches for her words."""
    before = owned_by(password_chat, "user:ada")
    bob = Client(password_chat.url, auth=("bob", USERS["bob"]), verbose=False)
    try:
        with pytest.raises(AppError, match="No such conversation"):
            bob.predict(ada.conversation_id, "renamed by bob", api_name="/rename")
        for format in ("markdown", "json"):
            with pytest.raises(AppError, match="No such conversation") as refused:
                bob.predict(ada.conversation_id, format, api_name="/export")
            assert ada.secret not in str(refused.value)
        assert bob.predict(ada.secret, api_name="/search") == []
        assert bob.predict("Remember", api_name="/search") == []
    finally:
        bob.close()
    assert owned_by(password_chat, "user:ada") == before
    assert title_of(password_chat, ada.conversation_id) == f"Remember {ada.secret}"


def test_replayed_session_hash_on_rename_search_and_export(password_chat: ChatProcess, ada: Victim, bob):
    before = owned_by(password_chat, "user:ada")
    url, hash_ = password_chat.url, ada.session_hash
    for api, data in (
        ("rename", [ada.conversation_id, "renamed by bob"]),
        ("export", [ada.conversation_id, "json"]),
        ("search", [ada.secret]),
    ):
        result = call(url, api, data, hash_, http=bob)
        assert result.kind in ("http", "error") or result.value == [[]], f"/{api}: {result}"
        assert not leaks(result, ada.secret), f"/{api} returned Ada's words to Bob"
    assert owned_by(password_chat, "user:ada") == before
    assert title_of(password_chat, ada.conversation_id) == f"Remember {ada.secret}"


def test_the_owner_renames_searches_and_exports_her_own(password_chat: ChatProcess, ada: Victim):
    renamed = ada.client.predict(ada.conversation_id, "  Ada's\nnotes  ", api_name="/rename")
    assert (renamed["id"], renamed["title"], renamed["turns"]) == (ada.conversation_id, "Ada's notes", 1)
    (hit,) = ada.client.predict(ada.secret, api_name="/search")
    assert hit["id"] == ada.conversation_id and ada.secret in hit["excerpt"]  # the newest message that matched
    exported = ada.client.predict(ada.conversation_id, "json", api_name="/export")
    assert exported["mime_type"] == "application/json" and exported["filename"].startswith("ada-s-notes-")
    document = json.loads(exported["content"])
    assert document["title"] == "Ada's notes"
    assert [m["content"] for m in document["messages"]] == [
        f"Remember {ada.secret}",
        f"You said: Remember {ada.secret}",
    ]
    markdown = ada.client.predict(ada.conversation_id, "markdown", api_name="/export")
    assert (
        markdown["content"].startswith("# Ada's notes\n") and f"You said: Remember {ada.secret}" in markdown["content"]
    )
    with pytest.raises(AppError, match="Export as markdown or json"):
        ada.client.predict(ada.conversation_id, "pdf", api_name="/export")
    with pytest.raises(AppError, match="The title is empty"):
        ada.client.predict(ada.conversation_id, "   ", api_name="/rename")
    for args, api, message in (
        ((ada.conversation_id, {"title": "x"}), "/rename", "The title must be text, got dict."),
        ((["otters"],), "/search", "The search must be text, got list."),
        ((ada.conversation_id, 42), "/export", "Export as markdown or json, not 42."),
        (("../../etc/passwd", "json"), "/export", "That is not a valid conversation id."),
    ):
        with pytest.raises(AppError) as refused:
            ada.client.predict(*args, api_name=api)
        assert message in str(refused.value)
    assert "Traceback" not in password_chat.log()
    ada.client.predict(ada.conversation_id, f"Remember {ada.secret}", api_name="/rename")  # as it was
