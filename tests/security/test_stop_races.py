"""Stop races (issue 15 row 10), spoken as the page speaks Gradio's protocol: a Stop that reaches the server
before the message it stops, a Stop on an idle page, and two Stops at once mid-stream.

The page numbers each message it sends and Stop carries the latest number (chatapp/ui.py, SEND_JS/STOP_JS); these
tests send those numbers themselves. Each checks what is stored afterwards: every message once, none glued to
the next, the stopped reply a prefix of what the model was sending.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import Result, chat_in_this_process, sqlite_path, stored_history, wait_until
from tests.security.conftest import CONTROLS, LABEL, USERS
from tests.security.wire import fn_index, join, sign_in

CANCELS = 10
LONG = 200  # tokens of the slow reply: "tok1 tok2 … tok200"


def predict(http: requests.Session, url: str, index: int, data: list[Any], session_hash: str) -> requests.Response:
    """An unqueued event (the page's Stop) as the browser sends it."""
    body = {"data": data, "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    return http.post(f"{url}/gradio_api/run/predict", json=body, timeout=30)


class Tab:
    """One browser tab of Ada's: its session, its message numbers, and the page's private events."""

    def __init__(self, chat: ChatProcess) -> None:
        self.url = chat.url
        self.http = sign_in(chat.url, "ada", USERS["ada"])
        self.session_hash = f"tab{uuid.uuid4().hex[:12]}"
        self.events = {name: fn_index(self.http, chat.url, name) for name in ("load", "accept", "respond", "stop")}
        self.sent = 0
        opened = join(self.http, self.url, self.events["load"], [{"session_id": None}], self.session_hash)
        assert opened.kind == "complete", opened

    def accept(self, text: str) -> Result:
        self.sent += 1
        data = [{"text": text, "files": []}, None, {"session_id": None}, self.sent, 0]
        return join(self.http, self.url, self.events["accept"], data, self.session_hash)

    def respond(self) -> Result:
        return join(
            self.http, self.url, self.events["respond"], [None, *CONTROLS, None], self.session_hash, timeout=60
        )  # None: the thinking control

    def stop(self, number: int | None = None) -> requests.Response:
        sequence = self.sent if number is None else number
        return predict(self.http, self.url, self.events["stop"], [None, sequence], self.session_hash)


def stored_turns(chat: ChatProcess) -> list[list[tuple[str, str]]]:
    return [
        [(role, content) for role, content, _, _ in rows]
        for owner, rows in stored_history(sqlite_path(chat)).values()
        if owner == "user:ada"
    ]


@pytest.fixture
def slow_model(fake_model: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    fake_model.tokens_per_s, fake_model.reply, fake_model.disconnects = 20.0, LONG, 0
    yield fake_model
    fake_model.tokens_per_s, fake_model.reply = 1000.0, None


def test_a_stop_that_arrives_before_its_message_still_stops_it(password_chat: ChatProcess, slow_model):
    tab = Tab(password_chat)
    asked = len(slow_model.chat_requests())
    # The page sent message 1 and then Stop; the Stop is handled first (it is not queued, the message is).
    assert tab.stop(number=1).status_code == 200
    assert tab.accept("Tell me a long story").kind == "complete"
    stopped = tab.respond()
    assert stopped.kind == "complete", stopped
    assert (stopped.value[3] or {}).get("text") == "Tell me a long story", "the message is not back in the box"
    assert len(slow_model.chat_requests()) == asked, "a stopped message reached the model"
    assert [c for c in stored_turns(password_chat) if ("user", "Tell me a long story") in c] == []

    slow_model.reply = None  # echo, quickly
    slow_model.tokens_per_s = 1000.0
    assert tab.accept("Second").kind == "complete"
    assert tab.respond().kind == "complete"
    # Answered on its own: not glued to the stopped message, and stored once.
    assert slow_model.chat_requests()[-1]["messages"][-1]["content"] == "Second"
    assert [c for c in stored_turns(password_chat) if c[0][1].endswith("Second")] == [
        [("user", "Second"), ("assistant", "You said: Second")]
    ]


def test_a_stop_on_an_idle_page_does_not_stop_the_next_message(password_chat: ChatProcess, fake_model):
    tab = Tab(password_chat)
    assert tab.stop().status_code == 200  # nothing sent yet: number 0
    assert tab.accept("Are you there").kind == "complete"
    assert tab.respond().kind == "complete"
    conversation = [c for c in stored_turns(password_chat) if c[0] == ("user", "Are you there")]
    assert conversation == [[("user", "Are you there"), ("assistant", "You said: Are you there")]]


def test_two_stops_at_once_mid_stream_are_harmless_and_store_the_partial_reply_once(
    password_chat: ChatProcess, slow_model
):
    tab = Tab(password_chat)
    asked = len(slow_model.chat_requests())
    assert tab.accept("Tell me a longer story").kind == "complete"
    result: list[Result] = []
    replying = threading.Thread(target=lambda: result.append(tab.respond()))
    replying.start()
    wait_until(lambda: len(slow_model.chat_requests()) > asked, 30, "the reply to reach the model")

    answers: list[int] = []
    stops = [threading.Thread(target=lambda: answers.append(tab.stop().status_code)) for _ in range(2)]
    for stop in stops:
        stop.start()
    for stop in stops:
        stop.join(30)
    replying.join(60)
    assert answers == [200, 200]
    assert result and result[0].kind == "complete", result  # no error reached the page
    assert slow_model.wait_for_disconnect(10.0), "the model request was not closed"

    (conversation,) = [c for c in stored_turns(password_chat) if c[0] == ("user", "Tell me a longer story")]
    (_, (_, partial)) = conversation
    full = "".join(f"tok{i} " for i in range(1, LONG + 1))
    assert partial.strip() and full.startswith(partial) and f"tok{LONG}" not in partial

    # The tab goes on: the next message is answered on its own and stored once, after the stopped turn.
    slow_model.reply, slow_model.tokens_per_s = None, 1000.0
    assert tab.accept("After the stop").kind == "complete"
    assert tab.respond().kind == "complete"
    (conversation,) = [c for c in stored_turns(password_chat) if c[0] == ("user", "Tell me a longer story")]
    assert conversation[2:] == [("user", "After the stop"), ("assistant", "You said: After the stop")]


def cancel_at_once(chat: ChatProcess, model: FakeOpenAIServer, question: str) -> list[int]:
    """Start `question` through `/chat` as gradio_client does, and cancel it CANCELS times at once mid-stream;
    the status of each cancel."""
    http = sign_in(chat.url, "ada", USERS["ada"])
    session_hash = f"api{uuid.uuid4().hex[:12]}"
    index = fn_index(http, chat.url, "chat")
    body = {"data": [question, *CONTROLS, None], "fn_index": index, "session_hash": session_hash}
    asked = len(model.chat_requests())
    joined = http.post(f"{chat.url}/gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    cancel = {"session_hash": session_hash, "fn_index": index, "event_id": joined.json()["event_id"]}
    answers: list[int] = []

    def send_cancel(after_s: float) -> None:
        time.sleep(after_s)  # spread over the first one's clean-up, which a second must land in to break it
        answers.append(http.post(f"{chat.url}/gradio_api/cancel", json=cancel, timeout=30).status_code)

    with http.get(
        f"{chat.url}/gradio_api/queue/data", params={"session_hash": session_hash}, stream=True, timeout=60
    ) as s:
        wait_until(lambda: len(model.chat_requests()) > asked, 30, "the reply to reach the model")
        next(line for line in s.iter_lines(decode_unicode=True) if '"process_generating"' in (line or ""))
        cancels = [threading.Thread(target=send_cancel, args=(n * 0.003,)) for n in range(CANCELS)]
        for thread in cancels:
            thread.start()
        for thread in cancels:
            thread.join(30)
    return answers


def test_an_api_client_cancelling_twice_at_once_gets_no_server_error(password_chat: ChatProcess, slow_model):
    # gradio_client's Job.cancel() posts /gradio_api/cancel; a second one during the first one's clean-up
    # interrupted it, and failed with a KeyError (HTTP 500). The window is narrow: three tries.
    for n in range(3):
        question = f"Tell me the longest story {n}"
        slow_model.disconnects = 0
        assert cancel_at_once(password_chat, slow_model, question) == [200] * CANCELS
        assert slow_model.wait_for_disconnect(10.0), "the model request was not closed"
        (conversation,) = [c for c in stored_turns(password_chat) if c[0] == ("user", question)]
        assert len(conversation) == 2 and f"tok{LONG}" not in conversation[1][1]


@pytest.fixture
def chat_in_process(tmp_path: Path, slow_model: FakeOpenAIServer) -> Iterator[tuple[str, Any]]:
    """The chat served from this process (no sign-in), so a test can hold Gradio's own code at one point."""
    with chat_in_this_process(tmp_path, slow_model, LABEL) as served:
        yield served


def test_a_second_cancel_during_the_first_ones_clean_up_is_answered_without_a_server_error(
    chat_in_process, slow_model, monkeypatch: pytest.MonkeyPatch
):
    """The race of row 10, made certain instead of hoped for. A cancel cancels the event's task, whose clean-up
    closes the reply's iterator (`Queue.reset_iterators`); a second cancel arriving meanwhile cancels that
    clean-up, so both cancel routes then find the iterator, and the one that deletes it second raises KeyError
    (HTTP 500). Here each close the first cancel waits for is held (as a reply blocked on the model's next token
    holds it) until the second cancel is inside Gradio where the race needs it, or was answered before that."""
    import gradio.queueing
    import gradio.routes

    url, gradio_app = chat_in_process
    in_clean_up, second_answered = threading.Event(), threading.Event()
    cancels_in_gradio: list[set[str]] = []
    held_route_close: list[bool] = []

    async def until(condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not (condition() or second_answered.is_set()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def clean_up_close(iterator: Any, close: Any = gradio.queueing.safe_aclose_iterator) -> None:
        in_clean_up.set()
        await until(lambda: len(cancels_in_gradio) >= 2)  # the second cancel cancels this wait
        await close(iterator)

    async def route_close(iterator: Any, close: Any = gradio.routes.safe_aclose_iterator) -> None:
        if not held_route_close:  # the first route's close, under Gradio's lock: the second waits for that lock
            held_route_close.append(True)
            await until(lambda: bool(gradio_app.lock._waiters))
        await close(iterator)

    async def counted_cancel(task_ids: set[str], cancel: Any = gradio.routes.cancel_tasks) -> list[str]:
        cancels_in_gradio.append(task_ids)
        return await cancel(task_ids)

    monkeypatch.setattr(gradio.queueing, "safe_aclose_iterator", clean_up_close)
    monkeypatch.setattr(gradio.routes, "safe_aclose_iterator", route_close)
    monkeypatch.setattr(gradio.routes, "cancel_tasks", counted_cancel)
    http = requests.Session()
    session_hash = f"api{uuid.uuid4().hex[:12]}"
    index = fn_index(http, url, "chat")
    body = {"data": ["Tell me the longest story", *CONTROLS, None], "fn_index": index, "session_hash": session_hash}
    asked = len(slow_model.chat_requests())
    joined = http.post(f"{url}/gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    cancel = {"session_hash": session_hash, "fn_index": index, "event_id": joined.json()["event_id"]}
    answers: dict[str, int] = {}

    def send(which: str) -> None:
        answers[which] = http.post(f"{url}/gradio_api/cancel", json=cancel, timeout=60).status_code

    with http.get(f"{url}/gradio_api/queue/data", params={"session_hash": session_hash}, stream=True, timeout=60) as s:
        wait_until(lambda: len(slow_model.chat_requests()) > asked, 30, "the reply to reach the model")
        # Streaming: Gradio holds the reply's iterator now, which is what both cancels race to delete.
        next(line for line in s.iter_lines(decode_unicode=True) if '"process_generating"' in (line or ""))
        first = threading.Thread(target=send, args=("first",))
        first.start()
        wait_until(in_clean_up.is_set, 30, "the first cancel's clean-up")
        send("second")
        second_answered.set()
        first.join(60)
    assert answers == {"first": 200, "second": 200}
