"""A Send pressed right after a conversation switch (New chat, a sidebar entry, Delete) goes to the conversation
switched to, even when it reaches the server first: the two are separate requests (New chat is not even
queued), so on a busy replica either can be handled first. Before, the message joined the old conversation and
the switch's empty chat then hid it, never answered. The page numbers its switches (chatapp.ui.SWITCH_JS) and a
Send carries the last number; the handlers run in-process on a real SQLite store, the Send in its own thread as
in Gradio's worker pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import gradio as gr
import pytest

from chatapp import ui_handlers, ui_render
from chatapp.conversations import Conversations
from chatapp.status import ModelStatus
from chatapp.ui_events import CallersUploads
from chatapp.ui_handlers import PageHandlers
from chatapp.ui_render import Tab
from tests.app.helpers import wait_until
from tests.chat import test_state_per_reply as per_reply
from tests.chat.test_state_per_reply import CONTROLS, WORDS

OWNER = "browser:page-1"
REQUEST = gr.Request(username=OWNER)
# Its fixtures: a real SQLite store under the test's temporary folder, and a model that streams word by word.
conversations, store = per_reply.conversations, per_reply.store
ANSWER = "".join(WORDS)


class Send(threading.Thread):
    """The page's Send (`accept`) in a worker thread: its result, or the error it raised."""

    def __init__(self, page: PageHandlers, text: str, tab: Tab, sent: int, switch: int, browser: Any = None) -> None:
        super().__init__(daemon=True)
        browser = tab.shown() if browser is None else browser
        self._call: Callable[[], tuple] = lambda: page.accept(
            {"text": text, "files": []}, tab, browser, sent, switch, REQUEST
        )
        self.result: tuple | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:  # reported by `outcome`
            self.error = exc

    def outcome(self, within_s: float = 10.0) -> Tab:
        self.join(within_s)
        assert not self.is_alive(), f"the Send was still waiting after {within_s:g} s"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result[0]


@pytest.fixture
def page(conversations: Conversations) -> PageHandlers:
    return PageHandlers(conversations, ModelStatus({}), CallersUploads(None))


def answered(page: PageHandlers, tab: Tab) -> None:
    *_, last = page.respond(tab, *CONTROLS, None, REQUEST)
    assert ANSWER in str(last[1])


def stored(history: Any) -> dict[str, list[str]]:
    """Every stored conversation of the page's owner: id → its messages' text."""
    return {
        s.session_id: [m.content for m in history.load_messages(s.session_id, OWNER)]
        for s in history.list_sessions(OWNER)
    }


@pytest.fixture
def first(page: PageHandlers) -> Tab:
    """A page with one answered conversation, "First", and no switch yet."""
    tab, *_ = page.accept({"text": "First", "files": []}, None, None, 1, 0, REQUEST)
    answered(page, tab)
    return tab


def test_a_send_that_overtakes_new_chat_goes_to_the_new_conversation(page, first, store):
    send = Send(page, "Second", first, sent=2, switch=1)  # handled before the New chat pressed before it
    new_tab, *_ = page.new_chat(first, 1, REQUEST)
    tab = send.outcome()
    assert tab is new_tab, "the message went to the conversation the page had left"
    answered(page, tab)
    assert sorted(stored(store).values()) == [["First", ANSWER], ["Second", ANSWER]]


def test_a_send_that_overtakes_a_sidebar_switch_goes_to_the_conversation_opened(page, first, store):
    elsewhere, *_ = page.new_chat(first, 1, REQUEST)
    elsewhere, *_ = page.accept({"text": "Elsewhere", "files": []}, elsewhere, elsewhere.shown(), 2, 1, REQUEST)
    answered(page, elsewhere)
    send = Send(page, "Back to the first", elsewhere, sent=3, switch=2)
    opened, *_ = page.resume(first.conversation.id, elsewhere, 2, REQUEST)
    tab = send.outcome()
    assert tab is opened
    answered(page, tab)
    assert stored(store)[first.conversation.id] == ["First", ANSWER, "Back to the first", ANSWER]


def test_a_failed_switch_lets_the_send_go_on_at_once_in_the_conversation_on_screen(page, first, store):
    send = Send(page, "Second", first, sent=2, switch=1)
    with pytest.raises(gr.Error, match="No such conversation"):
        page.resume("0" * 32, first, 1, REQUEST)
    tab = send.outcome(within_s=ui_handlers.SWITCH_WAIT_S / 2)  # not after the wait for a lost switch
    assert tab is first
    answered(page, tab)
    assert list(stored(store).values()) == [["First", ANSWER, "Second", ANSWER]]


def test_a_lost_switch_holds_one_send_for_the_wait_then_no_more(page, first, store, monkeypatch):
    monkeypatch.setattr(ui_handlers, "SWITCH_WAIT_S", 0.3)
    tab = Send(page, "Second", first, sent=2, switch=1).outcome()  # switch 1 never reaches the server
    assert tab is first
    answered(page, tab)
    monkeypatch.setattr(ui_handlers, "SWITCH_WAIT_S", 60.0)
    assert Send(page, "Third", tab, sent=3, switch=1).outcome() is first  # no second wait for the same switch
    assert list(stored(store).values()) == [["First", ANSWER, "Second", ANSWER]]


def test_a_state_rebuilt_from_the_store_waits_for_no_switch(page, first, monkeypatch):
    # Another replica served the page's switches: this one rebuilds the state from what the page shows.
    monkeypatch.setattr(ui_handlers, "SWITCH_WAIT_S", 60.0)
    tab = Send(page, "Second", None, sent=2, switch=3, browser=first.shown()).outcome()  # type: ignore[arg-type]
    assert tab.conversation.id == first.conversation.id


@pytest.mark.parametrize("stop_first", [True, False], ids=["stop-before-the-switch", "stop-after-the-switch"])
def test_a_stop_on_the_old_state_stops_the_send_that_overtook_the_switch(page, first, store, stop_first):
    # Both Stop events began with the state from before the switch (Gradio hands an event the state of its start).
    send = Send(page, "Second", first, sent=2, switch=1)
    if stop_first:
        page.stop(first, 2, REQUEST)
    page.new_chat(first, 1, REQUEST)
    if not stop_first:
        page.stop(first, 2, REQUEST)
    tab = send.outcome()
    *_, last = page.respond(tab, *CONTROLS, None, REQUEST)
    assert "Stopped before the reply began" in str(last[1])
    assert last[3] == {"text": "Second", "files": []}  # back in the message box
    assert list(stored(store).values()) == [["First", ANSWER]]


def test_past_the_cap_a_send_waits_for_no_switch_so_lost_switches_cannot_hold_every_worker(page, first, monkeypatch):
    # A client sending switch numbers it never switches to: each such Send holds a worker of the Send event.
    monkeypatch.setattr(ui_handlers, "SWITCH_WAIT_S", 60.0)
    tabs = [page.new_chat(first, 0, REQUEST)[0] for _ in range(ui_render.MAX_WAITING_SENDS + 1)]
    waiting = [Send(page, "Held", tab, sent=1, switch=1) for tab in tabs[:-1]]
    wait_until(lambda: ui_render._waiting == ui_render.MAX_WAITING_SENDS, 10, "the first Sends to wait")
    last = tabs[-1]
    assert Send(page, "Not held", last, sent=1, switch=1).outcome(within_s=5) is last
    assert last.conversation.unanswered == "Not held"  # accepted, in the conversation on screen
    for send, tab in zip(waiting, tabs, strict=False):
        page.new_chat(tab, 1, REQUEST)  # their switches arrive: each goes on, in its new conversation
        assert send.outcome() is not tab
    assert ui_render._waiting == 0
