"""Who is calling: derived from the HTTP request being handled, every time.

Never from Gradio state, the `session_hash`, or a value the client sends as data: Gradio keys `gr.State` by the
client-supplied `session_hash` alone, so anything kept there can be replayed by someone else.

The front door's identity layer (`Callers`) computes the caller from each request alone; Gradio then puts it on
every request it hands a handler (`gr.Request.username`):
- `CHAT_AUTH=iap`: `user:<email>` from a verified Identity-Aware Proxy assertion;
- `CHAT_AUTH=password`: the signed-in user name (Gradio's login), which `caller` turns into `user:<name>`;
- `CHAT_AUTH=none`: `browser:<id>`, a random id held in an HttpOnly cookie: whoever holds the cookie is the owner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import gradio as gr
from starlette.requests import Request
from starlette.responses import Response

from chatapp.asgi_io import refuse, set_request_cookie
from chatapp.browser_id import COOKIE as BROWSER_COOKIE
from chatapp.browser_id import BrowserIds, cookie_header
from chatapp.iap import HEADER as IAP_HEADER
from chatapp.iap import AssertionRefused, IapVerifier

# The front door logs its refusals under one name, whichever layer refuses.
log = logging.getLogger("chatapp.web")


class NotSignedIn(gr.Error):
    """The request carries no identity (it should have been refused before reaching a handler)."""

    def __init__(self) -> None:
        super().__init__("You are not signed in (or your sign-in expired): reload the page.", print_exception=False)


def owner_id(username: str) -> str:
    """The owner id stored with conversations for a user name the server authenticated."""
    # Password-mode names cannot contain ":" (CHAT_AUTH_USERS is `user:password` pairs); every other mode's
    # authenticator already returns a prefixed id.
    return username if ":" in username else f"user:{username}"


def caller(request: Any) -> str:
    """The owner id of whoever sent `request` (a `gr.Request`); raises NotSignedIn when there is none."""
    username = getattr(request, "username", None) if request is not None else None
    if not isinstance(username, str) or not username:
        raise NotSignedIn()
    return owner_id(username)


class Callers:
    """Who is calling, from the request alone, in the configured mode (`CHAT_AUTH`)."""

    def __init__(
        self,
        mode: str,
        *,
        iap: IapVerifier | None = None,
        password_user: Callable[[Request], Awaitable[str | None]] | None = None,
        browser_ids: BrowserIds | None = None,
    ) -> None:
        if mode == "iap" and iap is None:
            raise ValueError("CHAT_AUTH=iap needs an IapVerifier")
        if mode == "password" and password_user is None:
            raise ValueError("CHAT_AUTH=password needs a way to read the signed-in user")
        if mode == "none" and browser_ids is None:
            raise ValueError("CHAT_AUTH=none needs a key to sign browser ids with")
        self.mode = mode
        self.iap = iap
        self.password_user = password_user
        self.browser_ids = browser_ids

    async def identify(self, request: Request, https: bool, set_cookies: list[str]) -> str | Response | None:
        """The caller's owner id; None when nobody is signed in (password mode); a refusal for a bad assertion.
        A browser without a valid id is given a new one (in the request Gradio sees and in `set_cookies`)."""
        if self.mode == "iap":
            assert self.iap is not None
            try:
                user = await anyio.to_thread.run_sync(self.iap.verify, request.headers.get(IAP_HEADER))
            except AssertionRefused as exc:
                log.info("refused %s %s: %s", request.method, request.url.path, exc)
                return refuse(401, f"Unauthorized: {exc}.")
            return user.owner
        if self.mode == "password":
            assert self.password_user is not None
            name = await self.password_user(request)
            return f"user:{name}" if name else None
        assert self.browser_ids is not None
        browser_id = request.cookies.get(BROWSER_COOKIE, "")
        if not self.browser_ids.valid(browser_id):
            # Never an id the page chose: a planted one would hand the planter everything this browser writes.
            browser_id = self.browser_ids.mint()
            set_request_cookie(request.scope, BROWSER_COOKIE, browser_id)
            set_cookies.append(cookie_header(browser_id, https))
        return f"browser:{browser_id}"
