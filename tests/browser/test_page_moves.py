"""A page open in Chromium whose events reach another replica (issue 21, finding 3): two chat processes on one
Firestore emulator behind the switchable proxy (harness.replicas). Send goes on in the conversation on screen,
with a toast saying it was reloaded, and Retry answers its last message again instead of emptying the screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chatapp.open_conversation import RECOVERED
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from harness.firestore_emulator import FirestoreEmulator
from harness.replicas import Replicas, start_replicas
from tests.browser.chat_page import ChatPage
from tests.browser.conftest import GEMINI_LABEL, SELF_HOSTED_LABEL


@pytest.fixture
def replicas(
    fake_model: FakeOpenAIServer, fake_gemini: FakeVertexServer, firestore_emulator: FirestoreEmulator, tmp_path: Path
) -> Iterator[Replicas]:
    env = {
        **fake_gemini.vertex_env(tmp_path),
        "GEMINI_LABEL": GEMINI_LABEL,
        "SELF_HOSTED_URL": fake_model.base_url,
        "SELF_HOSTED_MODEL": fake_model.model,
        "SELF_HOSTED_LABEL": SELF_HOSTED_LABEL,
    }
    started = start_replicas(env, tmp_path, firestore_emulator.host, count=3)
    yield started
    started.stop(grace_s=3)
    firestore_emulator.reset(started.database)


def test_a_page_moved_to_another_replica_acts_on_the_conversation_it_shows(
    page: Page, replicas: Replicas, fake_model: FakeOpenAIServer
) -> None:
    ui = ChatPage(page, replicas.proxy.url).open()
    ui.send_and_wait("Remember the red kite", "You said: Remember the red kite")
    expect(ui.sidebar_entries).to_have_count(1)
    # The cut below breaks the page's heartbeat too. Gradio's page then asks `/app_id` and reloads itself when
    # the answer differs from the id it loaded with, and each replica picks its own at random: a reload ~2 s
    # later would race the Send (on a busy CI run it came first, and took the typed message with it). The
    # page is held to its first id, as replicas sharing one would answer: it reconnects and goes on without a
    # reload, which is this test's case (a reload is the other way a moved page recovers).
    first_id = page.request.get(f"{replicas.proxy.url}/gradio_api/app_id").json()["app_id"]
    page.route("**/gradio_api/app_id*", lambda route: route.fulfill(json={"app_id": first_id}))

    replicas.route_to(1, cut=True)  # the load balancer moved this page (failover, a rolling update)
    ui.send_and_wait("And the blue heron", "You said: And the blue heron")
    expect(ui.toasts.filter(has_text=RECOVERED)).to_have_count(1)
    expect(ui.sidebar_entries).to_have_count(1)  # the same conversation, not a new one
    prompt = [m["content"] for m in fake_model.chat_requests()[-1]["messages"]]
    assert "Remember the red kite" in prompt, prompt  # with its context

    replicas.route_to(2, cut=True)  # and on to a third, which never saw this page either
    ui.retry()
    expect(ui.user_messages).to_have_text(["Remember the red kite", "And the blue heron"])
    ui.wait_idle()
    expect(ui.bot_messages).to_have_text(["You said: Remember the red kite", "You said: And the blue heron"])
    expect(ui.sidebar_entries).to_have_count(1)
