"""The sidebar's model-status indicator: checked in the background (every 10 s), shown on load and on a timer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from harness.chat_process import ROOT, START_S
from harness.support import free_port, wait_until_ready
from tests.browser.chat_page import ChatPage
from tests.browser.conftest import GEMINI_LABEL

# The server re-checks every 10 s and the page re-reads every 10 s: a change shows within 20 s, plus slack.
STATUS_CHANGE_MS = 30_000


@pytest.fixture
def model_process() -> Iterator[tuple[subprocess.Popen, str]]:
    """The vLLM-shaped fake as its own process, so that stopping it closes every connection, as a crash does
    (in-process, its keep-alive connections would outlive the listening socket and keep answering)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.fakes.openai_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(process, f"{base_url}/models", START_S, "the fake model server")
    except (RuntimeError, TimeoutError):
        process.kill()
        process.wait()
        raise
    yield process, base_url
    if process.poll() is None:
        process.kill()
    process.wait()


def test_status_shows_the_self_hosted_model_reachable_then_unreachable(
    chat_server, fake_gemini, model_process, tmp_path, page: Page
):
    # `page` last: fixtures stop in reverse order, so the tab closes before the chat (an open tab holds the
    # chat's shutdown for uvicorn's connection timeout, chatapp.drain.CONNECTIONS_S).
    process, base_url = model_process
    chat = chat_server(
        **fake_gemini.vertex_env(tmp_path),
        SELF_HOSTED_URL=base_url,
        SELF_HOSTED_MODEL="fake-model",
        SELF_HOSTED_LABEL="Local model",
        GEMINI_LABEL=GEMINI_LABEL,
    )
    ui = ChatPage(page, chat.url).open()
    # Right at page load, with no timer tick yet: the server checked when it started.
    expect(ui.model_status).to_contain_text("🟢 Local model: ready")
    expect(ui.model_status).to_contain_text(f"🟢 {GEMINI_LABEL}")

    process.kill()  # the model server dies; its port is now dead
    process.wait()
    expect(ui.model_status).to_contain_text("💤 Local model: asleep (not reachable", timeout=STATUS_CHANGE_MS)
    expect(ui.model_status).to_contain_text(f"🟢 {GEMINI_LABEL}")
    ui.assert_server_up()
