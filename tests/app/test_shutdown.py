"""SIGTERM and SIGKILL while a reply streams, on a real chat process with a slow model (5 tokens/s): what a
rolling update, a scale-in or a lost node leaves in the history (chatapp.drain)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from chatapp.drain import CONNECTIONS_S, CUT_NOTE, REFUSED_NOTE
from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from tests.app.conftest import fakes_env
from tests.app.helpers import (
    Result,
    chat,
    client,
    conversation_of,
    new_session,
    sqlite_path,
    stored_history,
    wait_until,
)

BUDGET_S = 6.0  # CHAT_SHUTDOWN_BUDGET here: a 100-token reply at 5 tokens/s needs 20 s, an 8-token one 1.6 s


@pytest.fixture
def slow_chat(
    slow_model: FakeOpenAIServer,
    fake_gemini: tuple[FakeVertexServer, dict[str, str]],
    start_app: Callable[..., ChatProcess],
) -> ChatProcess:
    return start_app(fakes_env(slow_model, fake_gemini), CHAT_SHUTDOWN_BUDGET=str(BUDGET_S))


def in_background(fn: Callable[[], Result]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # the connection may go with the process: kept for the assert to show
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def streaming(model: FakeOpenAIServer, count: int = 1) -> Callable[[], bool]:
    return lambda: len(model.chat_requests()) >= count


def exited(chat: ChatProcess, timeout: float) -> float:
    """Wait for the process to end; how long it took."""
    started = time.monotonic()
    try:
        chat.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the chat still ran {timeout:g} s after SIGTERM:\n{chat.log()[-2000:]}") from None
    return time.monotonic() - started


def test_sigterm_mid_reply_saves_the_turn_cut_short_with_its_note(
    slow_chat: ChatProcess, slow_model: FakeOpenAIServer
) -> None:
    person = new_session()
    thread, result = in_background(lambda: chat(slow_chat.url, "Tell me a long story", session_hash=person))
    wait_until(streaming(slow_model), 30, "the reply to start")
    os.kill(slow_chat.process.pid, signal.SIGTERM)
    # Readiness fails at once, so the load balancer drains this replica while it still serves.
    ready = requests.get(f"{slow_chat.url}/readyz", params={"store": "false"}, timeout=5)
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
    # A new turn is refused (its message is kept, as any failed one), not started only to be cut.
    other = new_session()
    assert REFUSED_NOTE in chat(slow_chat.url, "hello?", session_hash=other).reply
    took = exited(slow_chat, BUDGET_S + 15)
    thread.join(10)
    rows = conversation_of(sqlite_path(slow_chat), person)
    assert [r[0] for r in rows] == ["user", "assistant"], rows
    assert rows[0][1] == "Tell me a long story"
    assert rows[1][1].startswith("tok1 tok2") and rows[1][1].endswith(f"*{CUT_NOTE}*"), rows[1][1]
    assert "tok100" not in rows[1][1]
    assert result and isinstance(result[0], Result) and CUT_NOTE in result[0].reply, result
    print(f"SIGTERM to exit: {took:.1f} s (budget {BUDGET_S:g} s + connections {CONNECTIONS_S:g} s)")


def test_sigterm_lets_a_reply_that_fits_the_budget_finish_whole(
    slow_chat: ChatProcess, slow_model: FakeOpenAIServer
) -> None:
    slow_model.reply = 8  # 1.6 s at 5 tokens/s, within the budget
    person = new_session()
    thread, result = in_background(lambda: chat(slow_chat.url, "A short one", session_hash=person))
    wait_until(streaming(slow_model), 30, "the reply to start")
    os.kill(slow_chat.process.pid, signal.SIGTERM)
    exited(slow_chat, BUDGET_S + 15)
    thread.join(10)
    rows = conversation_of(sqlite_path(slow_chat), person)
    assert rows[1][1].strip() == " ".join(f"tok{i}" for i in range(1, 9)), rows[1][1]
    assert result and isinstance(result[0], Result) and CUT_NOTE not in result[0].reply, result


def test_sigkill_mid_reply_leaves_no_half_turn(slow_chat: ChatProcess, slow_model: FakeOpenAIServer) -> None:
    slow_model.reply = 8
    person = new_session()
    assert chat(slow_chat.url, "First", session_hash=person).reply.startswith("tok1")
    slow_model.reply = 100
    in_background(lambda: chat(slow_chat.url, "Second", session_hash=person))
    wait_until(streaming(slow_model, 2), 30, "the second reply to start")
    slow_chat.process.kill()
    slow_chat.process.wait(10)
    # stored_history checks every session: contiguous messages, user/assistant pairs, turn counts that agree.
    rows = conversation_of(sqlite_path(slow_chat), person)
    assert [r[1] for r in rows][:1] == ["First"] and len(rows) == 2, rows
    assert len(stored_history(sqlite_path(slow_chat))) == 1


def test_an_idle_open_page_does_not_hold_shutdown(slow_chat: ChatProcess) -> None:
    page = new_session()
    http = client(page)
    assert http.get(slow_chat.url, timeout=30).status_code == 200  # the page, and its browser cookie
    # An open page keeps Gradio's heartbeat stream open for as long as it is open.
    heartbeat = http.get(f"{slow_chat.url}/gradio_api/heartbeat/{page}", stream=True, timeout=30)
    assert heartbeat.status_code == 200
    try:
        os.kill(slow_chat.process.pid, signal.SIGTERM)
        took = exited(slow_chat, 30)
    finally:
        heartbeat.close()
    # No reply in flight: only uvicorn's connection timeout (CONNECTIONS_S) may pass, not the old 15 s.
    assert took < CONNECTIONS_S + 5, f"an idle page held shutdown for {took:.1f} s"
