"""The front door's sign-in layer: failed sign-ins counted per user name and per client address
(`chatapp.login_limits`), the form read once and handed on to Gradio's `/login`."""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.asgi_io import read_body, refuse, replay
from chatapp.login_limits import BadLoginForm, LoginLimiter, client_address, login_user_name

# The front door logs its refusals under one name, whichever layer refuses.
log = logging.getLogger("chatapp.web")


class LoginGate:
    def __init__(self, trusted_proxy: bool, logins: LoginLimiter | None = None) -> None:
        self.trusted_proxy = trusted_proxy
        self.logins = logins or LoginLimiter()  # shared by replicas when given the store (server.py)

    async def __call__(self, app: ASGIApp, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        try:
            name = await login_user_name(Request(scope, replay(body, receive)))
        except BadLoginForm as exc:
            await refuse(400, str(exc))(scope, receive, send)
            return
        peer = request.client.host if request.client else None
        keys = [f"addr:{client_address(request.headers, peer, self.trusted_proxy)}", f"user:{name}"]
        wait = await anyio.to_thread.run_sync(self.logins.retry_after, keys)  # the store may be read
        if wait is not None:
            log.warning("login refused for %s: too many failed attempts", keys[0])
            refusal = refuse(429, "Too many failed sign-in attempts: try again later.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            # A failure is counted before the caller learns of it: attempts sent one after another are each
            # judged with every earlier failure counted, on every replica (the store write takes a moment).
            if message["type"] == "http.response.start" and message["status"] != 200:
                await anyio.to_thread.run_sync(self.logins.failed, keys)
                log.info("failed sign-in from %s", keys[0])
            await send(message)

        await app(scope, replay(body, receive), watch)
