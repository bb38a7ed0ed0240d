"""Module-scoped model fakes and chat processes: starting `python -m chatapp` takes seconds, so a test module
shares one process (with its own SQLite file) unless a test needs a fresh one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness.chat_process import ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAIServer]:
    """The self-hosted slot (vLLM-shaped), fast: replies echo "You said: <last user message>"."""
    with FakeOpenAIServer(tokens_per_s=400.0) as server:
        yield server


@pytest.fixture(scope="module")
def fake_gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeVertexServer, dict[str, str]]]:
    """The Gemini slot (Vertex-shaped) and the environment that points google-genai at it, offline."""
    with FakeVertexServer(tokens_per_s=400.0) as server:
        yield server, server.vertex_env(tmp_path_factory.mktemp("vertex"))


@pytest.fixture(scope="module")
def app_env(fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]) -> dict[str, str]:
    """Chat settings for both fakes. The chat is a subprocess: the Gemini env must be passed, not monkeypatched."""
    return {
        "SELF_HOSTED_URL": fake_model.base_url,
        "SELF_HOSTED_MODEL": fake_model.model,
        "SELF_HOSTED_LABEL": FAKE_LABEL,
        "GEMINI_MODEL": "gemini-3.8-flash",
        "GEMINI_LABEL": GEMINI_LABEL,
        **fake_gemini[1],
    }


@pytest.fixture(scope="module")
def start_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ChatProcess]]:
    """`start_app(env, **more)` runs a chat process in a fresh directory (its SQLite file is
    `Path(chat.env["CHAT_SQLITE_PATH"])`); all are stopped when the module ends."""
    started: list[ChatProcess] = []

    def start(env: dict[str, str], **more: str) -> ChatProcess:
        chat = start_chat({**env, **more}, tmp_path_factory.mktemp("chat"))
        started.append(chat)
        return chat

    yield start
    for chat in started:
        # The asserts are done: don't wait out a drain (chatapp.drain) for streams a gradio_client Client
        # leaves open (it did, even after close()). SIGTERM first, so a clean exit stays the norm.
        chat.stop(grace_s=3)
