"""CHAT_DAILY_TOKENS on the real chat process over the Firestore emulator: the limit holds, the refused message
never reaches the model, and the count lives in Firestore, so a restarted chat still refuses."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from harness.fakes.openai_server import FakeOpenAIServer
from harness.firestore_emulator import PROJECT, FirestoreEmulator
from tests.app.helpers import call, chat, new_session, owner_of

pytestmark = pytest.mark.integration

# The fake reports a word-count usage: turn 1 is "hello there" (2 words + 4 = 6 prompt tokens) answered by
# "You said: hello there" (4 completion tokens); turn 2 sends that context too (12 in, 4 out). 26 > 20.
LIMIT = 20


def test_daily_limit_holds_and_survives_a_restart(
    start_app: Any,
    app_env: dict[str, str],
    fake_model: FakeOpenAIServer,
    firestore_emulator: FirestoreEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatapp.history.firestore import FirestoreStore

    database = f"quota-{uuid.uuid4().hex[:12]}"
    env = {
        **app_env,
        "CHAT_STORE": "firestore",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": database,
        "CHAT_DAILY_TOKENS": str(LIMIT),
    }
    first = start_app(env)
    person = new_session()
    for _ in range(2):
        assert chat(first.url, "hello there", session_hash=person).reply == "You said: hello there"
    sent = len(fake_model.chat_requests())

    refused = chat(first.url, "hello there", session_hash=person).reply
    assert refused.startswith(f"⚠️ You have used your {LIMIT} tokens for today (26 used). The limit resets at 00:00 UTC")
    assert len(fake_model.chat_requests()) == sent, "a refused message reached the model"
    usage = call(first.url, "usage", [], session_hash=person).value[0]
    assert (usage["tokens_today"], usage["limit"]) == (26, LIMIT) and usage["resets_at"].endswith("T00:00:00+00:00")

    # Someone else still chats, and sees only their own usage.
    other = new_session()
    assert chat(first.url, "hello there", session_hash=other).reply == "You said: hello there"
    assert call(first.url, "usage", [], session_hash=other).value[0]["tokens_today"] == 10

    # The count is in Firestore: the replies' usage and the person's counter.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    store = FirestoreStore(PROJECT, database)
    try:
        (summary,) = store.list_sessions(owner_of(person))
        replies = [m for m in store.load_messages(summary.session_id, owner_of(person)) if m.role == "assistant"]
        assert [(m.usage.tokens_in, m.usage.tokens_out, m.usage.estimated) for m in replies] == [
            (6, 4, False),
            (12, 4, False),
        ]
    finally:
        store.close()

    first.stop(grace_s=3)
    second = start_app(env)  # nothing cached: the counter is read from Firestore
    again = chat(second.url, "hello there", session_hash=person).reply  # same browser cookie, same person
    assert "(26 used)" in again and again.startswith("⚠️ You have used your")
    assert len(fake_model.chat_requests()) == sent + 1  # only the other person's message got through
