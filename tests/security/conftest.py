"""A chat process with sign-in by password and two users, on a fast fake model, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.chat_process import ChatProcess, start_chat
from harness.fakes.openai_server import FakeOpenAIServer

LABEL = "Fake model"
USERS = {"ada": "ada-correct-horse", "bob": "bob-battery-staple"}
CONTROLS = (LABEL, 0.7, 0.95, 256, "")


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens_per_s=1000.0) as server:
        yield server


@pytest.fixture(scope="module")
def password_chat(fake_model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    env = {
        "CHAT_AUTH": "password",
        "CHAT_AUTH_USERS": ",".join(f"{user}:{password}" for user, password in USERS.items()),
        "SELF_HOSTED_URL": fake_model.base_url,
        "SELF_HOSTED_MODEL": fake_model.model,
        "SELF_HOSTED_LABEL": LABEL,
    }
    chat = start_chat(env, tmp_path_factory.mktemp("password-chat"))
    yield chat
    chat.stop(grace_s=3)
