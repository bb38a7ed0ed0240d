"""The front door's sign-in layer: failed sign-ins counted per user name and per client address
(`chatapp.login_limits`), the form read once and handed on to Gradio's `/login`."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatapp.asgi_io import read_body, refuse, replay
from chatapp.login_limits import BadLoginForm, LoginLimiter, client_address, login_user_name

log = logging.getLogger(__name__)


class LoginGate:
    def __init__(self, trusted_proxy: bool) -> None:
        self.trusted_proxy = trusted_proxy
        self.logins = LoginLimiter()

    async def __call__(self, app: ASGIApp, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        try:
            name = await login_user_name(Request(scope, replay(body, receive)))
        except BadLoginForm as exc:
            await refuse(400, str(exc))(scope, receive, send)
            return
        peer = request.client.host if request.client else None
        keys = [f"addr:{client_address(request.headers, peer, self.trusted_proxy)}", f"user:{name}"]
        wait = self.logins.retry_after(keys)
        if wait is not None:
            log.warning("login refused for %s: too many failed attempts", keys[0])
            refusal = refuse(429, "Too many failed sign-in attempts: try again later.", {"Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await app(scope, replay(body, receive), watch)
        if status != 200:
            self.logins.failed(keys)
            log.info("failed sign-in from %s", keys[0])
