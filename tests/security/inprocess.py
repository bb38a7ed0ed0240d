"""The whole chat (`chatapp.server.create_app`) driven in this process through its ASGI interface.

Tests of the front door written against this (`test_*_promises.py`) speak HTTP only: status codes, headers,
cookies, and what the store answers afterwards. They never reach into the layers behind the app, so they keep
holding when the front door is reorganised, and mutation testing (`make mutations`) can see them: mutmut
switches its mutants on inside the test process, which a chat subprocess would hide from it.

Each request names its caller explicitly (a browser id, a sign-in cookie, an IAP assertion); the client's own
cookie jar is emptied first, so one client plays several people without one's cookie leaking into another's
request.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi.testclient import TestClient

from chatapp.browser_id import COOKIE as BROWSER_COOKIE
from chatapp.history.base import ChatStore, Turn, Usage
from chatapp.history.sqlite import SqliteStore
from chatapp.server import create_app
from chatapp.settings import load_settings

SECRET_KEY = "promises-test-key-" + "0" * 32
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # what `chatapp.images.sniff` takes for a PNG
API = "/gradio_api"


@contextmanager
def served(folder: Path, env: dict[str, str], store: ChatStore | None = None) -> Iterator[TestClient]:
    """The app `create_app` builds for `env`, started (its lifespan runs: Gradio's queue is up)."""
    settings = load_settings(
        {
            "CHAT_SQLITE_PATH": str(folder / "history.sqlite3"),
            "CHAT_SECRET_KEY": SECRET_KEY,
            "SELF_HOSTED_URL": "http://127.0.0.1:9/v1",  # nothing listens: no model is asked anything here
            **env,
        }
    )
    app = create_app(settings, store=store)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def store_with_usage(folder: Path, tokens: dict[str, int]) -> SqliteStore:
    """A real SQLite store where each owner already used `tokens[owner]` tokens today."""
    store = SqliteStore(folder / "history.sqlite3")
    for n, (owner, used) in enumerate(tokens.items()):
        turn = Turn(
            session_id=f"s-{n}",
            owner=owner,
            index=0,
            user="question",
            assistant="answer",
            model="test-model",
            created_at=datetime.now(UTC),
        )
        store.save_turn(dataclasses.replace(turn, usage=Usage(used, 0)))
    return store


def send(
    client: TestClient,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request as exactly the caller `cookie` names (a whole Cookie header), nobody else."""
    client.cookies.clear()
    sent = dict(headers or {})
    if cookie is not None:
        sent["cookie"] = cookie
    return client.request(method, path, headers=sent, **kwargs)


def stream_status(client: TestClient, path: str, *, cookie: str | None = None, **kwargs: Any) -> int:
    """The status of a GET that may stream (an event stream, a heartbeat): read from its first message only."""
    return stream_refusal(client, path, cookie=cookie, **kwargs)[0]


def stream_refusal(client: TestClient, path: str, *, cookie: str | None = None, **kwargs: Any) -> tuple[int, str]:
    """The status of a GET that may stream, and its text unless it is a 200 (a stream that may not end)."""
    client.cookies.clear()
    headers = {"cookie": cookie} if cookie is not None else {}
    with client.stream("GET", path, headers=headers, **kwargs) as answer:
        return answer.status_code, "" if answer.status_code == 200 else answer.read().decode()


def browser(value: str) -> str:
    return f"{BROWSER_COOKIE}={value}"


def new_browser(client: TestClient) -> str:
    """A Cookie header with a browser id the chat minted (CHAT_AUTH=none)."""
    answer = send(client, "GET", "/config")
    assert answer.status_code == 200, answer.text[:200]
    return browser(answer.cookies[BROWSER_COOKIE])


def usage_report(client: TestClient, cookie: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """What the chat's `usage` API answers this caller: the caller's own tokens today (`DailyUsage.report`).
    A caller the chat gave a new browser id goes on with that id, as a browser would."""
    started = send(client, "POST", f"{API}/call/usage", json={"data": []}, cookie=cookie, **kwargs)
    assert started.status_code == 200, started.text[:200]
    if minted := started.cookies.get(BROWSER_COOKIE):
        cookie = browser(minted)
    client.cookies.clear()
    headers = {**kwargs.get("headers", {}), **({"cookie": cookie} if cookie else {})}
    with client.stream("GET", f"{API}/call/usage/{started.json()['event_id']}", headers=headers) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data:"):
                return json.loads(line.partition(":")[2])[0]
    raise AssertionError("the usage event answered nothing")


def call(client: TestClient, api_name: str, data: list[Any] | None = None, **kwargs: Any) -> str:
    """Start the public event `api_name` (`/gradio_api/call/…`, as gradio_client does); its event id."""
    answer = send(client, "POST", f"{API}/call/{api_name}", json={"data": data or []}, **kwargs)
    assert answer.status_code == 200, answer.text[:200]
    return answer.json()["event_id"]


def join(client: TestClient, session_hash: str, cookie: str | None = None, **kwargs: Any) -> httpx.Response:
    """Queue the page's `usage` event in Gradio session `session_hash` (`/gradio_api/queue/join`), as a page does."""
    config = send(client, "GET", "/config", cookie=cookie, **kwargs)
    assert config.status_code == 200, config.text[:200]
    index = next(d["id"] for d in config.json()["dependencies"] if d.get("api_name") == "usage")
    body = {"data": [], "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    return send(client, "POST", f"{API}/queue/join", json=body, cookie=cookie, **kwargs)


def run_apart(function: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run an async function to its end on an event loop of its own thread. The browser tests' sync Playwright
    keeps a loop running on the main thread for the rest of the session, where `asyncio.run` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, functools.partial(function, *args, **kwargs)).result()
