"""A reply sets the tab's Gradio State once, not with every streamed update: each set costs Gradio a rebuild of
the State's configuration (README "Performance"). `/chat` sets it with its first update (a client gone
mid-reply still has its conversation) and its last; the page's reply leaves it to `accept` and its last
update. The handlers run in-process on a real SQLite store and a scripted model that streams word by word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from chatapp.chat import ChatService
from chatapp.conversations import Conversations
from chatapp.history.sqlite import SqliteStore
from chatapp.status import ModelStatus
from chatapp.ui_api import ApiHandlers
from chatapp.ui_events import CallersUploads
from chatapp.ui_handlers import PageHandlers
from chatapp.ui_render import Tab
from tests.chat.test_chat_service import ScriptedModel
from tests.chat.test_conversations import _Saver

WORDS = ("Once ", "upon ", "a ", "time ", "there ", "was ", "a ", "chat.")
CONTROLS = ("M", 0.7, 0.95, 64, "")


@pytest.fixture
def conversations(store) -> Conversations:
    # No coalescing (update_interval_s=0): every word is an update, as with a slow model.
    service = ChatService({"M": ScriptedModel("M", chunks=WORDS)}, _Saver(store), 10_000, update_interval_s=0)
    return Conversations(service, store)


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


def sets_state(value: Any) -> bool:
    """Whether Gradio stores `value` into a State output: anything but an update without a value (gr.skip())."""
    return not (isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value)


def test_chat_sets_the_clients_state_with_its_first_and_last_update_only(conversations: Conversations):
    request = gr.Request(username="api:client-1")
    api = ApiHandlers(conversations, CallersUploads(None))
    outputs = list(api.api_chat("Tell me a story", *CONTROLS, None, request))
    assert len(outputs) > 3 and outputs[-1][0] == "".join(WORDS)
    assert [sets_state(state) for _, state in outputs] == [True] + [False] * (len(outputs) - 2) + [True]
    first, last = outputs[0][1], outputs[-1][1]
    assert isinstance(first, Tab) and first is last, "the first update's state is not the conversation that goes on"
    again = list(api.api_chat("And then?", *CONTROLS, last, request))
    assert again[-1][1] is last and len(last.conversation.session.messages) == 4


def test_the_pages_reply_sets_the_tab_only_with_its_last_update(conversations: Conversations):
    request = gr.Request(username="browser:page-1")
    page = PageHandlers(conversations, ModelStatus({}), CallersUploads(None))
    tab, *_ = page.accept({"text": "Tell me a story", "files": []}, None, None, 1, 0, request)
    outputs = list(page.respond(tab, *CONTROLS, None, request))
    assert len(outputs) > 3 and "".join(WORDS) in str(outputs[-1][1])
    assert [sets_state(update[0]) for update in outputs] == [False] * (len(outputs) - 1) + [True]
    assert outputs[-1][0] is tab
