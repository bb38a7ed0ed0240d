"""`/chat` on the real chat process with models that think (the fakes stream Gemini thought parts and vLLM
`reasoning` deltas in their wire shape): the API reply and the stored conversation carry the answer only."""

from __future__ import annotations

from typing import Any

import pytest

from harness.chat_process import ChatProcess
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, chat, conversation_of, new_session, sqlite_path

SECRET = "SECRET-THOUGHT"
THOUGHTS = f"{SECRET} they greeted me, so I greet them back"
ANSWER = "Hello, nice to meet you."


@pytest.fixture(scope="module")
def app(
    start_app: Any,
    app_env: dict[str, str],
    fake_model: FakeOpenAIServer,
    fake_gemini: tuple[FakeVertexServer, dict[str, str]],
) -> ChatProcess:
    fake_model.reasoning, fake_model.reply = THOUGHTS, ANSWER
    fake_gemini[0].thoughts, fake_gemini[0].reply = THOUGHTS, ANSWER
    return start_app(app_env)


@pytest.mark.parametrize("label", [FAKE_LABEL, GEMINI_LABEL])
def test_the_api_reply_and_the_stored_answer_carry_no_thinking(app: ChatProcess, label: str) -> None:
    session = new_session()
    reply = chat(app.url, "hi", label, session_hash=session).reply
    assert reply == ANSWER, f"/chat replied {reply!r}"
    stored = conversation_of(sqlite_path(app), session)
    assert [row[1] for row in stored] == ["hi", ANSWER]
    assert SECRET not in app.log(), "thinking reached the log"
