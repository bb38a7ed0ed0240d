""" "Auto" in the browser: with the self-hosted server down it answers through Gemini and the page says so;
the person's token usage today is on the page and grows with the reply."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from harness.support import free_port
from tests.app.helpers import sqlite_path, stored_history
from tests.browser.chat_page import ChatPage
from tests.browser.conftest import GEMINI_LABEL

AUTO_LABEL = "Auto (test)"
SELF_HOSTED = "Gemma (down)"


def test_auto_answers_through_gemini_while_the_self_hosted_server_is_down(
    chat_server, fake_gemini, tmp_path, page: Page
):
    # `page` last: fixtures stop in reverse order, so the tab closes before the chat.
    chat = chat_server(
        **fake_gemini.vertex_env(tmp_path),
        SELF_HOSTED_URL=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        SELF_HOSTED_LABEL=SELF_HOSTED,
        GEMINI_LABEL=GEMINI_LABEL,
        AUTO_LABEL=AUTO_LABEL,
    )
    ui = ChatPage(page, chat.url).open()
    # First in the menu, so chosen by default.
    expect(page.locator("#model input")).to_have_value(AUTO_LABEL)
    expect(page.locator("#usage-today")).to_contain_text("Tokens today: 0")

    ui.send_and_wait("Hello there", "You said: Hello there (1 messages in context)")

    answered = page.locator("#answered-by")
    expect(answered).to_contain_text(f"Answered by {GEMINI_LABEL}")
    expect(answered).to_contain_text(f"{SELF_HOSTED} is waking up (asked 0 s ago;")
    # The fake's usage: the prompt's JSON length / 4 in, 7 words out; the exact count is the stores' business.
    expect(page.locator("#usage-today")).to_have_text(re.compile(r"Tokens today: [1-9]\d*"))

    # The stored reply records the model that actually answered, and what it cost.
    ((_, rows),) = stored_history(sqlite_path(chat)).values()
    assert [(role, model) for role, _, model, _ in rows] == [("user", None), ("assistant", GEMINI_LABEL)]
    page.screenshot(path=str(tmp_path / "auto.png"))
