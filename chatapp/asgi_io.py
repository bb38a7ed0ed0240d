"""Small ASGI pieces the front door uses: reading a body once and handing it on, refusing in one line."""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope


def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(reason + "\n", status_code=status, headers=headers)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later messages: the disconnect

    return replayed


def json_object(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}  # Gradio answers the malformed body itself
    return data if isinstance(data, dict) else {}


def set_request_cookie(scope: Scope, name: str, value: str) -> None:
    """Replace (never add to) the request's cookie `name`, so Gradio sees only the value the Guard decided on."""
    kept = [
        part.strip()
        for part in (Headers(scope=scope).get("cookie") or "").split(";")
        if part.strip() and part.split("=", 1)[0].strip() != name
    ]
    headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
    scope["headers"] = [*headers, (b"cookie", "; ".join([*kept, f"{name}={value}"]).encode("latin-1"))]


def set_content_length(scope: Scope, length: int) -> None:
    """The request's Content-Length after the Guard rewrote its body."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    scope["headers"] = [*headers, (b"content-length", str(length).encode())]


def set_request_path(scope: Scope, path: str) -> None:
    """Send the request on to another path of the same app (the file behind an upload handle)."""
    scope["path"] = path
    scope["raw_path"] = quote(path).encode()


def json_answer(start: Message, value: object) -> list[Message]:
    """The messages of a JSON answer with `start`'s status and headers, its body replaced by `value`."""
    body = json.dumps(value).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
    start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    return [start, {"type": "http.response.body", "body": body, "more_body": False}]
