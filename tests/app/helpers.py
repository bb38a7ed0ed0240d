"""Talking to a running chat process the way an API caller does, and checking what it stored.

`call()` speaks Gradio's REST form (`POST /gradio_api/call/<api>` then GET the event stream) so tests can send
values `gradio_client` would refuse to (wrong types, NaN, lone surrogates, undecodable bytes). A
`session_hash` plays the part of one client: Gradio keys server-side state (the open conversation) by it, and
each such client keeps its own cookies, like a browser: with no sign-in (CHAT_AUTH=none) the chat's random
browser-id cookie is the credential, and that client's conversations belong to `owner_of(session_hash)`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from harness.support import poll

FAKE_LABEL = "Fake Gemma (self-hosted)"
GEMINI_LABEL = "Fake Gemini (Vertex)"
DEFAULTS: tuple[Any, ...] = (FAKE_LABEL, 0.7, 0.95, 256, "")


@dataclass(frozen=True)
class Result:
    kind: str  # "complete" (the last output), "error" (gr.Error / Gradio's own refusal) or "http" (refused request)
    value: Any  # outputs list, error message, or (status, body)

    @property
    def reply(self) -> str:
        assert self.kind == "complete", f"expected a reply, got {self}"
        return str(self.value[0])

    @property
    def error(self) -> str:
        assert self.kind == "error", f"expected an error, got {self}"
        return str(self.value)


# One cookie jar per simulated client (keyed by its session_hash), as each browser has its own.
_clients: dict[str | None, requests.Session] = {}


def client(session_hash: str | None) -> requests.Session:
    if session_hash not in _clients:
        _clients[session_hash] = requests.Session()
    return _clients[session_hash]


def owner_of(session_hash: str) -> str:
    """The owner id the chat gave this client: its browser-id cookie (set on its first request)."""
    cookie = client(session_hash).cookies.get("hybrid-chat-browser")
    assert cookie, f"client {session_hash} has made no request yet"
    return f"browser:{cookie}"


def new_session() -> str:
    return uuid.uuid4().hex[:12]


def call(
    url: str,
    api: str,
    data: list[Any] | bytes,
    session_hash: str | None = None,
    timeout: float = 60.0,
    http: requests.Session | None = None,
) -> Result:
    """One event through Gradio's REST API; `data` as a list (JSON-encoded, NaN allowed) or raw body bytes.
    `http` is the caller's HTTP session (its cookies are its sign-in); by default the one of `session_hash`."""
    http = http or client(session_hash)
    if isinstance(data, bytes):
        body = data
    else:
        payload: dict[str, Any] = {"data": data}
        if session_hash:
            payload["session_hash"] = session_hash
        # ensure_ascii keeps lone surrogates as \ud800 escapes, which is how a browser or client would send them.
        body = json.dumps(payload, allow_nan=True).encode()
    started = http.post(
        f"{url}/gradio_api/call/{api}", data=body, headers={"Content-Type": "application/json"}, timeout=timeout
    )
    if started.status_code != 200:
        return Result("http", (started.status_code, started.text))
    event_id = started.json()["event_id"]
    stream = http.get(f"{url}/gradio_api/call/{api}/{event_id}", timeout=timeout)
    if stream.status_code != 200:
        return Result("http", (stream.status_code, stream.text))
    kind, value = "", None
    event = ""
    for line in stream.text.splitlines():
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data_text = line.partition(":")[2].strip()
            parsed = json.loads(data_text) if data_text and data_text != "null" else None
            is_error = event == "error" and isinstance(parsed, dict)
            value = parsed.get("error") if is_error else parsed
            kind = event
    assert kind, f"no complete/error event in the stream: {stream.text[-500:]!r}"
    return Result(kind, value)


def chat(
    url: str,
    message: Any,
    *controls: Any,
    session_hash: str | None = None,
    timeout: float = 60.0,
    http: requests.Session | None = None,
) -> Result:
    """`/chat` with DEFAULTS for the controls not given."""
    return call(url, "chat", [message, *controls, *DEFAULTS[len(controls) :]], session_hash, timeout, http)


def healthy(url: str) -> bool:
    return requests.get(f"{url}/healthz", timeout=5).status_code == 200


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy (returned) or fail after `timeout` seconds naming `what`."""
    value = poll(predicate, timeout, every)
    if not value:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return value


def sqlite_path(chat: Any) -> Path:
    """The history file of a chat process started by harness.chat_process."""
    return Path(chat.env["CHAT_SQLITE_PATH"])


Row = tuple[str, str, str | None, int]  # role, content, model, seq


def stored_history(path: Path) -> dict[str, tuple[str, list[Row]]]:
    """Every session in the SQLite file (opened read-only) as session_id -> (owner, messages in seq order),
    after checking the file is a valid history: each session's messages have seq 0..n-1 with no gap, roles
    alternate user/assistant starting with user, n is even, the session's turn count is n/2, no empty text."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sessions = conn.execute("SELECT session_id, owner, turns FROM sessions").fetchall()
        out: dict[str, tuple[str, list[Row]]] = {}
        for session_id, owner, turns in sessions:
            rows: list[Row] = conn.execute(
                "SELECT role, content, model, seq FROM messages WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
            where = f"session {session_id} ({owner})"
            assert [r[3] for r in rows] == list(range(len(rows))), f"{where}: seq not contiguous"
            assert len(rows) % 2 == 0 and len(rows) // 2 == turns, f"{where}: {len(rows)} messages, {turns} turns"
            for role, content, _model, seq in rows:
                assert role == ("user" if seq % 2 == 0 else "assistant"), f"{where}: role {role} at seq {seq}"
                assert isinstance(content, str) and content.strip(), f"{where}: empty message at seq {seq}"
            out[session_id] = (owner, rows)
        orphans = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE session_id NOT IN (SELECT session_id FROM sessions)"
        )
        assert orphans.fetchone()[0] == 0, "messages without a session"
        return out
    finally:
        conn.close()


def conversation_of(path: Path, session_hash: str) -> list[Row]:
    """The one stored conversation of the API client `session_hash` (fails unless there is exactly one)."""
    owner = owner_of(session_hash)
    owned = [rows for stored_owner, rows in stored_history(path).values() if stored_owner == owner]
    assert len(owned) == 1, f"{owner} owns {len(owned)} conversations"
    return owned[0]


@contextlib.contextmanager
def chat_in_this_process(tmp_path: Path, model: Any, label: str) -> Iterator[tuple[str, Any]]:
    """The chat served from the test's own process (no sign-in, SQLite under tmp_path, `model` a fake model
    server as its self-hosted entry `label`), so a test can read or hold Gradio's own objects: (its URL, Gradio's
    app)."""
    import uvicorn

    from chatapp import gradio_compat
    from chatapp.server import create_app
    from chatapp.settings import load_settings
    from harness.support import free_port

    port = free_port()
    env = {"CHAT_HOST": "127.0.0.1", "CHAT_PORT": str(port), "CHAT_SQLITE_PATH": str(tmp_path / "history.sqlite3")}
    env |= {"SELF_HOSTED_URL": model.base_url, "SELF_HOSTED_MODEL": model.model, "SELF_HOSTED_LABEL": label}
    app = create_app(load_settings(env))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 60, "the chat to start")
        yield f"http://127.0.0.1:{port}", gradio_compat.gradio_app(app)
    finally:
        server.should_exit = True
        thread.join(30)
