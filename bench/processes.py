"""Start and stop the real processes a benchmark measures: the fake model server and the chat."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from harness.chat_process import ChatProcess, start_chat
from harness.support import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def fake_model_server(tokens_per_s: float, reply_tokens: int | None) -> Iterator[str]:
    """The fault-injecting OpenAI server in its own process (so it never competes for the chat's GIL); replies
    of `reply_tokens` tokens, or (None) of as many as each request's max_tokens (bench.fake_model)."""
    port = free_port()
    command = (
        ["-m", "bench.fake_model"]
        if reply_tokens is None
        else ["-m", "harness.fakes.openai_server", "--reply-tokens", str(reply_tokens)]
    )
    process = subprocess.Popen(
        [sys.executable, *command, "--port", str(port), "--tokens-per-s", str(tokens_per_s)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def chat(**env: str) -> Iterator[ChatProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as workdir:
        process = start_chat(env, Path(workdir))
        try:
            yield process
        finally:
            process.stop()
