"""Small helpers the tests and benchmarks share: a free local port, and skipping on a missing component."""

from __future__ import annotations

import os
import socket

import pytest


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
