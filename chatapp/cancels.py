"""One cancel at a time per Gradio event: a second `/gradio_api/cancel` for an event already being cancelled is
answered here, never passed on.

Gradio 6.31's cancel route cancels the event's task, waits for it, then closes and deletes the event's iterator.
A second cancel arriving meanwhile cancels the task again, interrupting the clean-up the first one waits for
(`Queue.reset_iterators`), so both then find the iterator and the later `del app.iterators[event_id]` raises
KeyError: HTTP 500 (gradio/routes.py `cancel_event`). The page never cancels (its Stop is `PageHandlers.stop`); API
clients do (`gradio_client`'s `Job.cancel`), and a double click or a retrying client sends two.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.gradio_compat import API

CANCEL_PATH = f"{API}/cancel"


class OneCancelAtATime:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._running: set[tuple[Any, Any]] = set()  # (session_hash, fn_index) being cancelled now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(CANCEL_PATH):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:  # small: the front door caps request bodies before they get here
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        key = _key(body)
        if key is not None and key in self._running:  # the first cancel is doing it: nothing more to do
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"success": true}'})
            return
        if key is not None:
            self._running.add(key)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay, send)
        finally:
            if key is not None:
                self._running.discard(key)


def _key(body: bytes) -> tuple[Any, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    session_hash, fn_index = value.get("session_hash"), value.get("fn_index")
    return (session_hash, fn_index) if isinstance(session_hash, str) and isinstance(fn_index, int) else None
