"""The HTTP front of the chat: who is calling and what a request may do, decided before Gradio sees it.

One ASGI middleware, `Guard`, composed of layers that each do one job, in the order a request meets them:
1. **Body caps** (here): 413 before anything parses a body; more for the upload route only; none at all for a
   GET, HEAD or OPTIONS, which is refused if it says a body follows.
2. **Headers** (`chatapp.headers`): a Content-Security-Policy on HTML that forbids framing, foreign form targets
   and remote images; `Cache-Control: no-store` on every answer but static files; session cookies `SameSite=Lax`,
   and `Secure` over HTTPS. Cross-site writes are refused (here).
3. **Identity** (`chatapp.identity.Callers`): every request's caller, from that request alone, handed to Gradio
   as `gr.Request.username`: a verified IAP assertion (`CHAT_AUTH=iap`), Gradio's own sign-in (`password`), or
   a server-minted, signed browser id in an HttpOnly cookie (`none`, `chatapp.browser_id`).
4. **Default deny** (`chatapp.route_rules`, rules in `chatapp.gradio_compat`): every route has a rule saying who
   may call it; any other route, or `deep_link`, which hands out another session's state, is answered 404.
5. One layer by the route's rule: **session binding** (`chatapp.session_binding`: a session or event id
   belongs to its first caller), **uploads** (`chatapp.upload_gate`: the uploader's only, within limits, judged
   by content), **sign-in limits** (`chatapp.login_gate`), or straight on to the app.

The route is looked up once, the caller computed once, and a body is read once, only by the layer that must
judge it; a streamed answer passes through one header wrapper and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chatapp.asgi_io import refuse, set_request_path
from chatapp.browser_id import BrowserIds
from chatapp.gradio_compat import DEEP_LINK_QUERY, Access
from chatapp.headers import hardened
from chatapp.iap import IapVerifier
from chatapp.identity import Callers
from chatapp.images import MAX_IMAGE_BYTES, MAX_IMAGES_PER_MESSAGE
from chatapp.login_gate import LoginGate
from chatapp.login_limits import LoginLimiter
from chatapp.route_rules import HEALTH_PATHS, route_table
from chatapp.session_binding import MAX_EVENT_ANSWER_BYTES, SessionBinding
from chatapp.session_owners import SessionOwners
from chatapp.upload_gate import FULL, MAX_UPLOAD_ANSWER_BYTES, UploadGate
from chatapp.uploads import UploadRegistry

__all__ = ["FULL", "MAX_BODY_BYTES", "MAX_EVENT_ANSWER_BYTES", "MAX_UPLOAD_ANSWER_BYTES", "Guard"]

log = logging.getLogger(__name__)

# Refused with 413 before anything parses them (by the Guard, which also reads some bodies itself). A chat
# message is at most 100,000 characters.
MAX_BODY_BYTES = 2 * 1024 * 1024
# The upload route alone: one message's images at once, plus the multipart framing.
MAX_UPLOAD_BODY_BYTES = MAX_IMAGES_PER_MESSAGE * MAX_IMAGE_BYTES + 1024 * 1024

Found = tuple[Access, str, dict[str, str]] | None

BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _declares_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a length above 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str,
        trusted_proxy: bool = False,
        iap: IapVerifier | None = None,
        password_user: Callable[[Request], Awaitable[str | None]] | None = None,
        browser_ids: BrowserIds | None = None,
        uploads: UploadRegistry | None = None,
        logins: LoginLimiter | None = None,
        sessions: SessionOwners | None = None,
    ) -> None:
        self.app = app
        self.mode = mode
        self.trusted_proxy = trusted_proxy
        self.callers = Callers(mode, iap=iap, password_user=password_user, browser_ids=browser_ids)
        self.routes = route_table()
        self.sessions = SessionBinding(sessions)  # shared by replicas when given the store (server.py)
        self.uploads = uploads
        self.upload_gate = UploadGate(uploads, self.sessions) if uploads is not None else None
        self.login_gate = LoginGate(trusted_proxy, logins)

    def is_https(self, request: Request) -> bool:
        if request.scope.get("scheme") == "https":  # not `request.url`, which builds a whole URL
            return True
        return self.trusted_proxy and request.headers.get("x-forwarded-proto", "").lower() == "https"

    @staticmethod
    def is_cross_site_write(request: Request) -> bool:
        if request.method in {"GET", "HEAD", "OPTIONS"}:
            return False
        if request.headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False  # not a browser's cross-origin request (gradio_client, curl): cookies are not ambient
        return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()

    # -- ASGI ----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self.routes.lookup(scope["method"], scope["path"])
        if scope["method"] in BODILESS_METHODS:
            # No route reads a body of these (one that says it has one is refused, `_handle`), so the stream of
            # a reply, a GET, passes no body-cap layer, here or in Gradio's app, with each of its messages.
            await self._handle(found, scope, receive, send)
            return
        # The one body cap (FastAPI's own is off: it applies at the app and again at the router, and the inner
        # one would override any per-route value). 413 before anything parses the body, this guard included.
        limit = MAX_UPLOAD_BODY_BYTES if found and found[0] is Access.UPLOAD else MAX_BODY_BYTES
        await RequestBodyLimitMiddleware(self._guarded(found), limit)(scope, receive, send)

    def _guarded(self, found: Found) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            await self._handle(found, scope, receive, send)

        return guarded

    async def _handle(self, found: Found, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        https = self.is_https(request)
        set_cookies: list[str] = []
        send = hardened(
            send, https=https, cacheable=found is not None and found[0] is Access.STATIC, set_cookies=set_cookies
        )
        refusal = await self._check(request, found, https, set_cookies)
        if refusal is None and scope["method"] in BODILESS_METHODS and _declares_body(scope):
            refusal = refuse(413, f"A {scope['method']} request carries no body.")
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert found is not None
        access, template, _ = found
        if access is Access.LOGIN:
            await self.login_gate(self.app, request, scope, receive, send)
        elif access is Access.UPLOAD:
            assert self.upload_gate is not None
            await self.upload_gate(self.app, request, scope, receive, send)
        elif access in (Access.SESSION_IN_BODY, Access.NEW_EVENT):
            resolve = self.uploads.resolve if self.uploads is not None else None
            await self.sessions.call(self.app, template, access, scope, receive, send, resolve)
        else:
            await self.app(scope, receive, send)

    async def _check(self, request: Request, found: Found, https: bool, set_cookies: list[str]) -> Response | None:
        """Everything decided from the request line and headers alone; None means: go on."""
        path = request.scope["path"]  # the path the route was looked up by
        if path in HEALTH_PATHS:
            return None
        if self.is_cross_site_write(request):
            log.info("refused a cross-site %s %s from origin %s", request.method, path, request.headers.get("origin"))
            return refuse(403, "Cross-site requests are not accepted.")

        caller = await self.callers.identify(request, https, set_cookies)
        if isinstance(caller, Response):
            return caller
        request.scope.setdefault("state", {})["caller"] = caller

        if found is None or found[0] is Access.DENY:
            log.info("refused %s %s: no such route", request.method, path)
            return refuse(404, "Not found.")
        access, template, params = found
        if DEEP_LINK_QUERY in request.query_params:
            return refuse(400, "Deep links are not served here.")
        if access is Access.LOGIN and self.mode != "password":
            return refuse(404, "Not found: this chat has no sign-in.")
        if access in (Access.OPEN, Access.STATIC, Access.LOGIN):
            return None
        if caller is None:
            return refuse(401, "Unauthorized: sign in first.")
        if access is Access.UPLOAD and self.uploads is None:
            return refuse(404, "This chat takes text only: there is no upload.")
        if access is Access.FILE:
            # A file only for the caller who uploaded it, by the handle they were answered (never a path): nothing
            # else of the disk, nobody else's upload, no URL for the server to fetch.
            name = next(iter(params.values()))
            if not (self.uploads and (file := self.uploads.path_of(caller, name))):
                return refuse(404, "No such file.")
            set_request_path(request.scope, path.removesuffix(name) + file)  # the handle's file
            return None
        return await self.sessions.check(access, template, params, request.query_params, caller, path)
