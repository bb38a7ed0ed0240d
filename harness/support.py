"""Small helpers the tests and benchmarks share: free local ports, waiting for a condition or for a server process
to answer, and skipping on a missing component."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
import requests

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str, how_to_install: str) -> None:
    """Skip a test whose real component is missing, saying how to install it; under CI=true, fail instead."""
    if available:
        return
    message = f"{what} is not available here; {how_to_install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def free_ports(n: int) -> list[int]:
    """`n` different free local ports. They are bound all at once, so the kernel cannot hand one out twice, which
    two `free_port()` calls in a row may do (a CI run's chat got CHAT_METRICS_PORT == CHAT_PORT and refused to
    start)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def poll(predicate: Callable[[], T], timeout_s: float, every_s: float = 0.05) -> T | None:
    """`predicate()`'s first truthy value, asked every `every_s` until `timeout_s` passed (and once more then);
    None if it never was. For waiting on a condition instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(every_s)


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float, what: str) -> None:
    """Return once `url` answers 200, i.e. the server `process` runs is ready. RuntimeError when the process exits
    first, TimeoutError once `timeout_s` passed; stopping it then is the caller's (only it knows how)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not answer {url} within {timeout_s:g} s")
