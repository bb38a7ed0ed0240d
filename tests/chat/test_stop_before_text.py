"""Stop pressed while the model has not sent its first text yet (a long prompt, a busy server): the page's reply
ends at once instead of when that text comes, the message goes back into the box, nothing is stored, and the
model's request is closed as soon as it answers. The page's handlers run in-process on a real SQLite store, the
reply in its own thread as in Gradio's worker pool; the model holds its text until the test releases it.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import gradio as gr
import pytest

from chatapp.chat import Ask, ChatService, ChatSession
from chatapp.conversations import Conversations
from chatapp.status import ModelStatus
from chatapp.ui_events import CallersUploads
from chatapp.ui_handlers import PageHandlers
from tests.app.helpers import wait_until
from tests.chat.test_chat_service import ListSaver
from tests.chat.test_conversations import _Saver
from tests.chat.test_first_chunk import GatedStream
from tests.chat.test_state_per_reply import CONTROLS, store  # noqa: F401  (the real SQLite store fixture)

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

OWNER = "browser:page-1"
REQUEST = gr.Request(username=OWNER)
FIRST_TEXT_S = 30.0  # how long the model would keep the page waiting if Stop waited for its first text


class GatedModel:
    """A ChatModel whose streams send their role chunk at once and their text only once released."""

    label = "M"

    def __init__(self) -> None:
        self.streams: list[GatedStream] = []
        self.prompts: list[list[str]] = []

    def stream(self, messages, params, stats):
        self.prompts.append([m.content for m in messages])
        self.streams.append(GatedStream(chunks=("Once ", "upon ", "a time.")))
        return self.streams[-1].generator

    def check(self):
        return None


class Respond(threading.Thread):
    """The page's reply event in a worker thread; `outputs` is every update it yielded."""

    def __init__(self, page: PageHandlers, tab) -> None:
        super().__init__(daemon=True)
        self.page, self.tab, self.outputs, self.error = page, tab, [], None
        self.start()

    def run(self) -> None:
        try:
            self.outputs = list(self.page.respond(self.tab, *CONTROLS, None, REQUEST))
        except BaseException as exc:  # reported by the test
            self.error = exc


def stored(history) -> dict[str, list[str]]:
    return {
        s.session_id: [m.content for m in history.load_messages(s.session_id, OWNER)]
        for s in history.list_sessions(OWNER)
    }


def test_stop_before_the_first_text_ends_the_reply_at_once_and_stores_nothing(store):  # noqa: F811
    model = GatedModel()
    service = ChatService({"M": model}, _Saver(store), 10_000, update_interval_s=0)
    page = PageHandlers(Conversations(service, store), ModelStatus({}), CallersUploads(None))
    tab, *_ = page.accept({"text": "Tell me a story", "files": []}, None, None, 1, 0, REQUEST)
    respond = Respond(page, tab)
    wait_until(lambda: model.streams and model.streams[0].read == [""], 10, "the model to be asked")
    pressed = time.monotonic()
    page.stop(tab, 1, REQUEST)
    respond.join(FIRST_TEXT_S / 3)
    assert not respond.is_alive(), "Stop waited for the model's first text"
    assert respond.error is None, respond.error
    ended_s = time.monotonic() - pressed
    *_, last = respond.outputs
    assert "Stopped before the reply began" in str(last[1])
    assert last[3] == {"text": "Tell me a story", "files": []}, "the message is not back in the box"
    assert stored(store) == {}, "a reply stopped before its first text was stored"
    assert not model.streams[0].closed.is_set()  # the model has not answered yet: nothing to close it with
    model.streams[0].release.set()
    assert model.streams[0].closed.wait(10), "the stopped model request was never closed"
    assert model.streams[0].read == ["", "Once "], "the stopped stream was read past its first text"
    assert stored(store) == {}
    assert ended_s < FIRST_TEXT_S / 3

    # The next message is answered on its own: the stopped one is neither glued to it nor stored.
    tab, *_ = page.accept({"text": "And now?", "files": []}, tab, tab.shown(), 2, 0, REQUEST)
    respond = Respond(page, tab)
    wait_until(lambda: len(model.streams) == 2, 10, "the model to be asked again")
    model.streams[1].release.set()
    respond.join(10)
    assert respond.error is None and not respond.is_alive()
    assert model.prompts[-1] == ["And now?"]
    assert list(stored(store).values()) == [["And now?", "Once upon a time."]]


def test_the_service_logs_a_stop_before_the_first_text_as_stopped_and_saves_nothing(caplog):
    caplog.set_level(logging.INFO, logger="chatapp.turns")
    model, saver = GatedModel(), ListSaver()
    stopped = threading.Event()
    updates = ChatService({"M": model}, saver, 10_000).reply(ChatSession(owner="o"), Ask("hi", "M"), stopped.is_set)
    threading.Timer(0.3, stopped.set).start()
    (final,) = list(updates)
    assert final.done and final.stopped and final.text == "" and final.notice is None
    assert saver.turns == []
    (record,) = [json.loads(r.message) for r in caplog.records if r.name == "chatapp.turns"]
    assert record["outcome"] == "stopped" and record["saved"] is None
    model.streams[0].release.set()
    assert model.streams[0].closed.wait(10)
