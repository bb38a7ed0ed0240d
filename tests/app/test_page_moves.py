"""An open page whose next event reaches another replica (issue 21, finding 3): that replica holds no state for
the tab, so it rebuilds the conversation the page shows (its id travels with Send, Retry, Undo and Delete,
checked against the caller) and says so, instead of acting on a new, empty conversation.

Spoken as the page speaks (queue/join by fn_index, one session_hash per tab, the browser's cookie), through
two chat processes on one Firestore emulator behind the switchable proxy (harness.replicas)."""

from __future__ import annotations

from typing import Any

import requests

from chatapp.open_conversation import RECOVERED
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
        accepted = self.event("accept", {"text": text, "files": []}, None, self.shown, self.sent)
        assert accepted.kind == "complete", accepted
        self.shown = accepted.value[3]
        return self.event("respond", None, *CONTROLS)

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
    accepted = page.event("accept", {"text": "And a skerry?", "files": []}, None, page.shown, 2)
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
    deleted = page.event("confirm_delete", None, page.shown)
    assert deleted.kind == "complete", deleted
    assert [stored_id for stored_id, _ in page.stored()] == [other.shown["session_id"]]
    assert conversation != other.shown["session_id"]


def test_the_page_is_told_its_conversation_was_recovered(replicas: Replicas, slow_model: FakeOpenAIServer) -> None:
    page, _ = moved(replicas, slow_model)
    accepted = page.http.post(
        f"{page.url}/gradio_api/queue/join",
        json={
            "data": [{"text": "Still there?", "files": []}, None, page.shown, 2],
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
                break
    assert any(RECOVERED in toast for toast in toasts), toasts


def test_another_persons_page_naming_the_shown_id_touches_nothing_of_theirs(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    ada, conversation = moved(replicas, slow_model)
    before = ada.stored()
    bob = Page(replicas)  # another browser: another owner, on the replica that never saw Ada's page
    for name, data in [
        ("undo", [None, ada.shown]),
        ("confirm_delete", [None, ada.shown]),
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
