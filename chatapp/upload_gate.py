"""The front door's upload layer: only a signed-in caller uploads, within its rate and disk limits (the caller's
room in `chatapp.uploads`); every file is judged by its content, and the paths Gradio answers are recorded as
the caller's before the caller learns them."""

from __future__ import annotations

import json

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.asgi_io import json_answer, refuse
from chatapp.images import ALLOWED
from chatapp.login_limits import LoginLimiter
from chatapp.session_binding import SessionBinding
from chatapp.uploads import UPLOADS_PER_MINUTE, UploadRegistry, all_images

MAX_UPLOAD_ANSWER_BYTES = 1024 * 1024
FULL = "Too many images are waiting to be sent: send them with a message (or wait an hour) first."


class UploadGate:
    def __init__(self, uploads: UploadRegistry, sessions: SessionBinding) -> None:
        self.uploads = uploads
        self.sessions = sessions
        self.rate = LoginLimiter(limit=UPLOADS_PER_MINUTE)

    async def __call__(self, app: ASGIApp, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        """Let Gradio write the files (within the caller's limits), judge each by its content, then record the
        paths for the caller and answer it their handles instead (`chatapp.uploads`)."""
        caller = scope["state"]["caller"]
        if (
            refusal := await self.sessions.bind(request.query_params.get("upload_id"), caller, scope["path"])
        ) is not None:
            await refusal(scope, receive, send)
            return
        if (wait := self.rate.retry_after([caller])) is not None:
            refusal = refuse(429, "Too many uploads: try again in a minute.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            # Cut off by the body cap mid-way, Gradio leaves its partial files behind: only a declared length,
            # which the cap and the caller's room judge before a byte is written (browsers and gradio_client
            # always declare one).
            await refuse(411, "An upload must declare its Content-Length.")(scope, receive, send)
            return
        if int(declared) > self.uploads.room(caller):
            await refuse(413, FULL)(scope, receive, send)
            return
        self.rate.failed([caller])  # every upload counts, not only failed ones
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if start is not None and start["status"] == 200:
            try:
                paths = json.loads(body) if len(body) <= MAX_UPLOAD_ANSWER_BYTES else None
            except ValueError:
                paths = None
            if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
                fresh = [p for p in paths if not self.uploads.owns(caller, p)]
                if not await anyio.to_thread.run_sync(all_images, paths, fresh):
                    refusal = refuse(415, f"Only {ALLOWED} images can be attached (judged by their content).")
                    await refusal(scope, receive, send)
                    return
                handles = await anyio.to_thread.run_sync(self.uploads.add, caller, paths)
                if handles is None:
                    await refuse(413, FULL)(scope, receive, send)
                    return
                held = json_answer(start, handles)  # the caller learns handles, never the server's paths
            else:
                await refuse(502, "The upload's answer was not understood.")(scope, receive, send)
                return
        for message in held:
            await send(message)
