"""Issue 15 rows 1, 2 and 12, attacked through a real chat in password mode (ada the victim, bob the attacker):
routes that name another session in their path or hand out its state, and answers that a browser or a proxy
could keep. Each attack checks what ada's conversation looks like afterwards."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest
import requests
from gradio_client import Client

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import call, wait_until
from tests.media.images import PNG
from tests.security.conftest import CONTROLS, USERS, StartChat, stored
from tests.security.wire import fn_index, join, sign_in

STORY = " ".join(f"word{i}" for i in range(60))
TIMEOUT = 60


@pytest.fixture(scope="module")
def slow_model() -> Iterator[FakeOpenAIServer]:
    # ~2.4 s per reply: long enough for bob to reach for ada's live reply while it streams.
    with FakeOpenAIServer(tokens_per_s=25.0, reply=STORY) as server:
        yield server


@pytest.fixture(scope="module")
def chat(slow_model: FakeOpenAIServer, start_password_chat: StartChat) -> ChatProcess:
    return start_password_chat(slow_model)


def ada_client(chat: ChatProcess) -> Client:
    return Client(chat.url, auth=("ada", USERS["ada"]), verbose=False)


def test_row1_bob_cannot_read_adas_live_reply_through_call_with_her_session_hash(chat, slow_model):
    ada = ada_client(chat)
    asked = len(slow_model.chat_requests())
    job = ada.submit("ada's secret plan", *CONTROLS, api_name="/chat")
    wait_until(lambda: len(slow_model.chat_requests()) > asked, TIMEOUT, "ada's reply to reach the model")
    bob = sign_in(chat.url, "bob", USERS["bob"])
    # Gradio takes an event id it does not know for a session hash: ada's hash would stream her reply to bob, and
    # his going away mid-reply would cancel her generation.
    received: list[str] = []
    with bob.get(f"{chat.url}/gradio_api/call/chat/{ada.session_hash}", stream=True, timeout=TIMEOUT) as stolen:
        status = stolen.status_code
        with contextlib.suppress(requests.exceptions.ChunkedEncodingError):  # a stolen stream may end abruptly
            for line in stolen.iter_lines(decode_unicode=True):
                received.append(line)
                if len(received) >= 6:
                    break  # bob has seen enough and goes away
    # Ada's reply is whole, and stored whole, not as stopped.
    try:
        reply = job.result(timeout=TIMEOUT)
    except CancelledError:
        reply = "cancelled"
    assert reply == STORY, "ada's reply was cut off when bob went away"
    assert stored(chat, "user:ada") == [("ada's secret plan", ["ada's secret plan", STORY])]
    assert stored(chat, "user:bob") == []
    assert not [line for line in received if "word" in line or "ada's secret" in line], "bob read ada's reply"
    assert status == 403, status
    with bob.get(f"{chat.url}/gradio_api/call/chat/not-an-event-of-bobs", stream=True, timeout=TIMEOUT) as guessed:
        assert guessed.status_code == 403


def test_row1_the_owner_of_an_event_still_reads_it_through_call(chat):
    bob = sign_in(chat.url, "bob", USERS["bob"])
    posted = bob.post(f"{chat.url}/gradio_api/call/chat", json={"data": ["bob's own", *CONTROLS]}, timeout=TIMEOUT)
    assert posted.status_code == 200, posted.text
    event_id = posted.json()["event_id"]
    with bob.get(f"{chat.url}/gradio_api/call/chat/{event_id}", stream=True, timeout=TIMEOUT) as stream:
        assert stream.status_code == 200
        lines = [line for line in stream.iter_lines(decode_unicode=True) if line.startswith("data:")]
    assert json.loads(lines[-1].partition(":")[2])[0] == STORY
    # The same event id is nobody else's to read.
    ada = sign_in(chat.url, "ada", USERS["ada"])
    with ada.get(f"{chat.url}/gradio_api/call/chat/{event_id}", stream=True, timeout=TIMEOUT) as theirs:
        assert theirs.status_code == 403


def test_row2_deep_links_hand_out_no_session_state(chat):
    # Ada's page, spoken as the page speaks: it loads (her name, her sidebar) and sends a message in her tab.
    ada, tab = sign_in(chat.url, "ada", USERS["ada"]), f"tab{uuid.uuid4().hex[:12]}"
    events = {name: fn_index(ada, chat.url, name) for name in ("load", "accept", "respond")}
    assert join(ada, chat.url, events["load"], [{"session_id": None}], tab).kind == "complete"
    message = [{"text": "ada's diary entry", "files": []}, None, {"session_id": None}, 1, 0]
    assert join(ada, chat.url, events["accept"], message, tab).kind == "complete"
    assert join(ada, chat.url, events["respond"], [None, *CONTROLS, None], tab, timeout=TIMEOUT).kind == "complete"
    bob = sign_in(chat.url, "bob", USERS["bob"])
    link = bob.get(f"{chat.url}/gradio_api/deep_link", params={"session_hash": tab}, timeout=TIMEOUT)
    answers = [link]
    for path in ("/config", "/"):
        for deep_link in (link.text.strip('"') or "x", "x"):
            answers.append(bob.get(f"{chat.url}{path}", params={"deep_link": deep_link}, timeout=TIMEOUT))
    # Nothing of ada's tab reached bob: her messages, her sidebar, her name.
    for answer in answers:
        assert "ada's diary" not in answer.text and "Signed in as <strong>ada" not in answer.text, answer.url
    assert [a.status_code for a in answers] == [404, 400, 400, 400, 400]
    own = bob.get(f"{chat.url}/config", timeout=TIMEOUT)
    assert own.status_code == 200 and "ada's diary" not in own.text
    assert ("ada's diary entry", ["ada's diary entry", STORY]) in stored(chat, "user:ada")


def test_row12_private_answers_are_not_stored_by_browsers_or_proxies(chat):
    bob = sign_in(chat.url, "bob", USERS["bob"])
    for path in ("/", "/config", "/gradio_api/info", "/gradio_api/queue/status"):
        answer = bob.get(chat.url + path, timeout=TIMEOUT)
        assert answer.status_code == 200, path
        assert answer.headers.get("cache-control") == "no-store", (path, answer.headers.get("cache-control"))
    posted = bob.post(f"{chat.url}/gradio_api/call/conversations", json={"data": []}, timeout=TIMEOUT)
    assert posted.headers.get("cache-control") == "no-store"
    with bob.get(f"{chat.url}/gradio_api/call/conversations/{posted.json()['event_id']}", stream=True) as result:
        assert result.status_code == 200 and result.headers.get("cache-control") == "no-store"
    # Static files, the same for everyone, stay cacheable.
    assert bob.get(f"{chat.url}/theme.css", timeout=TIMEOUT).headers.get("cache-control") != "no-store"


def test_unknown_and_unused_gradio_routes_are_refused(chat):
    bob = sign_in(chat.url, "bob", USERS["bob"])
    for method, path in [
        ("GET", "/gradio_api/proxy=https://example.com/x"),
        ("POST", "/gradio_api/component_server"),
        ("GET", "/gradio_api/token"),
        ("GET", "/gradio_api/startup-events"),
        ("GET", "/monitoring"),
        ("GET", "/gradio_api/not-a-route"),
    ]:
        assert bob.request(method, chat.url + path, json={}, timeout=TIMEOUT).status_code == 404, path


def test_session_routes_need_a_sign_in_answered_at_once_not_by_a_hang(chat):
    # The heartbeat is an endless event stream once accepted: read the status, never the body.
    with requests.get(f"{chat.url}/gradio_api/heartbeat/abc", stream=True, timeout=TIMEOUT) as heartbeat:
        assert heartbeat.status_code == 401
    with requests.get(f"{chat.url}/gradio_api/queue/data?session_hash=abc", stream=True, timeout=TIMEOUT) as data:
        assert data.status_code == 401
    for path in ("/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/upload"):
        assert requests.post(chat.url + path, json={}, timeout=TIMEOUT).status_code == 401, path


def test_row12_a_signed_in_callers_media_is_not_kept_and_is_gone_after_delete(chat):
    ada, bob = sign_in(chat.url, "ada", USERS["ada"]), sign_in(chat.url, "bob", USERS["bob"])
    uploaded = ada.post(f"{chat.url}/gradio_api/upload", files=[("files", ("photo.png", PNG))], timeout=TIMEOUT)
    assert uploaded.status_code == 200 and uploaded.headers.get("cache-control") == "no-store"
    (handle,) = uploaded.json()
    preview = ada.get(f"{chat.url}/gradio_api/file={handle}", timeout=TIMEOUT)
    assert (preview.content, preview.headers.get("cache-control")) == (PNG, "no-store")
    message = {"text": "ada's photo", "files": [{"path": handle, "meta": {"_type": "gradio.FileData"}}]}
    assert call(chat.url, "chat", [message, *CONTROLS], http=ada).kind == "complete"
    (conversation,) = [c for c in call(chat.url, "conversations", [], http=ada).value[0] if c["title"] == "ada's photo"]
    (image,) = call(chat.url, "resume", [conversation["id"]], http=ada).value[0][0]["images"]
    url = f"{chat.url}/media/{conversation['id']}/{image['id']}"
    mine = ada.get(url, timeout=TIMEOUT)
    # Not `private, max-age=86400, immutable`: after a delete or a sign-out no copy may stay in the browser.
    assert (mine.status_code, mine.content, mine.headers.get("cache-control")) == (200, PNG, "no-store")
    assert bob.get(url, timeout=TIMEOUT).status_code == 404
    assert call(chat.url, "delete", [conversation["id"]], http=ada).value[0] == {"deleted": conversation["id"]}
    assert ada.get(url, timeout=TIMEOUT).status_code == 404
