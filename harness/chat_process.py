"""The chat service as a real process (`python -m chatapp`), as it runs in the container.

`start_chat(env, workdir)` starts one on a free port with SQLite history under `workdir` (unless `env` says
otherwise) and waits for `/healthz`; the returned `ChatProcess` has `.url`, `.env`, `.log()` and `.stop()`.
`Started` starts several and stops them together; the pytest fixtures (`chat_server` in
tests/fixtures/chat_server.py, `start_app` in tests/app/conftest.py) are thin wrappers around it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.support import free_ports, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ChatProcess:
    process: subprocess.Popen
    url: str
    env: dict[str, str]
    log_path: Path

    @property
    def metrics_url(self) -> str:
        """The separate Prometheus endpoint (CHAT_METRICS_PORT)."""
        return f"http://127.0.0.1:{self.env['CHAT_METRICS_PORT']}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`. A reply still streaming makes the chat drain (chatapp.drain)
        before it exits; tests that are done asserting may pass a shorter grace."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# A chat's start is mostly importing Gradio: seconds on a quiet machine, over 3 minutes (py-spy: still in imports)
# while the load average was ~30 on 2 cores, which failed a browser test's fixture at the former 180 s.
START_S = 600.0


def chat_env(env_overrides: dict[str, str], workdir: Path) -> dict[str, str]:
    """The environment of a chat process on free local ports with its SQLite file in `workdir`: this process's
    own, without any chat, Gemini or model setting of its own, then `env_overrides`."""
    # The metrics get a free port of their own, so chats started side by side never fight over the default 9090.
    chat_port, metrics_port = free_ports(2)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "GEMINI_", "SELF_HOSTED_"))},
        "CHAT_HOST": "127.0.0.1",
        "CHAT_PORT": str(chat_port),
        "CHAT_METRICS_PORT": str(metrics_port),
        "CHAT_SQLITE_PATH": str(workdir / "history.sqlite3"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **env_overrides,
    }


def start_chat(env_overrides: dict[str, str], workdir: Path, timeout_s: float = START_S) -> ChatProcess:
    env = chat_env(env_overrides, workdir)
    port = int(env["CHAT_PORT"])
    log_path = workdir / f"chat-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatapp"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    chat = ChatProcess(process, f"http://127.0.0.1:{port}", env, log_path)
    try:
        wait_until_ready(process, f"{chat.url}/healthz", timeout_s, "the chat")
    except (RuntimeError, TimeoutError) as exc:
        chat.stop()
        raise RuntimeError(f"{exc}:\n{chat.log()}") from None
    return chat


class Started:
    """The chat processes one test (or one test module) starts, each in a directory `workdir()` gives, all
    stopped together by pid: `start(env, **more)` or `start(**env)`. The pytest fixtures wrap this."""

    def __init__(self, workdir: Callable[[], Path]) -> None:
        self._workdir = workdir
        self.chats: list[ChatProcess] = []

    def __call__(self, env: dict[str, str] | None = None, /, **more: str) -> ChatProcess:
        chat = start_chat({**(env or {}), **more}, self._workdir())
        self.chats.append(chat)
        return chat

    def stop(self, grace_s: float = 20.0) -> None:
        for chat in self.chats:
            chat.stop(grace_s)


def models_env(
    model_url: str, model: str, self_hosted_label: str, gemini_label: str, vertex_env: dict[str, str]
) -> dict[str, str]:
    """The chat's settings for a self-hosted (OpenAI-compatible) server and a Vertex-shaped Gemini."""
    return {
        "SELF_HOSTED_URL": model_url,
        "SELF_HOSTED_MODEL": model,
        "SELF_HOSTED_LABEL": self_hosted_label,
        "GEMINI_MODEL": "gemini-3.8-flash",
        "GEMINI_LABEL": gemini_label,
        **vertex_env,
    }
