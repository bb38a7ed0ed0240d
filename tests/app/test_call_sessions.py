"""A `/call/chat` request (Gradio's REST form) leaves no Gradio session behind once its reply is done, while a
session a client names itself (`gradio_client`, the page) keeps its state, and its conversation, across calls.

Gradio makes a session for each `/call` request, keyed by the event's own id, and kept it until 10,000 newer
sessions pushed it out: ~25 KB each (a copy of the app's component and event tables, and the call's
conversation), and every full garbage collection walked them all (README "Performance"). The chat runs in this
process, on a real SQLite store and a fake model server, so the test can read Gradio's own session table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import chat_in_this_process, wait_until
from tests.security.conftest import CONTROLS, LABEL
from tests.security.wire import fn_index, join

CALLS = 5


@pytest.fixture
def chat_in_process(tmp_path: Path, fake_model: FakeOpenAIServer) -> Iterator[tuple[str, Any]]:
    with chat_in_this_process(tmp_path, fake_model, LABEL) as served:
        yield served


def call_chat(http: requests.Session, url: str, message: str) -> tuple[str, str]:
    """One `/call/chat` request read to its end: (its event id, the reply)."""
    body = {"data": [message, *CONTROLS, None]}
    event_id = http.post(f"{url}/gradio_api/call/chat", json=body, timeout=30).json()["event_id"]
    event, reply = "", None
    with http.get(f"{url}/gradio_api/call/chat/{event_id}", stream=True, timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "complete":
                reply = json.loads(line[5:])[0]
    assert reply is not None, f"/call/chat did not complete (last event {event!r})"
    return event_id, reply


def test_a_call_leaves_no_session_and_a_named_session_keeps_its_conversation(chat_in_process, fake_model):
    url, gradio_app = chat_in_process
    sessions = gradio_app.state_holder.session_data
    http = requests.Session()  # one browser id for every call (CHAT_AUTH=none: the cookie is the caller)
    before = set(sessions)
    for n in range(CALLS):
        event_id, reply = call_chat(http, url, f"hello {n}")
        assert reply == f"You said: hello {n}"
        wait_until(lambda e=event_id: e not in sessions, 10, "the call's session to go")
    assert set(sessions) <= before, "a /call request left its Gradio session behind"

    # A session the client named (gradio_client's queue/join): its state, and the conversation, go on.
    session_hash = f"client{uuid.uuid4().hex[:12]}"
    index = fn_index(http, url, "chat")
    for message in ("first", "second"):
        result = join(http, url, index, [message, *CONTROLS, None], session_hash)
        assert result.kind == "complete", result
        # Gradio ends an event's task after its answer is sent: wait for that end, where a session would go.
        wait_until(lambda: not gradio_app.get_blocks()._queue._asyncio_tasks, 10, "the event to end")
    assert session_hash in sessions, "a client's own session was dropped"
    asked = fake_model.chat_requests()[-1]["messages"]
    assert [m["content"] for m in asked if m["role"] == "user"] == ["first", "second"], "the conversation broke"
