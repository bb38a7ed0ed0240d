"""Speaking Gradio's wire protocol as an attacker does: signed in as one user, naming any `session_hash`, and
calling private events by `fn_index` (their numbers are in the page's public `/config`)."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.app.helpers import Result


def sign_in(url: str, user: str, password: str) -> requests.Session:
    """An HTTP session signed in through Gradio's login form (password mode); its cookie is the credential."""
    http = requests.Session()
    answer = http.post(f"{url}/login", data={"username": user, "password": password}, timeout=10)
    assert answer.status_code == 200, f"{user} could not sign in: {answer.status_code} {answer.text[:200]}"
    return http


def fn_index(http: requests.Session, url: str, api_name: str) -> int:
    """The index of the event whose api_name is `api_name`, as the browser learns it from /config."""
    config = http.get(f"{url}/config", timeout=10)
    assert config.status_code == 200, config.text[:200]
    for index, dependency in enumerate(config.json()["dependencies"]):
        if dependency.get("api_name") == api_name:
            return dependency.get("id", index)
    raise AssertionError(f"no event named {api_name!r} in /config")


def join(
    http: requests.Session, url: str, index: int, data: list[Any], session_hash: str, timeout: float = 30.0
) -> Result:
    """Run event `index` in the Gradio session `session_hash` as the browser does (queue/join, then the
    session's event stream); "complete" with the outputs, "error" with the message, or "http" if refused."""
    body = {"data": data, "event_data": None, "fn_index": index, "trigger_id": None, "session_hash": session_hash}
    joined = http.post(f"{url}/gradio_api/queue/join", json=body, timeout=timeout)
    if joined.status_code != 200:
        return Result("http", (joined.status_code, joined.text))
    event_id = joined.json()["event_id"]
    with http.get(
        f"{url}/gradio_api/queue/data", params={"session_hash": session_hash}, stream=True, timeout=timeout
    ) as stream:
        if stream.status_code != 200:
            return Result("http", (stream.status_code, stream.text))
        for line in stream.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            message = json.loads(line.partition(":")[2])
            if message.get("event_id") not in (None, event_id) or message.get("msg") != "process_completed":
                continue
            output = message.get("output") or {}
            if message.get("success"):
                return Result("complete", output.get("data"))
            return Result("error", output.get("error") or output)
    raise AssertionError(f"the event stream of {session_hash} ended without completing event {event_id}")
