"""Gradio finds a handler's `gr.Request` parameter from its type hints on every event; the page's and the API's
handlers are written with `from __future__ import annotations`, whose string hints Gradio would compile and
evaluate again each time (README "Performance"). Once the page is built, every handler's hints are evaluated
objects, and Gradio still finds every `gr.Request` (without it a handler could not tell who is calling)."""

from __future__ import annotations

import inspect
from pathlib import Path

import gradio as gr
from gradio import utils

from chatapp.chat import ChatService
from chatapp.conversations import Conversations
from chatapp.history.sqlite import SqliteStore
from chatapp.status import ModelStatus
from chatapp.ui import ChatUI
from tests.chat.test_chat_service import ScriptedModel
from tests.chat.test_conversations import _Saver


def test_every_handler_has_evaluated_hints_and_its_request_is_found(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3")
    try:
        service = ChatService({"M": ScriptedModel("M")}, _Saver(store), 10_000)
        demo = ChatUI(Conversations(service, store), ModelStatus({})).build()
    finally:
        store.close()
    handlers = {block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    with_request = 0
    for handler in handlers:
        function = getattr(handler, "__func__", handler)
        strings = [name for name, hint in getattr(function, "__annotations__", {}).items() if isinstance(hint, str)]
        assert not strings, f"{function.__qualname__}: hints {strings} are still strings, evaluated on every event"
        if "request" in inspect.signature(handler).parameters:
            assert utils.get_type_hints(handler).get("request") in (gr.Request, gr.Request | None), (
                f"Gradio no longer finds the gr.Request of {function.__qualname__}"
            )
            with_request += 1
    assert with_request >= 10, f"only {with_request} handlers take the caller's request"
