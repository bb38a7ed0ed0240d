"""A `/call/chat` request (Gradio's REST form) leaves nothing of Gradio's behind once its reply is read: no
session, no message queue, no pending-id entry; while a session a client names itself (`gradio_client`, the
page) keeps its state, and its conversation, across calls, and keeps its message queue however many calls
come and go while its reply runs.

Gradio makes a session for each `/call` request, keyed by the event's own id, and kept it until 10,000 newer
sessions pushed it out: ~25 KB each (a copy of the app's component and event tables, and the call's
conversation), and every full garbage collection walked them all (README "Performance"). Its message queue sat in a
table that drops the oldest entry for each new one, so enough calls during a page's reply pushed the page's queue
out and the reply ended in an error. The chat runs in this process, on a real SQLite store and a fake model
server, so the test can read Gradio's own tables.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import requests

from harness.support import poll
from tests.app.helpers import wait_until
from tests.security.conftest import CONTROLS
from tests.security.wire import fn_index, join

CALLS = 5


def start_call(http: requests.Session, url: str, message: str) -> str:
    """`POST /call/chat`: the event id."""
    body = {"data": [message, *CONTROLS, None]}
    return http.post(f"{url}/gradio_api/call/chat", json=body, timeout=30).json()["event_id"]


def read_call(http: requests.Session, url: str, event_id: str) -> str:
    """The call's event stream read to its end: the reply, and nothing after it but the stream's end."""
    events, reply = [], None
    with http.get(f"{url}/gradio_api/call/chat/{event_id}", stream=True, timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                events.append(line[6:].strip())
            elif line.startswith("data:") and events[-1:] == ["complete"]:
                reply = json.loads(line[5:])[0]
    assert reply is not None, f"/call/chat did not complete: {events}"
    assert events[-1] == "complete", f"/call/chat went on after its answer: {events}"
    return reply


def call_chat(http: requests.Session, url: str, message: str) -> tuple[str, str]:
    """One `/call/chat` request read to its end: (its event id, the reply)."""
    event_id = start_call(http, url, message)
    return event_id, read_call(http, url, event_id)


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


def said(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def test_calls_during_a_reply_leave_the_named_session_its_queue(chat_in_process, fake_model):
    url, gradio_app = chat_in_process
    queue = gradio_app.get_blocks()._queue
    # Gradio's table keeps 2,000 queues; 20 shows the same with fewer calls (the calls below are 30).
    queue.pending_messages_per_session.max_size = 20
    release = threading.Event()

    def reply(body: dict[str, Any]) -> str:
        if said(body) == "a long one":
            release.wait(60)  # the page's reply is running while the calls come and go
        return f"You said: {said(body)}"

    fake_model.reply = reply
    page, session_hash = requests.Session(), f"page{uuid.uuid4().hex[:12]}"
    index = fn_index(page, url, "chat")
    answered: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answered.append(join(page, url, index, ["a long one", *CONTROLS, None], session_hash, 90))
    )
    waiting.start()
    try:
        wait_until(lambda: any(said(b) == "a long one" for b in fake_model.chat_requests()), 30, "the page's reply")
        http = requests.Session()
        calls = [call_chat(http, url, f"call {n}")[0] for n in range(30)]
    finally:
        release.set()
        waiting.join(90)
    assert answered, "the page's event stream did not end"
    assert answered[0].kind == "complete", f"the page's reply failed while calls came and went: {answered[0]}"
    assert answered[0].value[0] == "You said: a long one"

    # A client that reads its answer only after its event ended (and another call's) still gets it.
    late = start_call(http, url, "read late")
    wait_until(lambda: late not in gradio_app.state_holder.session_data, 30, "the call's event to end")
    call_chat(http, url, "in between")
    assert read_call(http, url, late) == "You said: read late"

    # What the calls left: nothing once their answers were read (the last ones go as later events end).
    call_chat(http, url, "one more")
    tables = (queue.pending_event_ids_session, queue.pending_messages_per_session)

    def left() -> list[str]:
        return [e for e in [*calls, late] if any(e in table for table in tables)]

    poll(lambda: not left(), 10)  # "one more"'s event ends a moment after its answer is read
    assert not left(), f"{len(left())} of 31 read calls left their queue or pending-id entry behind"
