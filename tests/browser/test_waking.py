"""A sleeping self-hosted server in the browser (scale to zero): the status list says asleep, then waking up; a
message to it directly says it is waking and offers Gemini, and the offer works (choose Gemini, Retry); Auto
answers with Gemini at once and says why."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from harness.support import free_port
from tests.app.helpers import sqlite_path, stored_history
from tests.browser.chat_page import ChatPage
from tests.browser.conftest import GEMINI_LABEL

AUTO_LABEL = "Auto (test)"
SELF_HOSTED = "Gemma (asleep)"
# The page re-reads the status list every 10 s.
STATUS_CHANGE_MS = 30_000


def test_asleep_then_waking_with_gemini_offered_and_answering_meanwhile(chat_server, fake_gemini, tmp_path, page: Page):
    # `page` last: fixtures stop in reverse order, so the tab closes before the chat.
    chat = chat_server(
        **fake_gemini.vertex_env(tmp_path),
        SELF_HOSTED_URL=f"http://127.0.0.1:{free_port()}/v1",  # at zero replicas: nothing listens
        SELF_HOSTED_LABEL=SELF_HOSTED,
        GEMINI_LABEL=GEMINI_LABEL,
        AUTO_LABEL=AUTO_LABEL,
    )
    ui = ChatPage(page, chat.url).open()
    expect(ui.model_status).to_contain_text(f"💤 {SELF_HOSTED}: asleep (not reachable (connection refused))")

    ui.choose_model(SELF_HOSTED)
    ui.send("Are you awake?")
    expect(ui.last_bot).to_contain_text(f"⚠️ {SELF_HOSTED} is waking up (asked 0 s ago; usually ready in about 12 min")
    expect(ui.last_bot).to_contain_text(f"{GEMINI_LABEL} can answer meanwhile: choose {GEMINI_LABEL} (or Auto)")
    ui.wait_idle()
    expect(ui.model_status).to_contain_text(f"⏳ {SELF_HOSTED}: waking up (asked ", timeout=STATUS_CHANGE_MS)

    ui.choose_model(GEMINI_LABEL)  # taking the offer
    ui.retry()
    expect(ui.last_bot).to_have_text("You said: Are you awake? (1 messages in context)")
    ui.wait_idle()

    ui.choose_model(AUTO_LABEL)
    ui.send_and_wait("And now?", "You said: And now? (3 messages in context)")
    expect(page.locator("#answered-by")).to_contain_text(
        f"Answered by {GEMINI_LABEL} because {SELF_HOSTED} is waking up (asked "
    )

    ((_, rows),) = stored_history(sqlite_path(chat)).values()
    assert [(role, model) for role, _, model, _ in rows] == [
        ("user", None),
        ("assistant", GEMINI_LABEL),
        ("user", None),
        ("assistant", GEMINI_LABEL),
    ]
