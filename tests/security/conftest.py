"""The shared set-up of the security tests: a chat process with sign-in by password and two users (ada and bob)
on a fake model, started by `start_password_chat(model, **more_env)` (stopped when the module ends), and
`password_chat`, one such chat on a fast fake model shared by a test module; `stored` reads what a person's
conversations look like afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatapp.history.sqlite import SqliteStore
from harness.chat_process import ChatProcess, Started
from harness.fakes.openai_server import FakeOpenAIServer

LABEL = "Fake model"
USERS = {"ada": "ada-correct-horse", "bob": "bob-battery-staple"}
CONTROLS = (LABEL, 0.7, 0.95, 256, "")

StartChat = Callable[..., ChatProcess]


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens_per_s=1000.0) as server:
        yield server


@pytest.fixture(scope="module")
def start_password_chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartChat]:
    started = Started(lambda: tmp_path_factory.mktemp("password-chat"))

    def start(model: FakeOpenAIServer, **more_env: str) -> ChatProcess:
        env = {
            "CHAT_AUTH": "password",
            "CHAT_AUTH_USERS": ",".join(f"{user}:{password}" for user, password in USERS.items()),
            "SELF_HOSTED_URL": model.base_url,
            "SELF_HOSTED_MODEL": model.model,
            "SELF_HOSTED_LABEL": LABEL,
        }
        return started(env, **more_env)

    yield start
    started.stop(grace_s=3)


@pytest.fixture(scope="module")
def password_chat(fake_model: FakeOpenAIServer, start_password_chat: StartChat) -> ChatProcess:
    return start_password_chat(fake_model)


def stored(chat: ChatProcess, owner: str) -> list[tuple[str, list[str]]]:
    """Every conversation of `owner` in the chat's SQLite history: (title, message texts)."""
    store = SqliteStore(Path(chat.env["CHAT_SQLITE_PATH"]))
    try:
        return [
            (s.title, [m.content for m in store.load_messages(s.session_id, owner)]) for s in store.list_sessions(owner)
        ]
    finally:
        store.close()
