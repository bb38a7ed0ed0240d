"""Isolation under load: 50 API clients chat at once, several turns each, switching models mid-conversation.

Afterwards each stored conversation holds exactly its own turns in order, and every model request carried
only its own conversation as context (checked on both fakes' recorded requests). Each client is a Gradio
session (a distinct session_hash: server-side state is keyed by it, and its conversations belong to the
owner `api:<session_hash>`), which is what one `gradio_client.Client` is, without 50 config downloads.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, chat, healthy, owner_of, sqlite_path, stored_history
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.vertex_server import FakeVertexServer
from tests.fixtures.chat_server import ChatProcess

SESSIONS = 50
TURNS = 4


def model_for(client: int, turn: int) -> str:
    # Half the clients start on the self-hosted model, half on Gemini; all switch every turn.
    return FAKE_LABEL if (client + turn) % 2 == 0 else GEMINI_LABEL


def message(tag: str, client: int, turn: int) -> str:
    return f"client {client:02d} [{tag}] turn {turn}: the secret word is {tag}-{client}-{turn}"


def expected_reply(text: str, model: str, turn: int) -> str:
    # The Vertex fake also says how many messages it was sent: 2 per earlier turn plus this one.
    return f"You said: {text}" + (f" ({2 * turn + 1} messages in context)" if model == GEMINI_LABEL else "")


@pytest.fixture(scope="module")
def app(start_app: Any, app_env: dict[str, str]) -> ChatProcess:
    return start_app(app_env)


def test_fifty_sessions_at_once_keep_their_own_turns(
    app: ChatProcess, fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]
) -> None:
    fake_model.tokens_per_s = 100.0  # ~0.1 s per reply: every turn overlaps with dozens of others
    fake_gemini[0].tokens_per_s = 100.0
    tags = [uuid.uuid4().hex[:8] for _ in range(SESSIONS)]
    hashes = [f"iso{i:02d}{uuid.uuid4().hex[:8]}" for i in range(SESSIONS)]
    start = threading.Barrier(SESSIONS, timeout=60)
    spans: list[tuple[float, float]] = []  # (start, end) of every /chat call, to prove they overlapped

    def converse(client: int) -> list[str]:
        start.wait()
        replies = []
        for turn in range(TURNS):
            model = model_for(client, turn)
            text = message(tags[client], client, turn)
            began = time.monotonic()
            replies.append(chat(app.url, text, model, session_hash=hashes[client], timeout=120).reply)
            spans.append((began, time.monotonic()))
        return replies

    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(converse, range(SESSIONS), timeout=180))
    assert healthy(app.url)
    most_at_once = max(sum(1 for b, e in spans if b <= moment < e) for moment, _ in spans)
    assert most_at_once >= SESSIONS // 2, f"only {most_at_once} chats were ever in flight together"

    # What each client was shown.
    for client, replies in enumerate(results):
        assert replies == [
            expected_reply(message(tags[client], client, t), model_for(client, t), t) for t in range(TURNS)
        ]

    # What is stored: one conversation per client, exactly its own turns in order, each reply with its model.
    history = stored_history(sqlite_path(app))  # also checks seq contiguity and role alternation
    by_owner = {owner: rows for owner, rows in history.values()}
    assert len(by_owner) == len(history) == SESSIONS
    expected_context: dict[str, list[str]] = {}
    for client in range(SESSIONS):
        rows = by_owner[owner_of(hashes[client])]
        expected = []
        for turn in range(TURNS):
            text, model = message(tags[client], client, turn), model_for(client, turn)
            expected += [("user", text, None), ("assistant", expected_reply(text, model, turn), model)]
            expected_context[text] = [c for _, c, _ in expected[:-1]]
        assert [r[:3] for r in rows] == expected, f"client {client}"

    # What each model saw: for every request, exactly the conversation so far of the client that sent it.
    seen = 0
    for body in fake_model.chat_requests():
        contents = [m["content"] for m in body["messages"]]
        if contents[-1] in expected_context:
            assert contents == expected_context[contents[-1]]
            assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * (len(contents) // 2) + ["user"]
            seen += 1
    for request in fake_gemini[0].generate_requests():
        contents = request["body"]["contents"]
        texts = ["".join(p.get("text", "") for p in c["parts"]) for c in contents]
        if texts[-1] in expected_context:
            assert texts == expected_context[texts[-1]]
            assert [c["role"] for c in contents] == ["user", "model"] * (len(texts) // 2) + ["user"]
            seen += 1
    assert seen == SESSIONS * TURNS


def test_one_client_sending_many_messages_at_once_loses_none(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    """One gradio_client Client (one Gradio session, one conversation) submitting 40 messages concurrently:
    every reply is stored as its own turn, once, in index order. Regression: concurrent replies of one
    conversation were saved out of order (the stored turn count went back to 23 of 41) and could take the
    same turn index (one overwriting the other); chatapp.chat now takes the index and saves under a lock."""
    from gradio_client import Client

    fake_model.tokens_per_s = 1000.0  # replies finish close together: the saves contend
    client = Client(app.url, verbose=False)
    # The first message opens the conversation (the session's state); then forty at once continue it.
    first = client.predict("opening message", FAKE_LABEL, 0.7, 0.95, 256, "", api_name="/chat")
    assert first == "You said: opening message"
    texts = [f"concurrent message {i} {uuid.uuid4().hex[:6]}" for i in range(40)]
    jobs = [client.submit(text, FAKE_LABEL, 0.7, 0.95, 256, "", api_name="/chat") for text in texts]
    replies = [job.result(timeout=60) for job in jobs]
    assert replies == [f"You said: {text}" for text in texts]
    history = stored_history(sqlite_path(app))  # seq contiguous, roles alternate, turn count matches
    (rows,) = [rows for owner, rows in history.values() if owner == f"browser:{client.cookies['hybrid-chat-browser']}"]
    users = [content for role, content, _, _ in rows if role == "user"]
    assert users[0] == "opening message" and sorted(users[1:]) == sorted(texts)
    client.close()
