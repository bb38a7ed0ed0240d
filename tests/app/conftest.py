"""Module-scoped model fakes and chat processes: starting `python -m chatapp` takes seconds, so a test module
shares one process (with its own SQLite file) unless a test needs a fresh one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.chat_process import ChatProcess, Started, models_env
from harness.fakes.openai_server import FakeOpenAIServer
from harness.fakes.vertex_server import FakeVertexServer
from harness.firestore_emulator import FirestoreEmulator
from harness.replicas import Replicas, start_replicas
from tests.app.helpers import FAKE_LABEL, GEMINI_LABEL, chat_in_this_process
from tests.security.conftest import LABEL


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAIServer]:
    """The self-hosted slot (vLLM-shaped), fast: replies echo "You said: <last user message>"."""
    with FakeOpenAIServer(tokens_per_s=400.0) as server:
        yield server


@pytest.fixture
def chat_in_process(tmp_path: Path, fake_model: FakeOpenAIServer) -> Iterator[tuple[str, Any]]:
    """The chat served from the test's own process on `fake_model` (tests.app.helpers.chat_in_this_process):
    (its URL, Gradio's app), so a test can read Gradio's own tables."""
    with chat_in_this_process(tmp_path, fake_model, LABEL) as served:
        yield served


@pytest.fixture(scope="module")
def fake_gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeVertexServer, dict[str, str]]]:
    """The Gemini slot (Vertex-shaped) and the environment that points google-genai at it, offline."""
    with FakeVertexServer(tokens_per_s=400.0) as server:
        yield server, server.vertex_env(tmp_path_factory.mktemp("vertex"))


def fakes_env(model: FakeOpenAIServer, gemini: tuple[FakeVertexServer, dict[str, str]]) -> dict[str, str]:
    """Chat settings for both fakes. The chat is a subprocess: the Gemini env must be passed, not monkeypatched."""
    return models_env(model.base_url, model.model, FAKE_LABEL, GEMINI_LABEL, gemini[1])


@pytest.fixture(scope="module")
def app_env(fake_model: FakeOpenAIServer, fake_gemini: tuple[FakeVertexServer, dict[str, str]]) -> dict[str, str]:
    return fakes_env(fake_model, fake_gemini)


@pytest.fixture(scope="module")
def start_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ChatProcess]]:
    """`start_app(env, **more)` runs a chat process in a fresh directory (its SQLite file is
    `Path(chat.env["CHAT_SQLITE_PATH"])`); all are stopped when the module ends."""
    started = Started(lambda: tmp_path_factory.mktemp("chat"))
    yield started
    # The asserts are done: don't wait out a drain (chatapp.drain) for streams a gradio_client Client
    # leaves open (it did, even after close()). SIGTERM first, so a clean exit stays the norm.
    started.stop(grace_s=3)


@pytest.fixture
def slow_model() -> Iterator[FakeOpenAIServer]:
    """A model that needs 20 s for its 100-token reply (5 tokens/s): time to restart or lose a replica."""
    with FakeOpenAIServer(tokens_per_s=5.0, reply=100) as server:
        yield server


REPLICAS_BUDGET_S = 4.0  # CHAT_SHUTDOWN_BUDGET of `replicas`: the 100-token reply (20 s) is cut, a 3-token one is not


@pytest.fixture
def replicas(
    slow_model: FakeOpenAIServer,
    fake_gemini: tuple[FakeVertexServer, dict[str, str]],
    firestore_emulator: FirestoreEmulator,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Replicas]:
    """Two chat replicas on the slow model and one Firestore emulator database, behind a switchable proxy
    (harness.replicas); more settings as the fixture's indirect parameter."""
    env = {
        **getattr(request, "param", {}),
        **fakes_env(slow_model, fake_gemini),
        "CHAT_SHUTDOWN_BUDGET": str(REPLICAS_BUDGET_S),
    }
    started = start_replicas(env, tmp_path, firestore_emulator.host)
    yield started
    started.stop(grace_s=3)
    firestore_emulator.reset(started.database)
