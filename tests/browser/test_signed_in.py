"""Signed in with a password: the page shows who is signed in and lists that person's conversations only,
through chat, reload, undo and delete, never another user's nor those an anonymous browser left in the same
store; the Chatbot's clear icon starts a new conversation; "Sign out" signs out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from chatapp.history.base import Turn
from chatapp.history.sqlite import SqliteStore
from harness.chat_process import ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer
from tests.browser.chat_page import ChatPage
from tests.browser.conftest import SELF_HOSTED_LABEL
from tests.fixtures.chromium import LOADED_MS

PASSWORD = "ada-correct-horse"
OTHERS = {"browser:0f1e2d3c4b5a69788796a5b4c3d2e1f0": "An anonymous note", "user:bob": "Bob's plan"}


@pytest.fixture(scope="module")
def signed_in_chat(tmp_path_factory: pytest.TempPathFactory, _fake_model: FakeOpenAIServer) -> Iterator[ChatProcess]:
    """A chat with sign-in whose store already holds an anonymous browser's and Bob's conversations."""
    tmp = tmp_path_factory.mktemp("signed-in")
    store = SqliteStore(tmp / "history.sqlite3")
    for number, (owner, text) in enumerate(OTHERS.items()):
        now = datetime.now(UTC)
        store.save_turn(Turn(f"{number:032x}", owner, 0, text, f"You said: {text}", SELF_HOSTED_LABEL, now))
    store.close()
    chat = start_chat(
        {
            "CHAT_AUTH": "password",
            "CHAT_AUTH_USERS": f"ada:{PASSWORD},bob:bob-battery-staple",
            "SELF_HOSTED_URL": _fake_model.base_url,
            "SELF_HOSTED_MODEL": _fake_model.model,
            "SELF_HOSTED_LABEL": SELF_HOSTED_LABEL,
        },
        tmp,
    )
    yield chat
    chat.stop(grace_s=3)


@pytest.fixture
def ada_page(browser: Browser, signed_in_chat: ChatProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(LOADED_MS)
    yield context.new_page()
    context.close()


def others_untouched(chat: ChatProcess) -> None:
    store = SqliteStore(Path(chat.env["CHAT_SQLITE_PATH"]))
    try:
        for owner, text in OTHERS.items():
            (summary,) = store.list_sessions(owner)
            assert summary.title == text and summary.turns == 1
    finally:
        store.close()


def test_sign_in_chat_reload_undo_delete_sees_only_your_own(
    ada_page: Page, signed_in_chat: ChatProcess, fake_model: FakeOpenAIServer
):
    page = ada_page
    page.goto(signed_in_chat.url)
    page.get_by_label("username").fill("ada")
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    ui = ChatPage(page, signed_in_chat.url).wait_ready()
    expect(page.locator("#signed-in")).to_contain_text("Signed in as ada")
    expect(page.locator("#signed-in a")).to_have_attribute("href", "/logout")
    expect(ui.sidebar_entries).to_have_count(0)  # neither Bob's nor the anonymous browser's

    ui.send_and_wait("Ada's first topic", "You said: Ada's first topic")
    ui.new_chat()
    ui.send_and_wait("Ada's second topic", "You said: Ada's second topic")
    ui.reload()
    expect(ui.sidebar_entries).to_have_count(2)
    expect(ui.sidebar_entries.first).to_contain_text("Ada's second topic")
    expect(ui.user_messages).to_have_text(["Ada's second topic"])

    ui.undo()  # its only turn: the conversation goes from the store and the list
    expect(ui.user_messages).to_have_count(0)
    expect(ui.sidebar_entry("Ada's second topic")).to_have_count(0)
    ui.wait_idle()

    ui.resume("Ada's first topic")
    expect(ui.user_messages).to_have_text(["Ada's first topic"])
    ui.wait_idle()
    ui.ask_delete()  # asks first: "Keep it" keeps it
    ui.keep()
    expect(ui.sidebar_entry("Ada's first topic")).to_have_count(1)
    ui.delete()
    expect(ui.sidebar_entries).to_have_count(0)
    expect(ui.user_messages).to_have_count(0)
    ui.wait_idle()

    ui.reload()
    expect(ui.sidebar_entries).to_have_count(0)
    others_untouched(signed_in_chat)


def test_the_clear_icon_starts_a_new_conversation(
    ada_page: Page, signed_in_chat: ChatProcess, fake_model: FakeOpenAIServer
):
    page = ada_page
    answer = page.context.request.post(f"{signed_in_chat.url}/login", form={"username": "ada", "password": PASSWORD})
    assert answer.ok
    ui = ChatPage(page, signed_in_chat.url).open()
    ui.send_and_wait("Something to forget", "You said: Something to forget")
    page.locator("#chatbot button[aria-label='Clear']").click()
    expect(ui.user_messages).to_have_count(0)
    ui.send_and_wait("A fresh start", "You said: A fresh start")
    # The model saw only the new conversation, and both are listed as separate conversations.
    assert [m["content"] for m in fake_model.chat_requests()[-1]["messages"]] == ["A fresh start"]
    expect(ui.sidebar_entry("Something to forget")).to_have_count(1)
    expect(ui.sidebar_entry("A fresh start")).to_have_count(1)

    page.locator("#signed-in a", has_text="Sign out").click()
    expect(page.get_by_label("password")).to_be_visible()
    assert page.context.request.get(f"{signed_in_chat.url}/config").status == 401
