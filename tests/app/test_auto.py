"""Auto through `/chat` on the real chat process: the reply says which model answered, the stored reply and
the turn's log line record the model that actually answered, and a reply cut mid-stream is never finished by
the other model. The loading case runs last: after it Auto skips the self-hosted model for 15 s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, chat, conversation_of, new_session, sqlite_path

AUTO = "Auto (app test)"


@pytest.fixture(scope="module")
def app(start_app: Any, app_env: dict[str, str]) -> ChatProcess:
    return start_app(app_env, AUTO_LABEL=AUTO)


def turn_lines(app: ChatProcess) -> list[dict[str, Any]]:
    lines = [line.partition("chatapp.turns ")[2] for line in app.log().splitlines() if "chatapp.turns " in line]
    return [json.loads(line) for line in lines]


def test_ready_self_hosted_model_answers_and_is_named(app: ChatProcess, fake_model: FakeOpenAIServer) -> None:
    session = new_session()
    sent = len(fake_model.chat_requests())
    reply = chat(app.url, "hi", AUTO, session_hash=session).reply
    assert reply == f"You said: hi\n\nℹ️ Answered by {FAKE_LABEL}"
    assert len(fake_model.chat_requests()) == sent + 1
    assert conversation_of(sqlite_path(app), session)[1][2] == FAKE_LABEL


def test_a_reply_cut_mid_stream_is_not_finished_by_gemini(
    app: ChatProcess, fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]
) -> None:
    session = new_session()
    asked_gemini = len(fake_gemini[0].generate_requests())
    fake_model.queue("cut")
    reply = chat(app.url, "one two three four five six", AUTO, session_hash=session).reply
    assert reply.startswith("You said: one two") and "\n\n⚠️ " in reply
    assert f"ℹ️ Answered by {FAKE_LABEL}" in reply
    assert len(fake_gemini[0].generate_requests()) == asked_gemini
    assert conversation_of(sqlite_path(app), session)[1][2] == FAKE_LABEL


def test_loading_self_hosted_model_is_answered_by_gemini_and_said_so(
    app: ChatProcess, fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]
) -> None:
    session = new_session()
    fake_model.queue("loading")
    reply = chat(app.url, "hello", AUTO, session_hash=session).reply
    assert reply == (
        "You said: hello (1 messages in context)\n\n"
        f"ℹ️ Answered by {GEMINI_LABEL} because {FAKE_LABEL} is waking up (asked 0 s ago; usually ready in about "
        "12 min, an estimate until one is measured here)"
    )
    rows = conversation_of(sqlite_path(app), session)
    assert [(role, model) for role, _, model, _ in rows] == [("user", None), ("assistant", GEMINI_LABEL)]
    # The stored reply is the model's words only: the note is not part of the conversation the models see.
    assert rows[1][1] == "You said: hello (1 messages in context)"
    line = turn_lines(app)[-1]
    assert (line["model"], line["requested"], line["outcome"]) == (GEMINI_LABEL, AUTO, "ok")
    assert line["tokens_in"] > 0 and line["tokens_out"] == 7 and line["tokens_estimated"] is False
