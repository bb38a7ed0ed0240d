"""Two chat replicas on one Firestore emulator behind a switchable proxy (harness.replicas), with a slow model
(5 tokens/s): a rolling restart and a lost replica mid-reply, seen by a person who carries on on the other."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import requests

from chatapp.drain import CUT_NOTE
from chatapp.sign_ins import CHECK_S
from harness.fakes.openai_server import FakeOpenAIServer
from harness.replicas import Replicas
from tests.app.conftest import REPLICAS_BUDGET_S
from tests.app.helpers import call, chat, new_session, wait_until
from tests.app.test_shutdown import in_background, streaming

BUDGET_S = REPLICAS_BUDGET_S


def conversations(url: str, person: str) -> list[dict[str, Any]]:
    return call(url, "conversations", [], session_hash=person).value[0]


def resumed(url: str, person: str, conversation_id: str) -> list[tuple[str, str]]:
    messages = call(url, "resume", [conversation_id], session_hash=person).value[0]
    return [(m["role"], m["content"]) for m in messages]


def draining(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(f"{url}/readyz", params={"store": "false"}, timeout=5).status_code == 503
        except requests.ConnectionError:
            return True

    return check


def test_rolling_restart_mid_reply_keeps_the_turn_and_the_conversation_goes_on(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    person = new_session()
    url = replicas.proxy.url
    thread, result = in_background(lambda: chat(url, "Tell me a long story", session_hash=person))
    wait_until(streaming(slow_model), 30, "the reply to start on replica 0")
    os.kill(replicas[0].process.pid, signal.SIGTERM)  # the rolling update replaces replica 0
    wait_until(draining(replicas[0].url), 5, "replica 0's readiness to fail")
    replicas.route_to(1)  # the load balancer saw it and sends new connections to replica 1
    replicas[0].process.wait(BUDGET_S + 20)
    thread.join(10)
    stored = conversations(url, person)
    assert len(stored) == 1, f"the turn cut short by the restart was not stored: {stored}"
    assert result and CUT_NOTE in result[0].reply, result  # the open stream ended with the note, not an error
    listed = stored[0]
    shown = resumed(url, person, listed["id"])
    assert [role for role, _ in shown] == ["user", "assistant"], shown
    assert shown[0][1] == "Tell me a long story" and shown[1][1].endswith(f"*{CUT_NOTE}*"), shown
    slow_model.reply = 3
    assert chat(url, "Go on", session_hash=person).reply.startswith("tok1 tok2 tok3")
    (listed,) = conversations(url, person)
    assert listed["turns"] == 2, listed  # the same conversation, continued on replica 1


def test_a_killed_replica_leaves_whole_turns_and_the_person_carries_on(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    person = new_session()
    url = replicas.proxy.url
    slow_model.reply = 3
    assert chat(url, "First", session_hash=person).reply.startswith("tok1")
    slow_model.reply = 100
    in_background(lambda: chat(url, "Second", session_hash=person))
    wait_until(streaming(slow_model, 2), 30, "the second reply to start on replica 0")
    replicas[0].process.kill()  # the node is gone
    replicas[0].process.wait(10)
    replicas.route_to(1, cut=True)

    (listed,) = conversations(url, person)
    assert listed["turns"] == 1, listed
    shown = resumed(url, person, listed["id"])
    # Whole, and nothing of "Second": its message and reply were never stored, not one without the other.
    assert [(role, text.strip()) for role, text in shown] == [("user", "First"), ("assistant", "tok1 tok2 tok3")]
    slow_model.reply = 3
    assert chat(url, "Second, again", session_hash=person).reply.startswith("tok1")
    (listed,) = conversations(url, person)
    assert listed["turns"] == 2, listed


@pytest.mark.parametrize("replicas", [{"CHAT_AUTH": "password", "CHAT_AUTH_USERS": "ada:correct horse"}], indirect=True)
def test_password_sign_in_holds_on_another_replica_and_sign_out_everywhere(
    replicas: Replicas, slow_model: FakeOpenAIServer
) -> None:
    slow_model.reply = 3
    url = replicas.proxy.url
    ada = requests.Session()
    assert ada.post(f"{url}/login", data={"username": "ada", "password": "correct horse"}, timeout=10).ok
    signed_in = dict(ada.cookies)
    page = new_session()
    assert chat(url, "On replica 0", session_hash=page, http=ada).reply.startswith("tok1")

    replicas.route_to(1, cut=True)  # the load balancer moves ada (failover, a rolling update)
    moved = chat(url, "On replica 1", session_hash=page, http=ada)
    assert moved.kind == "complete", f"signed out by the move: {moved}"
    # Both turns are ada's (the API tab's conversation itself is per replica: finding 3 of issue 21).
    listed = call(url, "conversations", [], http=ada).value[0]
    assert sum(c["turns"] for c in listed) == 2, listed

    # Signing out on replica 1 ends the sign-in on replica 0 too (after at most its CHECK_S).
    assert ada.get(f"{url}/logout", allow_redirects=False, timeout=10).status_code == 302
    stolen = requests.Session()
    stolen.cookies.update(signed_in)

    def refused_on_replica_0() -> bool:
        return call(replicas[0].url, "conversations", [], http=stolen).kind == "http"

    wait_until(refused_on_replica_0, CHECK_S + 10, "replica 0 to refuse the signed-out token")
