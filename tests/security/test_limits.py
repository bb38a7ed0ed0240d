"""Limits under abuse (issue 15 rows 5 and 11): the daily token limit against parallel requests, and a search
that would turn into a prefix matching nearly everything. Each checks the counts afterwards."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatapp.chat import worst_case
from chatapp.conversation import Message
from chatapp.models.base import GenerationParams
from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from tests.app.helpers import Result, call, chat, sqlite_path
from tests.security.conftest import CONTROLS, USERS, StartChat
from tests.security.wire import sign_in

LIMIT = 1_000
PARALLEL = 16
MESSAGE = "Tell me a long story about the sea"


@pytest.fixture(scope="module")
def limited_chat(start_password_chat: StartChat) -> Iterator[tuple[ChatProcess, FakeOpenAIServer]]:
    # 200 tokens at 40 per second: each reply takes 5 s, so all the requests are in flight together.
    with FakeOpenAIServer(tokens_per_s=40.0, reply=200) as fake:
        yield start_password_chat(fake, CHAT_DAILY_TOKENS=str(LIMIT)), fake


def tokens_used(path: Path, owner: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return sum(row[0] for row in conn.execute("SELECT tokens FROM daily_usage WHERE owner = ?", (owner,)))


def test_parallel_requests_cannot_overshoot_the_daily_limit_by_more_than_one_reservation(limited_chat):
    process, fake = limited_chat
    sessions = [sign_in(process.url, "ada", USERS["ada"]) for _ in range(PARALLEL)]

    def send(http) -> Result:
        return chat(process.url, MESSAGE, *CONTROLS, session_hash=uuid.uuid4().hex[:12], http=http, timeout=120)

    with ThreadPoolExecutor(PARALLEL) as pool:
        replies = [r.reply for r in pool.map(send, sessions)]

    answered = [r for r in replies if r.startswith("tok1 ")]
    refused = [r for r in replies if r.startswith("⚠️")]
    assert answered and len(answered) + len(refused) == PARALLEL, replies
    # The counts afterwards: what the model was asked, and what the store charged Ada.
    assert len(fake.chat_requests()) == len(answered), "a refused request reached the model"
    one_reservation = worst_case([Message("user", MESSAGE)], GenerationParams(max_tokens=CONTROLS[3]))
    used = tokens_used(sqlite_path(process), "user:ada")
    assert used < LIMIT + one_reservation, f"{used} tokens used against a limit of {LIMIT}"
    # One at a time until the limit: then every request is refused before it is sent, and the bound holds.
    for _ in range(LIMIT // 100):
        reply = chat(process.url, MESSAGE, *CONTROLS, http=sessions[0], timeout=120).reply
        if reply.startswith("⚠️"):
            break
    assert reply.startswith("⚠️ You have used your 1,000 tokens for today"), reply
    assert tokens_used(sqlite_path(process), "user:ada") < LIMIT + one_reservation


def test_a_short_search_word_in_punctuation_matches_whole_words_only(password_chat):
    ada = sign_in(password_chat.url, "ada", USERS["ada"])
    session = uuid.uuid4().hex[:12]
    assert chat(password_chat.url, "wonderful weather we want", *CONTROLS, session_hash=session, http=ada).kind
    for query in ("_w_", "w__", "__w"):
        # Three characters typed, one letter to the index: a whole word (none here), not every w-word.
        assert call(password_chat.url, "search", [query], http=ada).value[0] == [], query
    assert len(call(password_chat.url, "search", ["wea"], http=ada).value[0]) == 1
