"""A conversation open in two tabs keeps every turn. A second tab of a browser opens the conversation the
browser had open (browser storage), so two tabs in one conversation is the ordinary case, not a race. Each
tab used to hold its own copy read from the store; both took the next turn's index from their copy, and the
later save overwrote a turn the other tab had been told was saved. A replica now holds one copy per
conversation, shared by every tab and API client that opens it, brought up to the store's turns when another
replica added some; and a copy that still misses some (a page left open while another device went on, on
another replica) has its turn stored after them, not over them. The handlers run in-process on a real SQLite
store (two `Conversations` on one store stand for two replicas) and a model that streams word by word.
"""

from __future__ import annotations

import gradio as gr
import pytest

from chatapp.chat import ChatService
from chatapp.conversations import Conversations, NotFound
from chatapp.history.sqlite import SqliteStore
from chatapp.status import ModelStatus
from chatapp.ui_events import CallersUploads
from chatapp.ui_handlers import PageHandlers
from chatapp.ui_render import Tab
from tests.chat import test_state_per_reply as per_reply
from tests.chat.test_chat_service import ScriptedModel
from tests.chat.test_conversations import _Saver
from tests.chat.test_state_per_reply import CONTROLS, WORDS

OWNER = "browser:two-tabs"
REQUEST = gr.Request(username=OWNER)
ANSWER = "".join(WORDS)
store = per_reply.store  # a real SQLite store under the test's temporary folder


def replica(store: SqliteStore) -> PageHandlers:
    service = ChatService({"M": ScriptedModel("M", chunks=WORDS)}, _Saver(store), 10_000, update_interval_s=0)
    return PageHandlers(Conversations(service, store), ModelStatus({}), CallersUploads(None))


def send(page: PageHandlers, tab: Tab, text: str) -> bool | None:
    """The page's Send then its reply, to the end; whether the last update said the turn was saved."""
    tab, *_ = page.accept({"text": text, "files": []}, tab, tab.shown(), tab.sent + 1, 0, REQUEST)
    *_, last = page.respond(tab, *CONTROLS, None, REQUEST)
    assert ANSWER in str(last[1]), last
    return tab.conversation.stored


def opened_in_new_tab(page: PageHandlers, browser: dict) -> Tab:
    """A new tab's page load: it opens the conversation the browser had open."""
    tab, *_ = page.load(browser, REQUEST)
    return tab


def stored_texts(store: SqliteStore, conversation_id: str) -> list[str]:
    return [m.content for m in store.load_messages(conversation_id, OWNER)]


def test_two_tabs_of_one_browser_in_one_conversation_keep_both_turns(store: SqliteStore):
    page = replica(store)
    first = opened_in_new_tab(page, {"session_id": None})
    assert send(page, first, "one")
    browser = first.shown()  # what the browser keeps: the conversation it had open
    second = opened_in_new_tab(page, browser)
    assert second.conversation.id == first.conversation.id
    assert send(page, first, "two from the first tab")
    assert send(page, second, "three from the second tab")
    assert send(page, first, "four from the first tab again")
    assert stored_texts(store, first.conversation.id) == [
        "one", ANSWER, "two from the first tab", ANSWER, "three from the second tab", ANSWER,
        "four from the first tab again", ANSWER,
    ]  # fmt: skip


def test_a_copy_opened_here_takes_the_turns_another_replica_added(store: SqliteStore):
    here, there = replica(store), replica(store)
    tab = opened_in_new_tab(here, {"session_id": None})
    send(here, tab, "one")
    browser = tab.shown()
    elsewhere = opened_in_new_tab(there, browser)  # the person's next page landed on the other replica
    send(there, elsewhere, "two on the other replica")
    back = opened_in_new_tab(here, browser)  # and the one after, here again, while the first tab is still open
    assert back.conversation.session is tab.conversation.session, "two copies of one conversation on a replica"
    send(here, back, "three here")
    assert stored_texts(store, tab.conversation.id) == [
        "one", ANSWER, "two on the other replica", ANSWER, "three here", ANSWER,
    ]  # fmt: skip


def test_a_page_left_open_on_one_replica_keeps_the_other_devices_turns(store: SqliteStore):
    # The laptop's page stays open on one replica; the phone, on another, goes on in the same conversation.
    # The laptop's copy never sees the phone's turn, and its next turn is given that turn's place: the store
    # puts it after the phone's instead (Turn), and the page is told it is saved.
    laptop_replica, phone_replica = replica(store), replica(store)
    laptop = opened_in_new_tab(laptop_replica, {"session_id": None})
    send(laptop_replica, laptop, "one on the laptop")
    phone = opened_in_new_tab(phone_replica, laptop.shown())
    assert send(phone_replica, phone, "two on the phone")
    assert send(laptop_replica, laptop, "three on the laptop, left open")
    assert stored_texts(store, laptop.conversation.id) == [
        "one on the laptop", ANSWER, "two on the phone", ANSWER, "three on the laptop, left open", ANSWER,
    ]  # fmt: skip


def laptop_and_phone(store: SqliteStore) -> tuple[PageHandlers, Tab]:
    """A turn on the laptop, then one on the phone (another replica): the laptop's page has not seen it."""
    laptop_replica, phone_replica = replica(store), replica(store)
    laptop = opened_in_new_tab(laptop_replica, {"session_id": None})
    send(laptop_replica, laptop, "one on the laptop")
    send(phone_replica, opened_in_new_tab(phone_replica, laptop.shown()), "two on the phone")
    return laptop_replica, laptop


def test_undo_on_a_page_that_missed_turns_takes_back_nothing(store: SqliteStore):
    laptop_replica, laptop = laptop_and_phone(store)
    with pytest.raises(gr.Error, match=r"went on elsewhere .* nothing was undone"):
        laptop_replica.undo(laptop, laptop.shown(), REQUEST)
    assert stored_texts(store, laptop.conversation.id) == ["one on the laptop", ANSWER, "two on the phone", ANSWER]
    assert laptop.conversation.session.turns == 1, "the page no longer shows what is still stored"


def test_retry_on_a_page_that_missed_turns_replaces_none_of_them(store: SqliteStore):
    laptop_replica, laptop = laptop_and_phone(store)
    tab, *_ = laptop_replica.retry(laptop, laptop.shown(), laptop.sent + 1, REQUEST)
    *_, last = laptop_replica.respond(tab, *CONTROLS, None, REQUEST)
    assert ANSWER in str(last[1])
    assert stored_texts(store, laptop.conversation.id) == [
        "one on the laptop", ANSWER, "two on the phone", ANSWER, "one on the laptop", ANSWER,
    ]  # fmt: skip


def test_retry_on_a_page_that_saw_every_turn_replaces_its_last(store: SqliteStore):
    page = replica(store)
    tab = opened_in_new_tab(page, {"session_id": None})
    send(page, tab, "one")
    send(page, tab, "two")
    tab, *_ = page.retry(tab, tab.shown(), tab.sent + 1, REQUEST)
    *_, last = page.respond(tab, *CONTROLS, None, REQUEST)
    assert ANSWER in str(last[1])
    assert stored_texts(store, tab.conversation.id) == ["one", ANSWER, "two", ANSWER]


def test_a_deleted_conversation_is_not_opened_from_a_copy_still_held(store: SqliteStore):
    page = replica(store)
    tab = opened_in_new_tab(page, {"session_id": None})
    send(page, tab, "one")
    conversations = page.conversations
    conversations.delete(OWNER, tab.conversation.id)
    with pytest.raises(NotFound):
        conversations.resume(OWNER, tab.conversation.id)
    with pytest.raises(NotFound):  # nor by anyone else, whatever this replica holds
        conversations.resume("browser:someone-else", tab.conversation.id)
