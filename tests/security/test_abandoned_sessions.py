"""Abandoned Gradio sessions (issue 15 row 9): an attacker opens many sessions with long messages and walks
away. Gradio keeps up to 10,000 sessions' state; the chat's per-tab state must expire on its own.

The chat runs in this process (its Gradio session table is inspected directly) with the tab lifetime shortened
to one second; Gradio sweeps expired state every second.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import uvicorn
from starlette.routing import Mount

from harness.fakes.openai_server import FakeOpenAIServer
from harness.support import free_port
from tests.app.helpers import call, chat, wait_until
from tests.security.wire import fn_index, join

LABEL = "Fake model"
SESSIONS = 12
LONG_MESSAGE = "lorem ipsum " * 2_000  # ~24 KB each, kept in the tab's conversation


@pytest.fixture
def chat_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    from chatapp import ui
    from chatapp.server import create_app
    from chatapp.settings import load_settings

    monkeypatch.setattr(ui, "TAB_TTL_S", 1, raising=False)
    with FakeOpenAIServer(tokens_per_s=1000.0) as fake:
        port = free_port()
        settings = load_settings(
            {
                "CHAT_HOST": "127.0.0.1",
                "CHAT_PORT": str(port),
                "CHAT_SQLITE_PATH": str(tmp_path / "history.sqlite3"),
                "SELF_HOSTED_URL": fake.base_url,
                "SELF_HOSTED_MODEL": fake.model,
                "SELF_HOSTED_LABEL": LABEL,
            }
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: server.started, 60, "the chat to start")
        gradio_app = next(r.app for r in app.routes if isinstance(r, Mount))
        yield url, gradio_app
        server.should_exit = True
        thread.join(20)


def tabs_held(gradio_app: object) -> int:
    """How many Gradio sessions still hold a tab's state (its open conversation)."""
    from chatapp.ui import Tab

    sessions = list(gradio_app.state_holder.session_data.values())  # type: ignore[attr-defined]
    return sum(any(isinstance(v, Tab) for v in list(s.state_data.values())) for s in sessions)


def test_abandoned_sessions_release_their_conversations(chat_in_process):
    url, gradio_app = chat_in_process
    started = time.monotonic()
    for _ in range(SESSIONS):  # each a new client that never comes back
        session = uuid.uuid4().hex[:12]
        assert chat(url, LONG_MESSAGE[:20_000], LABEL, session_hash=session).reply.startswith("You said: lorem")
    held = tabs_held(gradio_app)
    sent_in = time.monotonic() - started
    # Some may already have expired while the others were sent (one second each); most are held now.
    assert held >= 1 or sent_in > 2
    wait_until(lambda: tabs_held(gradio_app) == 0, 30, "abandoned sessions to release their per-tab state")
    # A client that comes back after its state expired still gets its conversations.
    assert len(call(url, "conversations", [], session_hash=session).value[0]) == 1


def test_a_tab_that_comes_back_after_its_state_expired_goes_on_in_its_conversation(chat_in_process):
    url, gradio_app = chat_in_process
    http = requests.Session()
    tab = f"tab{uuid.uuid4().hex[:12]}"
    events = {name: fn_index(http, url, name) for name in ("load", "accept", "respond")}
    opened = join(http, url, events["load"], [{"session_id": None}], tab)
    assert opened.kind == "complete", opened
    conversation = opened.value[1]["session_id"]  # what the page keeps in its browser storage

    def send(text: str, number: int) -> None:
        data = [{"text": text, "files": []}, None, {"session_id": conversation}, number, 0]
        assert join(http, url, events["accept"], data, tab).kind == "complete"
        assert join(http, url, events["respond"], [None, LABEL, 0.7, 0.95, 64, "", None], tab).kind == "complete"

    send("first question", 1)
    wait_until(lambda: tabs_held(gradio_app) == 0, 30, "the tab's state to expire")
    send("second question", 2)
    listed = call(url, "conversations", [], http=http).value[0]
    assert [(c["id"], c["turns"]) for c in listed] == [(conversation, 2)]
