"""An API client that hangs up mid-reply and calls again in its session (a `/call` client retrying, a
`gradio_client` whose connection dropped) gets its next reply in full and an event stream that ends, and goes
on in the same conversation with the stored partial reply as context.

Gradio marks the abandoned event dead but kept its id among the session's pending events, and a session's stream
ends only once none is pending: the next stream delivered its reply and then stayed open with heartbeats for good
(`chatapp.gradio_compat.forget_abandoned_events`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import (
    DEFAULTS,
    client,
    conversation_of,
    new_session,
    owner_of,
    sqlite_path,
    stored_history,
    wait_until,
)

STORY = "Tell me a long story"
NEXT = "And then?"
ENDS_WITHIN_S = 30.0  # the stream ends right after its reply; Gradio's heartbeats keep an unended one open forever


def start(url: str, session_hash: str, message: str) -> str:
    body = {"data": [message, *DEFAULTS], "session_hash": session_hash}
    started = client(session_hash).post(f"{url}/gradio_api/call/chat", json=body, timeout=30)
    assert started.status_code == 200, started.text
    return started.json()["event_id"]


def events_of(url: str, session_hash: str, event_id: str) -> Iterator[tuple[str, Any]]:
    """The (event, data) pairs of a `/chat` call's event stream, as they arrive; closing this generator hangs up."""
    with client(session_hash).get(f"{url}/gradio_api/call/chat/{event_id}", stream=True, timeout=60) as stream:
        event = ""
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                yield event, json.loads(line[5:])


def leave_after_the_first_text(url: str, session_hash: str) -> None:
    """Start a `/chat` reply, read its event stream until the first text arrives, then hang up."""
    with contextlib.closing(events_of(url, session_hash, start(url, session_hash, STORY))) as stream:
        next(data for event, data in stream if event == "generating" and data[0])


def read_to_the_end(url: str, session_hash: str, message: str) -> tuple[list[tuple[str, Any]], bool]:
    """Send `message` and read its whole event stream: the (event, data) pairs, and whether the stream ended
    within ENDS_WITHIN_S (read in a thread: a stream kept open by heartbeats never ends by itself)."""
    event_id = start(url, session_hash, message)
    events: list[tuple[str, Any]] = []
    reader = threading.Thread(target=lambda: events.extend(events_of(url, session_hash, event_id)), daemon=True)
    reader.start()
    reader.join(ENDS_WITHIN_S)
    return events, not reader.is_alive()


def test_a_client_that_left_mid_reply_calls_again_and_its_stream_ends(
    start_app, app_env: dict[str, str], fake_model: FakeOpenAIServer
) -> None:
    app: ChatProcess = start_app(app_env)
    session = new_session()
    fake_model.tokens_per_s, fake_model.reply = 10.0, 200  # 20 s if nobody left
    try:
        leave_after_the_first_text(app.url, session)
        path = sqlite_path(app)

        def stored_partial() -> bool:
            return any(owner == owner_of(session) for owner, _ in stored_history(path).values())

        wait_until(stored_partial, 30, "the partial reply to be stored once the client left")
    finally:
        fake_model.tokens_per_s, fake_model.reply = 400.0, None

    events, ended = read_to_the_end(app.url, session, NEXT)
    answer = f"You said: {NEXT}"
    complete = [data for event, data in events if event == "complete"]
    assert len(complete) == 1 and complete[0][0] == answer, f"the second call's stream: {events}"
    assert ended, f"the stream of the second call was still open {ENDS_WITHIN_S:g} s after its reply: {events}"
    texts = [data[0] for event, data in events if event == "generating" and data and data[0]]
    assert all(answer.startswith(text) for text in texts), f"the left reply's updates reached the new call: {texts}"

    sent = fake_model.chat_requests()[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [STORY, NEXT], (
        "the next call did not go on in the conversation the client left"
    )
    stored = conversation_of(path, session)
    assert [row[1] for row in stored[::2]] == [STORY, NEXT]
    assert stored[1][1] and stored[3][1] == answer, "the partial reply and the new one are stored"
