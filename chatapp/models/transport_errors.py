"""The HTTP-library exceptions google-genai can surface, whichever backend it picked.

google-genai 3.x prefers `httpx2` and falls back to `httpx` (or follows GOOGLE_GENAI_HTTP_CLIENT), and
their exception classes are unrelated, so both families are listed when installed.
"""

from __future__ import annotations

import importlib


def _classes(name: str) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


TIMEOUT_ERRORS = _classes("TimeoutException")
CONNECT_ERRORS = _classes("ConnectError")
TRANSPORT_ERRORS = _classes("TransportError")
