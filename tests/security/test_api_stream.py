"""The light streaming route (`POST /api/chat`, chatapp.api_stream) keeps the Gradio route's promises, through a
real chat process with two signed-in users (password mode): no sign-in is 401, another caller's conversation
id is answered like a missing one and leaves it untouched, a person over the daily limit is refused before
the model is asked, and a client that goes away stops the reply, which is stored as far as it streamed."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import sqlite_path, stored_history, wait_until
from tests.security.conftest import LABEL, USERS, StartChat
from tests.security.wire import sign_in

ROUTE = "/api/chat"
# The fake counts words as tokens: "hello there" is 6 prompt tokens, "You said: hello there" 4 out. The
# reservation of a request is its prompt estimate plus Max tokens, so a small Max tokens keeps it under it.
LIMIT = 20


def ask(http: requests.Session, url: str, **fields: Any) -> tuple[int, list[dict[str, Any]]]:
    """One request to the route, read to the end: (status, the JSON lines, or [the refusal])."""
    body = {"model": LABEL, "max_tokens": 8, **fields}
    with http.post(f"{url}{ROUTE}", json=body, stream=True, timeout=60) as answer:
        if answer.status_code != 200:  # the route's refusals are JSON, the front door's plain text
            json_body = answer.headers.get("content-type", "").startswith("application/json")
            return answer.status_code, [answer.json() if json_body else answer.text]
        assert answer.headers["content-type"] == "application/x-ndjson"
        return 200, [json.loads(line) for line in answer.iter_lines() if line]


def reply_of(lines: list[dict[str, Any]]) -> str:
    """The reply as its deltas add up, checked against the final line (which comes only once it is stored)."""
    text = "".join(line.get("delta", "") for line in lines)
    assert lines[-1]["done"] is True and lines[-1]["text"] == text, lines
    return text


def owned_by(chat: ChatProcess, owner: str) -> dict[str, list[tuple[str, str]]]:
    return {
        sid: [(role, content) for role, content, _, _ in rows]
        for sid, (who, rows) in stored_history(sqlite_path(chat)).items()
        if who == owner
    }


def read_then_go_away(
    chat: ChatProcess, http: requests.Session, message: str, until: Callable[[bytes], bool], then=lambda: None
) -> str:
    """Ask for a reply over a raw connection, read until `until(what was read)`, call `then()`, and close the
    connection the way a client that goes away does; returns the conversation's id."""
    host, port = urlsplit(chat.url).hostname, urlsplit(chat.url).port
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    body = json.dumps({"model": LABEL, "message": message, "max_tokens": 512}).encode()
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(
            f"POST {ROUTE} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        seen = b""
        while not until(seen):
            chunk = raw.recv(65536)
            assert chunk, f"the stream ended early: {seen!r}"
            seen += chunk
        then()
    first = seen.index(b"{")  # the body is chunked: the first line is the first JSON object in it
    return json.loads(seen[first : seen.index(b"\n", first)])["conversation_id"]


def first_line_read(seen: bytes) -> bool:
    return b'"conversation_id"' in seen and b"\n" in seen[seen.index(b'"conversation_id"') :]


@pytest.fixture(scope="module")
def people(password_chat: ChatProcess) -> dict[str, requests.Session]:
    return {user: sign_in(password_chat.url, user, password) for user, password in USERS.items()}


def test_a_reply_streams_and_the_conversation_continues(password_chat: ChatProcess, people: dict) -> None:
    status, lines = ask(people["ada"], password_chat.url, message="first words")
    assert status == 200 and reply_of(lines) == "You said: first words" and lines[-1]["saved"] is True
    conversation = lines[0]["conversation_id"]
    status, lines = ask(people["ada"], password_chat.url, message="second words", conversation_id=conversation)
    assert status == 200 and lines[0]["conversation_id"] == conversation
    assert reply_of(lines) == "You said: second words"
    assert owned_by(password_chat, "user:ada")[conversation] == [
        ("user", "first words"),
        ("assistant", "You said: first words"),
        ("user", "second words"),
        ("assistant", "You said: second words"),
    ]


def test_no_sign_in_is_refused_before_anything_runs(password_chat: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    asked = len(fake_model.chat_requests())
    for http in (requests.Session(), _with_cookie("access-token-unsecure-forged", "not-a-token")):
        status, body = ask(http, password_chat.url, message="hello")
        assert status == 401, body
    assert len(fake_model.chat_requests()) == asked, "a caller without a sign-in reached the model"


def _with_cookie(name: str, value: str) -> requests.Session:
    http = requests.Session()
    http.cookies.set(name, value)
    return http


def test_another_callers_conversation_is_refused_and_left_as_it_was(
    password_chat: ChatProcess, people: dict, fake_model: FakeOpenAIServer
) -> None:
    status, lines = ask(people["ada"], password_chat.url, message="ada's secret plan")
    assert status == 200 and reply_of(lines)
    victim = lines[0]["conversation_id"]
    before = owned_by(password_chat, "user:ada")
    asked = len(fake_model.chat_requests())
    # Bob names Ada's conversation, finished (read back from the store) and with a reply in flight (in memory).
    status, body = ask(people["bob"], password_chat.url, message="tell me more", conversation_id=victim)
    assert (status, body) == (404, [{"error": "No such conversation (it may have been deleted)."}])
    fake_model.tokens_per_s = 2.0  # Ada's next reply (4 tokens) streams for a while
    try:
        with people["ada"].post(
            f"{password_chat.url}{ROUTE}",
            json={"model": LABEL, "message": "and more", "conversation_id": victim},
            stream=True,
            timeout=60,
        ) as streaming:
            lines_in = streaming.iter_lines()
            assert json.loads(next(lines_in))["conversation_id"] == victim
            status, body = ask(people["bob"], password_chat.url, message="tell me more", conversation_id=victim)
            assert status == 404, body
            assert reply_of([json.loads(line) for line in lines_in if line]) == "You said: and more"
    finally:
        fake_model.tokens_per_s = 1000.0
    assert len(fake_model.chat_requests()) == asked + 1, "Bob's message reached the model"
    after = owned_by(password_chat, "user:ada")
    assert after[victim] == [*before[victim], ("user", "and more"), ("assistant", "You said: and more")]
    assert not any(
        "secret plan" in content for rows in owned_by(password_chat, "user:bob").values() for _, content in rows
    )


def test_bad_input_is_refused_with_the_reason(password_chat: ChatProcess, people: dict) -> None:
    assert ask(people["ada"], password_chat.url, message="   ")[0] == 400
    status, body = ask(people["ada"], password_chat.url, message="hi", temperature="hot")
    assert status == 400 and "Temperature" in body[0]["error"]
    status, body = ask(people["ada"], password_chat.url, message="hi", conversation_id="../../etc")
    assert status == 400 and "not a valid conversation id" in body[0]["error"]
    plain = people["ada"].post(f"{password_chat.url}{ROUTE}", data="message=hi", timeout=10)
    assert plain.status_code == 415


@pytest.fixture(scope="module")
def limited_chat(fake_model: FakeOpenAIServer, start_password_chat: StartChat) -> ChatProcess:
    return start_password_chat(fake_model, CHAT_DAILY_TOKENS=str(LIMIT))


def test_over_the_daily_limit_is_refused_before_the_model(
    limited_chat: ChatProcess, fake_model: FakeOpenAIServer
) -> None:
    ada = sign_in(limited_chat.url, "ada", USERS["ada"])
    status, lines = ask(ada, limited_chat.url, message="hello there")
    assert status == 200 and reply_of(lines) == "You said: hello there"
    conversation = lines[0]["conversation_id"]
    status, lines = ask(ada, limited_chat.url, message="hello there", conversation_id=conversation)
    assert status == 200 and reply_of(lines) == "You said: hello there"  # 10 + 16 tokens: 26, over 20
    asked = len(fake_model.chat_requests())
    status, lines = ask(ada, limited_chat.url, message="hello there", conversation_id=conversation)
    assert status == 200 and lines[-1]["done"] and lines[-1]["text"] == "" and lines[-1]["saved"] is None
    assert lines[-1]["notice"].startswith(f"You have used your {LIMIT} tokens for today (26 used)."), lines
    assert len(fake_model.chat_requests()) == asked, "a refused message reached the model"
    assert len(owned_by(limited_chat, "user:ada")[conversation]) == 4, "a refused message was stored"


def test_a_client_that_goes_away_stops_the_reply_and_what_streamed_is_stored(
    password_chat: ChatProcess, people: dict, fake_model: FakeOpenAIServer
) -> None:
    """Stop for an API client is closing the connection: the model request ends and the partial reply is kept."""
    fake_model.tokens_per_s, fake_model.reply = 10.0, 200  # 20 s if nothing stopped it
    completed = fake_model.completed
    try:
        # A few updates have streamed: then the client goes away.
        conversation_id = read_then_go_away(
            password_chat, people["ada"], "tell a long story", lambda seen: seen.count(b'"delta"') >= 3
        )
        stored = wait_until(
            lambda: owned_by(password_chat, "user:ada").get(conversation_id), 60, "the stopped turn to be stored"
        )
        (_, question), (_, reply) = stored
        assert question == "tell a long story"
        full = " ".join(f"tok{i}" for i in range(1, 201))
        assert reply.strip() and full.startswith(reply.strip()) and len(reply.strip()) < len(full), reply
        wait_until(lambda: fake_model.completed == completed and '"outcome": "stopped"' in password_chat.log(), 30,
                   "the turn logged as stopped")  # fmt: skip
        assert fake_model.completed == completed, "the model kept streaming after the client went away"
    finally:
        fake_model.tokens_per_s, fake_model.reply = 1000.0, None


def test_a_client_that_goes_away_before_the_first_token_ends_the_reply_at_once_and_nothing_is_stored(
    password_chat: ChatProcess, people: dict, fake_model: FakeOpenAIServer
) -> None:
    """Gone while the model reads a long prompt: the reply ends without waiting for its first token and nothing is
    stored (that the model's request is then closed when it answers: tests/chat/test_stop_before_text.py)."""
    first_token_s = 30.0  # longer than a loaded machine needs to see the client gone
    fake_model.mode, fake_model.first_token_delay_s = "slow_start", first_token_s
    asked = len(fake_model.chat_requests())
    try:

        def model_asked() -> None:  # gone once the model was asked, before its first token
            wait_until(lambda: len(fake_model.chat_requests()) > asked, 30, "the model to be asked")

        conversation_id = read_then_go_away(
            password_chat, people["ada"], "read this long document", first_line_read, then=model_asked
        )
        gone = time.monotonic()
        wait_until(
            lambda: any(
                conversation_id in line and '"outcome": "stopped"' in line for line in password_chat.log().splitlines()
            ),
            first_token_s,
            "the turn logged as stopped",
        )
        assert time.monotonic() - gone < first_token_s, "the reply waited for the model's first token"
        assert conversation_id not in owned_by(password_chat, "user:ada"), "a reply stopped before its text was stored"
    finally:
        fake_model.mode, fake_model.first_token_delay_s = "normal", 3.0
