"""An open page whose next event reaches another replica (issue 21, finding 3): that replica holds no state for
the tab, so it rebuilds the conversation the page shows (its id travels with Send, Retry, Undo and Delete,
checked against the caller) and says so, instead of acting on a new, empty conversation. A page that comes back
to a replica still holding older state for it (an affinity flap) is rebuilt there too: the page also carries
the key of the state that served it last, so nothing acts on (or overwrites) turns older than the shown ones.

Spoken as the page speaks (queue/join by fn_index, one session_hash per tab, the browser's cookie), through
two chat processes on one Firestore emulator behind the switchable proxy (harness.replicas)."""

from __future__ import annotations

import json
from typing import Any

import requests

from chatapp.open_conversation import NOT_RECOVERED, RECOVERED
from harness.fakes.openai_server import FakeOpenAIServer
from harness.replicas import Replicas
from tests.app.helpers import FAKE_LABEL, Result, call, new_session
from tests.security.wire import fn_index, join

CONTROLS = [FAKE_LABEL, 0.7, 0.95, 64, "", None]  # model, temperature, top-p, max tokens, system prompt, thinking


class Page:
    """One browser tab: its cookies, its session_hash, the conversation it shows (its BrowserState)."""

    def __init__(self, replicas: Replicas, http: requests.Session | None = None) -> None:
        self.url = replicas.proxy.url
        self.http = http or requests.Session()
        self.tab = new_session()
        names = ("load", "accept", "respond", "retry", "undo", "confirm_delete")
        self.events = {name: fn_index(self.http, self.url, name) for name in names}
        opened = self.event("load", {"session_id": None})
        assert opened.kind == "complete", opened
        self.shown: dict[str, Any] = opened.value[1]
        self.sent = 0

    def event(self, name: str, *data: Any) -> Result:
        return join(self.http, self.url, self.events[name], list(data), self.tab, timeout=60)

    def send(self, text: str) -> Result:
        self.sent += 1
        accepted = self.event("accept", {"text": text, "files": []}, None, self.shown, self.sent, 0)
        assert accepted.kind == "complete", accepted
        self.shown = accepted.value[3]
        return self.answer()

    def answer(self) -> Result:
        """The reply to the message accepted (or retried) last; the page keeps what the reply says it shows."""
        answered = self.event("respond", None, *CONTROLS)
        if answered.kind == "complete":
            self.shown = answered.value[4]
        return answered

    def stored(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Every conversation of this page's owner, as the store has it: (id, [(role, text), ...])."""
        listed = call(self.url, "conversations", [], http=self.http).value[0]
        return [(c["id"], self.messages(c["id"])) for c in listed]

    def messages(self, conversation_id: str) -> list[tuple[str, str]]:
        messages = call(self.url, "resume", [conversation_id], http=self.http).value[0]
        return [(m["role"], m["content"].strip()) for m in messages]


def shown_text(result: Result) -> list[str]:
    """The Chatbot's messages in an event's outputs (the second output of respond, retry and undo); Gradio sends
    each message's content as a list of parts."""
    return ["".join(part.get("text", "") for part in m["content"]) for m in result.value[1] if not m.get("metadata")]


def moved(replicas: Replicas, slow_model: FakeOpenAIServer) -> tuple[Page, str]:
    """A page with one answered turn on replica 0, whose events now reach replica 1."""
    slow_model.reply = 3
    replicas.route_to(0, cut=True)
    page = Page(replicas)
    assert page.send("What is a fjord?").kind == "complete"
    conversation = page.shown["session_id"]
    assert page.stored() == [(conversation, [("user", "What is a fjord?"), ("assistant", "tok1 tok2 tok3")])]
    replicas.route_to(1, cut=True)  # the load balancer moved this person (failover, a rolling update)
    return page, conversation


def test_send_on_another_replica_continues_the_shown_conversation_with_its_context(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = moved(replicas, slow_model)
    asked = len(slow_model.chat_requests())
    accepted = page.event("accept", {"text": "And a skerry?", "files": []}, None, page.shown, 2, 0)
    assert accepted.kind == "complete", accepted
    assert page.event("respond", None, *CONTROLS).kind == "complete"
    (sent,) = slow_model.chat_requests()[asked:]
    assert [m["content"].strip() for m in sent["messages"]][-3:-1] == ["What is a fjord?", "tok1 tok2 tok3"], sent
    ((stored_id, messages),) = page.stored()
    assert stored_id == conversation and [text for _, text in messages][-2:] == ["And a skerry?", "tok1 tok2 tok3"]


def test_retry_on_another_replica_answers_the_shown_conversation_again(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = moved(replicas, slow_model)
    slow_model.reply = 5
    retried = page.event("retry", None, page.shown, 2)
    assert retried.kind == "complete", retried
    assert ["fjord" in text for text in shown_text(retried)] == [True], "Retry made the shown conversation vanish"
    answered = page.event("respond", None, *CONTROLS)
    assert answered.kind == "complete", answered
    assert page.stored() == [(conversation, [("user", "What is a fjord?"), ("assistant", "tok1 tok2 tok3 tok4 tok5")])]


def test_undo_on_another_replica_takes_back_the_shown_turn(replicas: Replicas, slow_model: FakeOpenAIServer) -> None:
    page, _ = moved(replicas, slow_model)
    undone = page.event("undo", None, page.shown)
    assert undone.kind == "complete", undone
    assert undone.value[2]["text"] == "What is a fjord?"  # back in the message box
    assert page.stored() == []


def test_delete_on_another_replica_deletes_the_shown_conversation(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = moved(replicas, slow_model)
    other = Page(replicas, page.http)  # the same person's conversation in another tab must stay
    assert other.send("Keep me").kind == "complete"
    deleted = page.event("confirm_delete", None, page.shown, 1)
    assert deleted.kind == "complete", deleted
    assert [stored_id for stored_id, _ in page.stored()] == [other.shown["session_id"]]
    assert conversation != other.shown["session_id"]


def accept_toasts(page: Page, text: str) -> list[str]:
    """Send `text` as the page does (its accept event) and return the toasts that event shows."""
    page.sent += 1
    accepted = page.http.post(
        f"{page.url}/gradio_api/queue/join",
        json={
            "data": [{"text": text, "files": []}, None, page.shown, page.sent, 0],
            "event_data": None,
            "fn_index": page.events["accept"],
            "trigger_id": None,
            "session_hash": page.tab,
        },
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    with page.http.get(
        f"{page.url}/gradio_api/queue/data", params={"session_hash": page.tab}, stream=True, timeout=30
    ) as stream:
        toasts = []
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:") and '"log"' in line:
                toasts.append(line)
            if line and "process_completed" in line:
                completed = json.loads(line.partition(":")[2])
                assert completed.get("success"), completed
                page.shown = completed["output"]["data"][3]
                break
    return toasts


def test_the_page_is_told_its_conversation_was_recovered(replicas: Replicas, slow_model: FakeOpenAIServer) -> None:
    page, _ = moved(replicas, slow_model)
    toasts = accept_toasts(page, "Still there?")
    assert any(RECOVERED in toast for toast in toasts), toasts


def test_a_new_conversation_moving_replicas_is_not_called_missing(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    """A page showing a new conversation, never stored, has lost nothing when its state is gone: no toast."""
    slow_model.reply = 3
    replicas.route_to(0, cut=True)
    page = Page(replicas)
    replicas.route_to(1, cut=True)
    toasts = accept_toasts(page, "What is a fjord?")
    assert not any(NOT_RECOVERED in toast for toast in toasts), toasts
    assert page.answer().kind == "complete"
    assert page.stored() == [
        (page.shown["session_id"], [("user", "What is a fjord?"), ("assistant", "tok1 tok2 tok3")])
    ]


FJORD = [("user", "What is a fjord?"), ("assistant", "tok1 tok2 tok3")]
SKERRY = [("user", "And a skerry?"), ("assistant", "tok1 tok2 tok3 tok4")]


def bounced(replicas: Replicas, slow_model: FakeOpenAIServer) -> tuple[Page, str]:
    """A page whose first turn replica 0 served and whose second turn replica 1 served (and stored), whose events
    now reach replica 0 again (an affinity flap), which still holds its state from before the second turn."""
    page, conversation = moved(replicas, slow_model)
    slow_model.reply = 4
    assert page.send("And a skerry?").kind == "complete"
    assert page.stored() == [(conversation, FJORD + SKERRY)]
    replicas.route_to(0, cut=True)
    return page, conversation


def test_send_back_on_the_first_replica_keeps_every_turn_and_the_context(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = bounced(replicas, slow_model)
    asked = len(slow_model.chat_requests())
    slow_model.reply = 5
    assert page.send("And a holm?").kind == "complete"
    (sent,) = slow_model.chat_requests()[asked:]
    context = [m["content"].strip() for m in sent["messages"]][-5:]
    assert context == [text for _, text in FJORD + SKERRY] + ["And a holm?"], sent
    holm = [("user", "And a holm?"), ("assistant", "tok1 tok2 tok3 tok4 tok5")]
    assert page.stored() == [(conversation, FJORD + SKERRY + holm)], "a turn stored elsewhere was overwritten"


def test_retry_back_on_the_first_replica_answers_the_shown_last_turn(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = bounced(replicas, slow_model)
    retried = page.event("retry", None, page.shown, 3)
    assert retried.kind == "complete", retried
    page.shown = retried.value[2]
    slow_model.reply = 5
    assert page.answer().kind == "complete"
    again = [("user", "And a skerry?"), ("assistant", "tok1 tok2 tok3 tok4 tok5")]
    assert page.stored() == [(conversation, FJORD + again)]


def test_undo_back_on_the_first_replica_takes_back_the_shown_last_turn(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    page, conversation = bounced(replicas, slow_model)
    undone = page.event("undo", None, page.shown)
    assert undone.kind == "complete", undone
    assert undone.value[2]["text"] == "And a skerry?"  # back in the message box
    assert page.stored() == [(conversation, FJORD)]


def test_another_persons_page_naming_the_shown_id_touches_nothing_of_theirs(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    ada, conversation = moved(replicas, slow_model)
    before = ada.stored()
    bob = Page(replicas)  # another browser: another owner, on the replica that never saw Ada's page
    for name, data in [
        ("undo", [None, ada.shown]),
        ("confirm_delete", [None, ada.shown, 1]),
        ("retry", [None, ada.shown, 1]),
    ]:
        bob.tab = new_session()  # a tab the replica holds nothing for, showing Ada's conversation id
        assert bob.event(name, *data).kind in ("complete", "error")
    bob.tab = new_session()
    bob.shown = dict(ada.shown)
    assert bob.send("Bob's words").kind == "complete"
    assert ada.stored() == before, "Bob's events changed Ada's conversation"
    ((bobs, messages),) = bob.stored()
    assert bobs != conversation and messages[0] == ("user", "Bob's words")
